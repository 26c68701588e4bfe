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
  return [l.kind, l.up ? "up" : "down", `mtu ${l.mtu}`, l.master ? `master ${l.master}` : "", l.hairpin ? "hairpin" : "", l.promisc ? "promisc" : "", l.addresses.length ? `addr ${[...l.addresses].sort().join(",")}` : ""].filter(Boolean).join(" ");
}

/** A namespace's links by name, veths together under "veth*" (sorted, " | "-joined). */
export function normalizeLinks(ls: KLink[]): J {
  const out: J = {};
  const veths: string[] = [];
  for (const l of ls) {
    if (l.name === "lo" || l.name === "uplink0") continue;
    if (l.name.startsWith("veth")) veths.push(showLink(l));
    else out[l.name] = showLink(l);
  }
  if (veths.length) out["veth*"] = veths.sort().join(" | ");
  return out;
}

/** A namespace's routes as one sorted " | "-joined string, veth devices as "veth*". */
export function normalizeRoutes(rs: KRoute[]): string {
  return rs
    .map((r) => showRoute({ ...r, dev: r.dev?.startsWith("veth") ? "veth*" : r.dev } as KRoute))
    .sort()
    .join(" | ");
}

/** The node's state, and the pod's while its namespace exists, read through the step's kernel cache. */
export async function snapshotState(k: KernelCache, node: NodeEnv, pod: PodEnv | undefined): Promise<J> {
  const out: J = { node: { links: normalizeLinks(await k.links(node.ns)), routes: normalizeRoutes(await k.routes(node.ns)) } };
  if (pod && !pod.deleted) out.pod = { links: normalizeLinks(await k.links(pod.ns)), routes: normalizeRoutes(await k.routes(pod.ns)) };
  return out;
}
