/**
 * The kernel state a step leaves, normalized for differential mode (diff.ts compares it field by field between
 * the two implementations): links keyed by name, each one compact string, with veths (whose names are random per
 * run) grouped under "veth*"; routes as sorted text. lo and the harness's uplink0 are left out.
 */
import type { NodeEnv, PodEnv } from "./context.js";
import type { KLink, KRoute } from "./kernel.js";
import type { KernelCache } from "./kernel-cache.js";
import { showRoute } from "./match.js";

type J = Record<string, unknown>;

/** One link as a compact string: kind, state, mtu, master, flags, sorted addresses. */
export function showLink(l: KLink): string {
  return [
    l.kind,
    l.up ? "up" : "down",
    `mtu ${l.mtu}`,
    l.master ? `master ${l.master}` : "",
    l.hairpin ? "hairpin" : "",
    l.promisc ? "promisc" : "",
    l.addresses.length ? `addr ${[...l.addresses].sort().join(",")}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

/**
 * The group a link name belongs to when it differs per run: veths (random names) as "veth*", bandwidth's ifbs
 * (`bwp` + a hash of the network and the container ID, which holds the run id) as "bwp*"; else undefined.
 */
export function perRunName(name: string): string | undefined {
  if (name.startsWith("veth")) return "veth*";
  if (/^bwp[0-9a-f]{12}$/.test(name)) return "bwp*";
  return undefined;
}

/** A namespace's links by name, those named per run together under their group (sorted, " | "-joined). */
export function normalizeLinks(ls: KLink[]): J {
  const out: J = {};
  const groups = new Map<string, string[]>();
  for (const l of ls) {
    if (l.name === "lo" || l.name === "uplink0") continue;
    const group = perRunName(l.name);
    if (group) groups.set(group, [...(groups.get(group) ?? []), showLink(l)]);
    else out[l.name] = showLink(l);
  }
  for (const [group, shown] of groups) out[group] = shown.sort().join(" | ");
  return out;
}

/** A namespace's routes as one sorted " | "-joined string, devices named per run as their group. */
export function normalizeRoutes(rs: KRoute[]): string {
  return rs
    .map((r) => showRoute({ ...r, dev: (r.dev && perRunName(r.dev)) ?? r.dev } as KRoute))
    .sort()
    .join(" | ");
}

/** The node's state, and the pod's while its namespace exists, read through the step's kernel cache. */
export async function snapshotState(k: KernelCache, node: NodeEnv, pod: PodEnv | undefined): Promise<J> {
  const out: J = {
    node: { links: normalizeLinks(await k.links(node.ns)), routes: normalizeRoutes(await k.routes(node.ns)) },
  };
  if (pod && !pod.deleted)
    out.pod = { links: normalizeLinks(await k.links(pod.ns)), routes: normalizeRoutes(await k.routes(pod.ns)) };
  return out;
}
