/**
 * host-local's GC (spec 1.1): release every reservation whose attachment is not in the runtime's valid list, except
 * an attachment that may still be in its ADD or that the runtime may not have known about yet when it made the list.
 *
 * The spec forbids GC while an ADD runs, but a runtime that computes its list and then GCs can overlap an ADD that
 * finishes in between. host-local cannot see the runtime's ADD (bridge runs host-local and then configures the pod,
 * waits for DAD, ...), so it protects what it can see: an ADD that began less than ADD_PROTECTION_MS ago, whatever
 * gcGraceSeconds says; gcGraceSeconds adds a grace measured from the attachment's last change.
 *
 * GC holds the network's lock, but our ADD and DEL do not take it, so every decision is made on what is on disk at
 * the moment of the release, not on a listing read earlier: an ADD writes its "adding" entry before it links its
 * first reservation, so a reservation seen on disk is always covered by the entry read after it.
 *
 * @example
 *   const released = await collect(store, [{ containerID: "c1", ifname: "eth0" }], 60_000);
 */
import type { Attachment } from "../../lib/types.js";
import type { DiskStore, EntryNow } from "./store.js";

/** An ADD that began less than this long ago is never collected, whatever gcGraceSeconds is. */
export const ADD_PROTECTION_MS = 60_000;

/**
 * Whether GC must keep an attachment, `now`: its ADD began less than ADD_PROTECTION_MS ago (entries of ours only:
 * an imported or released one records no ADD), or its last change is younger than the grace. With no entry (a
 * reservation the reference plugin made), the reservation file's mtime is its last change.
 */
export function keepAttachment(e: EntryNow | undefined, fileMtimeMs: number, graceMs: number, now: number): boolean {
  const addRunning =
    e !== undefined && e.entry.state !== "released" && !e.entry.imported && now - e.sinceMs < ADD_PROTECTION_MS;
  return addRunning || now - (e?.entry.time ?? fileMtimeMs) < graceMs;
}

/** Run GC on one network; returns what was released ("ip (id/ifname)"). */
export async function collect(store: DiskStore, valid: readonly Attachment[], graceMs: number): Promise<string[]> {
  const live = new Set(valid.map((a) => `${a.containerID}\r\n${a.ifname}`));
  const liveIDs = new Set(valid.map((a) => a.containerID));
  // Legacy files name only a container: they stay while any attachment of that container is live.
  const isLive = (id: string, ifname: string | undefined) =>
    ifname === undefined ? liveIDs.has(id) : live.has(`${id}\r\n${ifname}`);
  return store.locked(async () => {
    const released: string[] = [];
    for (const r of store.scan()) {
      if (isLive(r.id, r.ifname)) continue;
      // The reservation first, then its entry: if the file is an ADD's, that ADD's entry was written before it.
      const file = store.reservationNow(r.ip);
      if (!file || file.id !== r.id || file.ifname !== r.ifname) continue; // changed hands since the scan
      if (keepAttachment(store.entryNow(r.id, r.ifname ?? ""), file.mtimeMs, graceMs, Date.now())) continue;
      await store.release(r.ip);
      released.push(`${r.ip} (${r.id}/${r.ifname ?? ""})`);
    }
    for (const e of store.entries()) {
      if (isLive(e.id, e.ifname)) continue;
      store.forgetIf(e.id, e.ifname, (now) => !keepAttachment(now, now.sinceMs, graceMs, Date.now()));
    }
    store.sweepClaims();
    store.sweepTmp(ADD_PROTECTION_MS);
    return released;
  });
}
