/**
 * How an attachment's firewall state is named, so that DEL and GC find it from the attachment alone: no
 * prevResult, no mappings, no namespace needed.
 *
 * - iptables: the reference's names, byte for byte (chain `CNI-DN-` + sha512(network + containerID), entry-rule
 *   comment `dnat name: "<net>" id: "<id>"`), so the reference's DEL removes ours and ours removes the reference's.
 *   Like the reference, it ignores the interface name.
 * - nftables: an owner string `<hash16(network)>-<hash16(ifname:containerID)>` on every element and rule (the
 *   instance hash the reference's nftables masquerade uses): bounded (33 of nft's 128 comment characters), per
 *   attachment, and with the network visible to GC as the prefix.
 */
import { hashHex } from "../../lib/hash.js";

const sha512hex = (s: string): string => hashHex("sha512", s);

/** The reference's per-container DNAT chain: "CNI-DN-" + sha512(network + containerID) hex, 28 characters in all. */
export function dnatChainName(network: string, containerID: string): string {
  return `CNI-DN-${sha512hex(network + containerID)}`.slice(0, 28);
}

/** The per-container SNAT chain of portmap versions before 0.7; the reference still removes it on DEL. */
export function oldSnatChainName(network: string, containerID: string): string {
  return `CNI-SN-${sha512hex(network + containerID)}`.slice(0, 28);
}

/** The reference's entry-rule comment (Go `dnat name: "%s" id: "%s"`, cut to iptables' 255 characters). */
export function dnatComment(network: string, containerID: string): string {
  const c = `dnat name: "${network}" id: "${containerID}"`;
  return c.length <= 255 ? c : `${c.slice(0, 253)}...`;
}

/** The network part of an nft owner string: GC selects a network's elements by this prefix. */
export function nftNetworkTag(network: string): string {
  return sha512hex(network).slice(0, 16);
}

/** The owner string written as comment on every nft element and rule of the attachment. */
export function nftOwner(network: string, containerID: string, ifname: string): string {
  return `${nftNetworkTag(network)}-${sha512hex(`${ifname}:${containerID}`).slice(0, 16)}`;
}
