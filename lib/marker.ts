/**
 * Which attachments of this node may hold firewall state of a kind (portmap's rules, bridge's masquerade): a marker
 * file per attachment, written by ADD before its first rule and removed by DEL after its cleanup. A DEL that knows
 * of nothing to remove (portmap: no `portMappings`; bridge: no `prevResult`) and finds no marker starts no process:
 * containerd DELs every pod twice (StopPodSandbox, then RemovePodSandbox with CNI_NETNS empty and no prevResult),
 * and most pods map no port. With a marker, DEL still removes the state from the attachment's identity alone.
 *
 * Markers live under /run, a tmpfs emptied at boot like the firewall state they stand for, in one directory per
 * kind and network namespace the plugin runs in (a node, or each node namespace of a lab on one machine), named by
 * the namespace's inode. When in doubt (no /proc, a marker that cannot be read), DEL does the full work.
 *
 * ```ts
 * markAttachment("portmap", "pmnet", "ctr1", "eth0");   // ADD, before any rule
 * hasMarker("portmap", "pmnet", "ctr1", "eth0");        // DEL: true
 * unmarkAttachment("portmap", "pmnet", "ctr1", "eth0"); // DEL, after its cleanup
 * ```
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashHex } from "./hash.js";
import { log } from "./log.js";

/** Where markers live: `<ROOT>/<kind>/<netns inode>/<hash>`, so each network namespace (node) has its own. */
export const MARKER_ROOT = "/run/cni-ts";
const ROOT = MARKER_ROOT;

/** What a marker stands for: portmap's rules, bridge's masquerade, or the firewall plugin's rules. */
export type MarkerKind = "portmap" | "masq" | "firewall";

function markerPath(kind: MarkerKind, network: string, containerID: string, ifname: string): string {
  const netns = statSync("/proc/self/ns/net").ino;
  return join(ROOT, kind, String(netns), hashHex("sha256", `${network}\n${containerID}\n${ifname}`));
}

/**
 * ADD: note that this attachment may now hold rules; `detail` (one word, e.g. the masquerade backend) is kept for
 * DEL (markerDetail). A failure is logged: DEL then relies on the config's mappings.
 */
export function markAttachment(
  kind: MarkerKind,
  network: string,
  containerID: string,
  ifname: string,
  detail?: string,
): void {
  try {
    const path = markerPath(kind, network, containerID, ifname);
    // Twice: a DEL may remove the directory, found empty, between our mkdir and our write.
    for (let attempt = 0; ; attempt++) {
      mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
      try {
        writeFileSync(path, `${network} ${containerID} ${ifname}${detail ? ` ${detail}` : ""}\n`, { mode: 0o600 });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT" || attempt > 0) throw e;
      }
    }
  } catch (e) {
    log.warn(
      `${kind}: cannot write the marker of ${network}/${containerID}/${ifname} under ${join(ROOT, kind)} (${(e as Error).message}); a DEL that knows of no state will not look for it`,
    );
  }
}

/** DEL: may this attachment hold rules? True also when it cannot be told. */
export function hasMarker(kind: MarkerKind, network: string, containerID: string, ifname: string): boolean {
  try {
    statSync(markerPath(kind, network, containerID, ifname));
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/**
 * The word the attachment's ADD marked it with (markAttachment's `detail`), or undefined when there is none, no
 * marker, or it cannot be read: the caller then assumes nothing.
 */
export function markerDetail(
  kind: MarkerKind,
  network: string,
  containerID: string,
  ifname: string,
): string | undefined {
  try {
    const fields = readFileSync(markerPath(kind, network, containerID, ifname), "utf8")
      .trim()
      .split(" ");
    return fields.length === 4 && fields[0] === network && fields[1] === containerID && fields[2] === ifname
      ? fields[3]
      : undefined;
  } catch {
    return undefined;
  }
}

/** DEL, once the attachment's rules are gone. */
export function unmarkAttachment(kind: MarkerKind, network: string, containerID: string, ifname: string): void {
  try {
    const path = markerPath(kind, network, containerID, ifname);
    rmSync(path, { force: true });
    // The namespace's directory goes with its last marker (fails, as it should, while others remain).
    rmdirSync(join(path, ".."));
  } catch {
    // A marker left behind only makes a later DEL of the same attachment look at the firewall again.
  }
}

/** GC, once the firewall state of the network's stale attachments is gone: their markers go too. */
export function gcMarkers(
  kind: MarkerKind,
  network: string,
  valid: ReadonlyArray<{ containerID: string; ifname: string }>,
): void {
  try {
    const dir = join(markerPath(kind, network, "", ""), "..");
    const keep = new Set(valid.map((a) => markerPath(kind, network, a.containerID, a.ifname)));
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const [net] = readFileSync(path, "utf8").split(" ");
      if (net === network && !keep.has(path)) rmSync(path, { force: true });
    }
  } catch {
    // No directory (no marker at all), or one that cannot be read: nothing GC must do here.
  }
}

/** One marker as written: the attachment's identity and its detail word (undefined when it has none). */
export interface MarkedAttachment {
  network: string;
  containerID: string;
  ifname: string;
  detail: string | undefined;
}

/** Every readable marker of a kind in this network namespace (GC, and DEL looking for an address's other users). */
export function listMarkers(kind: MarkerKind): MarkedAttachment[] {
  const out: MarkedAttachment[] = [];
  try {
    const dir = join(markerPath(kind, "", "", ""), "..");
    for (const name of readdirSync(dir)) {
      try {
        const [network, containerID, ifname, detail] = readFileSync(join(dir, name), "utf8").trim().split(" ");
        if (network && containerID && ifname) out.push({ network, containerID, ifname, detail });
      } catch {
        // removed by a DEL meanwhile
      }
    }
  } catch {
    // no directory: no marker
  }
  return out;
}
