/**
 * Names and MAC addresses the bridge plugin chooses.
 *
 * The host end of a pod's veth is named from the attachment (`veth` + 8 hex of sha256(containerID, ifname)), not at
 * random as the reference does: DEL and GC can then find it with no netns, no prevResult and no scan.
 * MACs are chosen by us and set at creation (addr_assign_type "set"), so neither the kernel's bridge MAC
 * inheritance nor udev's MACAddressPolicy=persistent changes them after ADD (cni#943, kubernetes#63922).
 */
import { hashHex, randomBytes } from "../../lib/hash.js";
import { masqKeys } from "../../lib/netfilter/masq.js";

export function hostVethName(containerID: string, ifname: string): string {
  return `veth${hashHex("sha256", `${containerID}\r\n${ifname}`).slice(0, 8)}`;
}

const ALIAS_PREFIX = "cni-ts:";

/**
 * The alias ADD gives the host veth: `cni-ts:` and the attachment's masquerade keys (lib/netfilter/masq `masqKeys`), joined by
 * `:`, 69 characters. The veth's name is a one-way hash, and so are the keys; the alias is what lets GC tell, from
 * the links alone, which masquerade state still belongs to an attachment that is live on this node.
 */
export function hostVethAlias(network: string, containerID: string, ifname: string): string {
  return ALIAS_PREFIX + masqKeys(network, containerID, ifname).join(":");
}

/** The masquerade keys an alias written by hostVethAlias carries; none for any other alias. */
export function masqKeysOfAlias(alias: string | undefined): string[] {
  return alias?.startsWith(ALIAS_PREFIX)
    ? alias
        .slice(ALIAS_PREFIX.length)
        .split(":")
        .filter((k) => k !== "")
    : [];
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
