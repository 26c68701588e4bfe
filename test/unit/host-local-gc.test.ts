// host-local's GC on a real (temporary) directory: what it keeps and why, and that every decision is made on what is
// on disk at the moment of the release, not on a listing read earlier (docs/reliability.md, bug 3).
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADD_PROTECTION_MS, collect, keepAttachment } from "../../ipam/host-local/gc.js";
import { DiskStore, type EntryNow, type IndexEntry } from "../../ipam/host-local/store.js";

let dataDir = "";
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "cni-ts-gc-"));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const open = async () => (await DiskStore.open(dataDir, "net1", true))!;
const attachments = () => join(dataDir, ".cni-ts", "net1", "attachments");
const reserved = () => readdirSync(join(dataDir, "net1")).filter((f) => /^[0-9a-f:.]+$/.test(f) && f.includes("."));

/** A whole ADD of ours, as host-local runs it. */
async function add(s: DiskStore, id: string, ip: string): Promise<void> {
  s.begin(id, "eth0");
  await s.reserve(ip, id, "eth0", 0);
  s.commit([ip]);
}

/** Make every index entry (and reservation) look as if it was written `ms` ago: its ADD began that long ago. */
function age(ms: number): void {
  const t = new Date(Date.now() - ms);
  for (const dir of [attachments(), join(dataDir, "net1")])
    for (const f of readdirSync(dir)) utimesSync(join(dir, f), t, t);
}

const entry = (state: IndexEntry["state"], time: number, extra: Partial<IndexEntry> = {}): IndexEntry => ({
  id: "c",
  ifname: "eth0",
  ips: [],
  state,
  time,
  ...extra,
});

describe("keepAttachment", () => {
  const now = 1_000_000_000;
  const at = (e: IndexEntry, sinceMs: number): EntryNow => ({ entry: e, sinceMs });
  it("an ADD of ours that began less than 60 s ago is kept whatever the grace, adding or added", () => {
    expect(keepAttachment(at(entry("adding", now - 1000), now - 1000), 0, 0, now)).toBe(true);
    // Committed long after it began? Still measured from the beginning: the runtime's ADD goes on after IPAM.
    expect(keepAttachment(at(entry("added", now - 59_000), now - 59_000), 0, 0, now)).toBe(true);
    expect(keepAttachment(at(entry("added", now - 1000), now - ADD_PROTECTION_MS), 0, 0, now)).toBe(false);
    expect(keepAttachment(at(entry("added", now - 1000), now - ADD_PROTECTION_MS), 0, 2000, now)).toBe(true);
  });
  it("a tombstone and an imported entry record no ADD: only the grace, from their time", () => {
    expect(keepAttachment(at(entry("released", now - 10), now - 10), 0, 0, now)).toBe(false);
    expect(keepAttachment(at(entry("released", now - 10), now - 10), 0, 1000, now)).toBe(true);
    expect(keepAttachment(at(entry("added", now - 5000, { imported: true }), now - 10), 0, 0, now)).toBe(false);
  });
  it("no entry (the reference plugin's reservation): the grace, from the file's mtime", () => {
    expect(keepAttachment(undefined, now - 10, 0, now)).toBe(false);
    expect(keepAttachment(undefined, now - 10, 1000, now)).toBe(true);
  });
});

