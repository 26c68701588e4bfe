/**
 * IP addresses and CIDR blocks as BigInt values, with the text forms Go's `net` package reads and prints.
 *
 * The Go reference names reservation files by `net.IP.String()`, so the text form here must match it byte for
 * byte: dotted quad for IPv4, RFC 5952 compressed lower-case hex for IPv6.
 *
 * @example
 *   const net = parseCidr("10.1.2.0/24")!;        // { family: 4, ip: 0x0a010200n, network: 0x0a010200n, prefix: 24 }
 *   formatIP({ family: 4, value: net.network + 2n }); // "10.1.2.2"
 */

/** The address family: 4 for IPv4, 6 for IPv6. */
export type Family = 4 | 6;

/** One IP address. The family is kept beside the value because ::a01:203 and 10.1.2.3 share one integer. */
export interface IPAddr {
  readonly family: Family;
  readonly value: bigint;
}

/** A parsed CIDR: the address as written (host bits kept, so callers can reject them) and its network address. */
export interface Cidr {
  readonly family: Family;
  /** The address exactly as written, host bits included. */
  readonly ip: bigint;
  /** The address with the host bits cleared. */
  readonly network: bigint;
  readonly prefix: number;
}

/** Number of bits in an address of this family (32 or 128). */
export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** The largest address value of a family (255.255.255.255 or ffff:...:ffff). */
export function maxValue(family: Family): bigint {
  return (1n << BigInt(bitsOf(family))) - 1n;
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** Dotted quad to integer; leading zeros are refused (Go does too: "010" would be octal elsewhere). */
function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

/** Hex groups to 16-bit values; a dotted quad may close only the last half of the address. */
function parseV6Groups(text: string, allowV4: boolean): number[] | undefined {
  if (text === "") return [];
  const groups: number[] = [];
  const parts = text.split(":");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] ?? "";
    if (allowV4 && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseV4(part);
      if (v4 === undefined) return undefined;
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    } else if (V6_GROUP.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/** IPv6 text to integer: at most one "::", no zone (Go refuses zones in addresses it stores). */
function parseV6(text: string): bigint | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = parseV6Groups(halves[0] ?? "", halves.length === 1);
  const tail = halves.length === 2 ? parseV6Groups(halves[1] ?? "", true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const g of [...head, ...new Array<number>(missing).fill(0), ...tail]) value = (value << 16n) | BigInt(g);
  return value;
}

/**
 * Parse an IPv4 or IPv6 address, as strictly as Go's `net.ParseIP`, or return undefined.
 *
 * IPv4-mapped IPv6 (::ffff:1.2.3.4) is refused: Go silently turns it into the IPv4 address, so accepting it would
 * let one address hide under two spellings (two reservation files, a "free" address that is taken).
 *
 * @example parseIP("2001:DB8::1") // { family: 6, value: 0x20010db8000000000000000000000001n }
 */
export function parseIP(text: string): IPAddr | undefined {
  if (text.includes(":")) {
    const value = parseV6(text);
    if (value === undefined || value >> 32n === V4_MAPPED_PREFIX >> 32n) return undefined;
    return { family: 6, value };
  }
  const value = parseV4(text);
  return value === undefined ? undefined : { family: 4, value };
}

/** The integer value of an address text, or undefined if it does not parse (see parseIP). */
export function ipToBigInt(text: string): bigint | undefined {
  return parseIP(text)?.value;
}

/** Network mask of a prefix length as an integer (e.g. /24 in IPv4 -> 0xffffff00). */
export function maskOf(family: Family, prefix: number): bigint {
  const hostBits = BigInt(bitsOf(family) - prefix);
  return maxValue(family) ^ ((1n << hostBits) - 1n);
}

/**
 * Parse "addr/prefix" like Go's `net.ParseCIDR` (the prefix may carry leading zeros, as Go's allows), or return
 * undefined. The address as written is kept in `ip`, so callers can tell "10.0.0.1/24" from "10.0.0.0/24".
 *
 * @example parseCidr("fd09::/64") // { family: 6, ip: 0xfd09n << 112n, network: 0xfd09n << 112n, prefix: 64 }
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = parseIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(addr.family)) return undefined;
  return { family: addr.family, ip: addr.value, network: addr.value & maskOf(addr.family, prefix), prefix };
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
}

/** The longest run (at least two) of zero groups, the first one on a tie, as RFC 5952 section 4.2 asks. */
function longestZeroRun(groups: readonly number[]): { start: number; length: number } {
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  return best;
}

function formatV6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  const run = longestZeroRun(groups);
  const hex = (gs: readonly number[]): string => gs.map((g) => g.toString(16)).join(":");
  if (run.start < 0) return hex(groups);
  return `${hex(groups.slice(0, run.start))}::${hex(groups.slice(run.start + run.length))}`;
}

/**
 * Canonical text of an address, identical to Go's `net.IP.String()` for every address parseIP accepts.
 *
 * @example formatIP({ family: 6, value: 0x20010db8000100000000000000000002n }) // "2001:db8:1::2"
 */
export function formatIP(ip: IPAddr): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

/** Canonical text of an integer address of a given family (see formatIP). */
export function bigIntToIP(family: Family, value: bigint): string {
  return formatIP({ family, value });
}

/** "ip/prefix" text of a CIDR, with the address as written (Go's `IPNet.String()` on an unmasked IPNet). */
export function formatCidr(cidr: Cidr): string {
  return `${bigIntToIP(cidr.family, cidr.ip)}/${cidr.prefix}`;
}

/** True when the CIDR was written as its network address, i.e. no host bits are set ("10.1.2.0/24", not ".1/24"). */
export function isNetworkAddress(cidr: Cidr): boolean {
  return cidr.ip === cidr.network;
}

/** The last address of the block: the IPv4 broadcast address, or the highest IPv6 address in it. */
export function lastAddress(cidr: Cidr): bigint {
  return cidr.network | (maxValue(cidr.family) ^ maskOf(cidr.family, cidr.prefix));
}

/** Alias of lastAddress named for IPv4 readers: the all-ones host part. */
export function broadcastAddress(cidr: Cidr): bigint {
  return lastAddress(cidr);
}

/** True when ip lies in the block (same family, network part equal). */
export function cidrContains(cidr: Cidr, ip: IPAddr): boolean {
  return ip.family === cidr.family && (ip.value & maskOf(cidr.family, cidr.prefix)) === cidr.network;
}

/** True when two blocks share at least one address (of one family, one block then contains the other). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.network <= lastAddress(b) && b.network <= lastAddress(a);
}

/** Same family and same value. */
export function ipEquals(a: IPAddr, b: IPAddr): boolean {
  return a.family === b.family && a.value === b.value;
}

/** The next address, or undefined past the top of the address space (Go would wrap or grow; we refuse). */
export function nextIP(ip: IPAddr): IPAddr | undefined {
  return ip.value === maxValue(ip.family) ? undefined : { family: ip.family, value: ip.value + 1n };
}

/** The previous address, or undefined below 0.0.0.0 / ::. */
export function prevIP(ip: IPAddr): IPAddr | undefined {
  return ip.value === 0n ? undefined : { family: ip.family, value: ip.value - 1n };
}
