/**
 * Addresses in rules, in the canonical text the kernel tools print back, so that what we write and what
 * iptables-save or `nft -j list` shows compare as plain strings.
 *
 * - iptables prints every address with its prefix, masked: `10.1.0.5/32`, `10.1.0.0/24`.
 * - nft prints a full-length prefix as a bare address, a shorter one masked with its prefix: `10.1.0.5`, `10.1.0.0/24`.
 *
 * @example
 *   canonicalCidr("10.1.0.7/24");   // "10.1.0.0/24"
 *   canonicalCidr("fd00::5");       // "fd00::5/128"
 *   nftAddrText("10.1.0.5/32");     // "10.1.0.5"
 */
import { bigIntToIP, parseCidr, type Family } from "../cidr.js";

/** The prefix of a single address of a family: 32 or 128. */
export function hostPrefix(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** "a.b.c.d" or "a.b.c.d/n" (IPv6 alike) parsed, a bare address as a host prefix; undefined when it is neither. */
function parseAddrOrCidr(text: string): ReturnType<typeof parseCidr> {
  return parseCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`);
}

/**
 * "10.1.0.0/24", "10.1.0.5" or "10.1.0.5/32" as iptables prints it: the masked network with its prefix; undefined
 * when the text is no address, or (with `family`) one of the other family.
 */
export function canonicalCidr(text: string, family?: Family): string | undefined {
  const c = parseAddrOrCidr(text);
  if (!c || (family !== undefined && c.family !== family)) return undefined;
  return `${bigIntToIP(c.family, c.network)}/${c.prefix}`;
}

/** canonicalCidr, or the text itself when it is no address (a rule's word we compare as it is). */
export function canonicalAddr(text: string): string {
  return canonicalCidr(text) ?? text;
}

/** The address of "ip" or "ip/prefix" in canonical text, unmasked ("10.1.0.5/24" -> "10.1.0.5"). */
export function hostAddr(text: string): string | undefined {
  const c = parseAddrOrCidr(text);
  return c ? bigIntToIP(c.family, c.ip) : undefined;
}

/** An address as a host prefix in iptables' text: "10.1.0.5" -> "10.1.0.5/32". */
export function hostCidr(ip: string, family: Family): string {
  return `${ip}/${hostPrefix(family)}`;
}

/** An address or prefix the way nft prints it back: a full-length prefix as a bare address. */
export function nftAddrText(text: string): string {
  const c = parseAddrOrCidr(text);
  if (!c) return text;
  const net = bigIntToIP(c.family, c.network);
  return c.prefix === hostPrefix(c.family) ? net : `${net}/${c.prefix}`;
}