describe("collect (GC)", () => {
  it("with grace 0, an attachment whose ADD began less than 60 s ago keeps its address; aged past 60 s it goes", async () => {
    const s = await open();
    await add(s, "young", "10.1.0.2");
    expect(await collect(s, [], 0)).toEqual([]);
    expect(reserved()).toEqual(["10.1.0.2"]);
    age(ADD_PROTECTION_MS + 1000);
    expect(await collect(s, [], 0)).toEqual(["10.1.0.2 (young/eth0)"]);
    expect(reserved()).toEqual([]);
    expect(readdirSync(attachments())).toEqual([]);
  });

  it("commit keeps the time the ADD began as the entry's mtime", async () => {
    const s = await open();
    s.begin("c", "eth0");
    const began = statSync(join(attachments(), "c@eth0")).mtimeMs;
    await new Promise((r) => setTimeout(r, 30));
    s.commit([]);
    expect(statSync(join(attachments(), "c@eth0")).mtimeMs).toBe(began);
  });

  it("a refused repeated ADD (abort) gives the entry back its own start, not a new one", async () => {
    const s = await open();
    await add(s, "c", "10.1.0.2");
    age(ADD_PROTECTION_MS + 1000);
    const began = statSync(join(attachments(), "c@eth0")).mtimeMs;
    s.begin("c", "eth0");
    s.abort();
    expect(statSync(join(attachments(), "c@eth0")).mtimeMs).toBe(began);
    expect(await collect(s, [], 0)).toEqual(["10.1.0.2 (c/eth0)"]);
  });

  it("a DELed attachment's tombstone goes at once with grace 0, and stays within the grace", async () => {
    const s = await open();
    await add(s, "c", "10.1.0.2");
    s.releaseAttachment("c", "eth0");
    await collect(s, [], 60_000);
    expect(readdirSync(attachments())).toEqual(["c@eth0"]);
    await collect(s, [], 0);
    expect(readdirSync(attachments())).toEqual([]);
  });

  it("a reservation without an entry (the reference plugin's) is judged by its mtime and the grace alone", async () => {
    const s = await open();
    writeFileSync(join(dataDir, "net1", "10.1.0.9"), "refctr\r\neth0");
    expect(await collect(s, [], 60_000)).toEqual([]);
    expect(await collect(s, [], 0)).toEqual(["10.1.0.9 (refctr/eth0)"]);
  });

  it("an ADD that writes its entry and links its reservation after GC started is not judged by file age alone", async () => {
    const s = await open();
    const gcView = await open();
    // The concurrent ADD runs between whatever GC read first and its scan of the reservations.
    const scan = gcView.scan.bind(gcView);
    gcView.scan = () => {
      void add(s, "late", "10.1.0.5");
      return scan();
    };
    expect(await collect(gcView, [], 0)).toEqual([]);
    expect(reserved()).toEqual(["10.1.0.5"]);
    expect(readdirSync(attachments())).toEqual(["late@eth0"]);
  });

  it("an entry GC listed as an old tombstone but that an ADD rewrote before GC dropped it is kept", async () => {
    const s = await open();
    await add(s, "c", "10.1.0.2");
    s.releaseAttachment("c", "eth0");
    age(ADD_PROTECTION_MS + 1000);
    const gcView = await open();
    const entries = gcView.entries.bind(gcView);
    gcView.entries = () => {
      const listed = entries(); // the old tombstone
      s.begin("c", "eth0"); // the same attachment ADDed again, right after GC listed it
      return listed;
    };
    await collect(gcView, [], 0);
    expect(s.entries()).toEqual([expect.objectContaining({ id: "c", state: "adding" })]);
  });

  it("a reservation that changed hands between the scan and the release is left for the next GC", async () => {
    const s = await open();
    await add(s, "old", "10.1.0.2");
    age(ADD_PROTECTION_MS + 1000);
    const gcView = await open();
    const scan = gcView.scan.bind(gcView);
    gcView.scan = () => {
      const seen = scan(); // 10.1.0.2 of "old"
      s.releaseAttachment("old", "eth0");
      writeFileSync(join(dataDir, "net1", "10.1.0.2"), "refctr\r\neth0"); // taken by someone else, old as well
      utimesSync(join(dataDir, "net1", "10.1.0.2"), new Date(0), new Date(0));
      return seen;
    };
    expect(await collect(gcView, [], 0)).toEqual([]);
    expect(existsSync(join(dataDir, "net1", "10.1.0.2"))).toBe(true);
  });
});
