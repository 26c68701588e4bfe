/**
 * Which links a bridge DEL may delete: only the attachment's own. A DEL comes for attachments that never got their
 * links too (the runtime's DEL after a refused ADD), and a link with the expected name may belong to someone else: a
 * live pod's `eth0` in a namespace a refused ADD was pointed at, or the host veth of the same container ID and
 * ifname on another network. Deleting either would cut a live pod off while it keeps its address.
 *
 * The marks ADD leaves, in order of strength:
 * - the MACs in the attachment's own result (prevResult): chosen at random by that ADD and set at creation;
 * - the host veth's alias (names.ts `hostVethAlias`: network, container ID and ifname, hashed);
 * - the host veth's name (names.ts `hostVethName`), which says nothing of the network.
 *
 * @example
 *   hostVethOwner({ kind: "veth", alias: "cni-ts:…", mac: "…" }, hostVethAlias(net, id, ifname), undefined); // "ours"
 */
import type { Result } from "../../lib/types.js";

/** What DEL reads of the link named like the attachment's host veth. */
export interface HostVethView {
  /** linkinfo.info_kind; undefined when not read (the MAC alone decided). */
  kind?: string;
  /** The link's alias (ifalias); undefined when it has none. */
  alias?: string;
  mac?: string;
}

export type Ownership = "ours" | "foreign" | "absent";

/**
 * Judge the link named `hostVethName(containerID, ifname)` in the node's namespace.
 * - the MAC prevResult gives for it: ours;
 * - a veth with this attachment's alias: ours;
 * - a veth with no alias: ours (an ADD stopped between creating the veth and naming it, the next line of its batch);
 * - anything else (another alias, not a veth): foreign, left alone.
 */
export function hostVethOwner(
  link: HostVethView | undefined,
  ownAlias: string,
  prevMac: string | undefined,
): Ownership {
  if (!link) return "absent";
  if (prevMac !== undefined && sameMac(link.mac, prevMac)) return "ours";
  if (link.kind !== "veth") return "foreign";
  if (link.alias === undefined || link.alias === "") return "ours";
  return link.alias === ownAlias ? "ours" : "foreign";
}

/** The MAC prevResult lists for interface `name` on the node (no sandbox), if any. */
export function prevHostMac(prev: Result | undefined, name: string): string | undefined {
  return prev?.interfaces?.find((i) => i.name === name && !i.sandbox && i.mac)?.mac;
}

/**
 * The MAC prevResult lists for the pod's interface `ifname` (one with a sandbox), if any. With it, DEL may remove a
 * pod interface whose host end it cannot find by name: an attachment made by the reference plugin, whose host veth
 * has a random name. Without it (the DEL after a refused ADD has no result), the pod's interface is never touched.
 */
export function prevPodMac(prev: Result | undefined, ifname: string): string | undefined {
  return prev?.interfaces?.find((i) => i.name === ifname && i.sandbox && i.mac)?.mac;
}

export function sameMac(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}
