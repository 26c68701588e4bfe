/**
 * ipMasq for the bridge plugin: traffic from a pod address to a destination outside the pod's subnet leaves the
 * node with the node's address; traffic to the pod's own subnet and to multicast keeps the pod's address.
 *
 * Two backends, chosen per network like the reference's `ipMasqBackend`:
 * - "nftables" (masq-nft.ts): our own table `inet cni_ts_masq` whose two rules never change; a pod costs
 *   set elements, not rules, so the packet path does not grow with the number of pods (cni#215).
 * - "iptables" (masq-iptables.ts): the reference's layout to the byte (chain names, rules, comments), so a node
 *   can switch between the reference bridge and ours and either one's DEL cleans up the other's rules.
 *
 * Every function takes `netns`: the plugin calls them without it (it already runs in the node's namespace); tests
 * pass a namespace of their own so that nothing ever touches the machine's root namespace.
 *
 * @example
 *   const backend = resolveMasqBackend(conf.ipMasqBackend);
 *   await addMasq(backend, [{ network: "net1", containerID, ifname: "eth0", ip: "10.1.0.5", subnet: "10.1.0.0/24" }]);
 *   await delMasq("net1", containerID, "eth0", ["10.1.0.5/24"]);
 */
import { CniError, ErrorCode } from "../errors.js";
import type { Attachment } from "../types.js";
import { defaultBackend, type NetfilterBackend } from "./backend.js";
import { normalizeEntries, requireSafe, requireSafeIdentity, type LiveMasqKeys, type MasqEntry } from "./masq-entry.js";
import { iptAddMasq, iptCheckMasq, iptDelMasq, iptGcMasq, iptablesMasqChain } from "./masq-iptables.js";
import { nftAddMasq, nftCheckMasq, nftDelMasq, nftGcMasq, nftMasqComment } from "./masq-nft.js";

export type { LiveMasqKeys, MasqEntry, NormalizedMasqEntry } from "./masq-entry.js";

/** The two ways of installing the masquerade, as the config key `ipMasqBackend` names them. */
export type MasqBackend = NetfilterBackend;

/** The reference's default: iptables if an iptables binary exists, else nftables if nft exists (else error code 100 naming both). Config value validation ("iptables"|"nftables", else CniError code 7 "unknown ipmasq backend") too. */
export function resolveMasqBackend(configured: string | undefined): MasqBackend {
  if (configured === "iptables" || configured === "nftables") return configured;
  if (configured !== undefined && configured !== "") {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `unknown ipmasq backend ${JSON.stringify(configured)}`,
      'ipMasqBackend must be "iptables" or "nftables"',
    );
  }
  const found = defaultBackend();
  if (found) return found;
  throw new CniError(
    ErrorCode.KernelOperationFailed,
    "ipMasq needs iptables or nft: neither iptables nor nft was found in PATH",
    `PATH=${process.env.PATH ?? ""}`,
  );
}

/** Masquerade every entry's traffic to outside its subnet. Idempotent: a repeated ADD leaves the same state. */
export async function addMasq(backend: MasqBackend, entries: MasqEntry[], netns?: string): Promise<void> {
  const norm = normalizeEntries(entries);
  if (norm.length === 0) return;
  if (backend === "nftables") await nftAddMasq(norm, netns);
  else await iptAddMasq(norm, netns);
}

/**
 * Remove everything of attachment (network, containerID, ifname) from both backends (like the reference's teardown),
 * or from `only` when the caller knows where its ADD wrote, without needing its IPs (ips is only a hint); succeeds
 * when nothing is there, when the tables do not exist, and when a backend binary is missing.
 *
 * Hints written as "ip/prefix" (a result's `ips[].address`, the prefix giving the subnet) let the nftables side
 * skip reading its table; they must then name every address of the attachment with the subnet ADD was given,
 * because an element no hint names stays until its address is handed out again (that ADD takes it over) or GC
 * runs. If any hint is a bare address, or an address turns out to belong to another attachment, the nftables
 * side reads the table and goes by the attachment's element comments instead. The iptables side always
 * reads the nat table and removes the attachment's chain with every rule that jumps to it: its chain is per
 * (network, containerID), so all interfaces of that container on that network lose their masquerade together.
 */
export async function delMasq(
  network: string,
  containerID: string,
  ifname: string,
  ips?: string[],
  netns?: string,
  only?: MasqBackend,
): Promise<void> {
  requireSafeIdentity(network, containerID, ifname);
  // Both backends (the attachment may come from another plugin version or an earlier configuration), unless the
  // caller knows which one its ADD wrote (`only`), and at the same time: they touch different tables, and DEL
  // latency is every pod's stop latency.
  const outcomes = await Promise.allSettled([
    only === "nftables" ? undefined : iptDelMasq(network, containerID, netns, ips ?? []),
    only === "iptables" ? undefined : nftDelMasq(network, containerID, ifname, ips ?? [], netns),
  ]);
  const errors = outcomes.flatMap((o) => (o.status === "rejected" ? [(o.reason as Error).message] : []));
  if (errors.length > 0)
    throw new CniError(ErrorCode.KernelOperationFailed, `ipMasq teardown failed: ${errors.join("; ")}`);
}

/** undefined when every entry's masquerade is in place, else a sentence naming what is missing. */
export async function checkMasq(
  backend: MasqBackend,
  entries: MasqEntry[],
  netns?: string,
): Promise<string | undefined> {
  const norm = normalizeEntries(entries);
  if (norm.length === 0) return undefined;
  return backend === "nftables" ? nftCheckMasq(norm, netns) : iptCheckMasq(norm, netns);
}

/**
 * The names under which the backends file an attachment's state: its nftables element comment and its iptables
 * chain. GC reads them back from a live attachment's marker (the bridge puts them in its host veth's alias) to
 * know which state still has an owner on the node, whatever the runtime's list says.
 */
export function masqKeys(network: string, containerID: string, ifname: string): string[] {
  return [nftMasqComment(network, containerID, ifname), iptablesMasqChain(network, containerID)];
}

/**
 * Remove masquerade state of every attachment of `network` that is neither in `valid` nor live (see LiveMasqKeys),
 * both backends.
 *
 * The iptables side knows attachments only by containerID (its chain ignores ifname, like the reference), so an
 * attachment counts as valid there when any valid attachment has its containerID, and as live when any live
 * attachment has its chain.
 */
export async function gcMasq(network: string, valid: Attachment[], netns?: string, live?: LiveMasqKeys): Promise<void> {
  requireSafe("network name", network);
  const errors: string[] = [];
  try {
    await iptGcMasq(network, valid, netns, live);
  } catch (e) {
    errors.push((e as Error).message);
  }
  try {
    await nftGcMasq(network, valid, netns, live);
  } catch (e) {
    errors.push((e as Error).message);
  }
  if (errors.length > 0) throw new CniError(ErrorCode.KernelOperationFailed, `ipMasq GC failed: ${errors.join("; ")}`);
}
