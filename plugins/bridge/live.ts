/**
 * Which attachments are live on this node, as the bridge sees them: those whose host veth exists. The veth is the
 * bridge's own per-attachment resource; the kernel removes it with the pod's namespace, so a pod that is gone has
 * none, whatever any list says. GC keeps the masquerade and spoof-check state of a live attachment even when the
 * runtime's list leaves it out (an ADD that finished after the runtime computed the list).
 *
 * @example
 *   const { veths, masqKeys } = await readLiveLinks(); // one `ip -json link show type veth`
 */
import { ipJson, type LinkInfo } from "../../lib/ip/read.js";
import { masqKeysOfAlias } from "./names.js";

export interface LiveLinks {
  /** Names of the node's veths. */
  veths: Set<string>;
  /** The masquerade keys (lib/netfilter/masq `masqKeys`) of the attachments whose host veth carries our alias. */
  masqKeys: Set<string>;
}

/** What `ip -json link show` prints, reduced to what liveness needs. */
export function liveLinksOf(links: ReadonlyArray<Pick<LinkInfo, "ifname"> & { ifalias?: string }>): LiveLinks {
  const live: LiveLinks = { veths: new Set(), masqKeys: new Set() };
  for (const l of links) {
    live.veths.add(l.ifname);
    for (const k of masqKeysOfAlias(l.ifalias)) live.masqKeys.add(k);
  }
  return live;
}

/** The node's veths now. Callers read their firewall state first and this after it (lib/netfilter/masq `LiveMasqKeys`). */
export async function readLiveLinks(): Promise<LiveLinks> {
  return liveLinksOf(await ipJson<Array<LinkInfo & { ifalias?: string }>>(["link", "show", "type", "veth"]));
}
