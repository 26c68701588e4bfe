/**
 * host-local ranges and range sets: the validated shapes and the questions the allocator asks of them.
 *
 * A range is an inclusive span [rangeStart, rangeEnd] inside one subnet, with a gateway that is never handed out.
 * A range set is a list of ranges of one family; ADD takes exactly one address from each set.
 *
 * @example
 *   const set = canonicalizeRangeSet([{ subnet: "10.1.2.0/24" }], 0);
 *   rangeSetToString(set); // "10.1.2.1-10.1.2.254"
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import {
  type Cidr,
  type IPAddr,
  bigIntToIP,
  bitsOf,
  cidrContains,
  formatCidr,
  formatIP,
  isNetworkAddress,
  lastAddress,
  parseCidr,
  parseIP,
} from "../../lib/cidr.js";

/** One validated range with every default filled in. */
export interface Range {
  /** The subnet, always written as its network address. */
  readonly subnet: Cidr;
  /** First address handed out, inclusive. */
  readonly rangeStart: IPAddr;
  /** Last address handed out, inclusive. */
  readonly rangeEnd: IPAddr;
  /** Never handed out. Like the reference, it is not required to lie in the subnet or even share its family. */
  readonly gateway: IPAddr;
}

/** Ranges of one family; one address is allocated per set. */
export type RangeSet = readonly Range[];

/** A range as written in the config, after JSON type checks and before any address validation. */
export interface RawRange {
  subnet?: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
  /** Where the range came from, for error messages (e.g. "ipam.ranges[0][1]"). */
  where: string;
}

/** The text form the reference uses in messages: "rangeStart-rangeEnd". */
export function rangeToString(r: Range): string {
  return `${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)}`;
}

/** Comma-joined rangeToString of every range, as in "no IP addresses available in range set: ...". */
export function rangeSetToString(set: RangeSet): string {
  return set.map(rangeToString).join(",");
}

/** The four addresses of a range as text, for logs and tests. */
export function describeRange(r: Range): { subnet: string; rangeStart: string; rangeEnd: string; gateway: string } {
  return {
    subnet: formatCidr(r.subnet),
    rangeStart: formatIP(r.rangeStart),
    rangeEnd: formatIP(r.rangeEnd),
    gateway: formatIP(r.gateway),
  };
}

/** True when ip is in the subnet and between rangeStart and rangeEnd (the reference's Range.Contains). */
export function rangeContains(r: Range, ip: IPAddr): boolean {
  return cidrContains(r.subnet, ip) && ip.value >= r.rangeStart.value && ip.value <= r.rangeEnd.value;
}

/** The range of the set that holds ip, if any. */
export function rangeFor(set: RangeSet, ip: IPAddr): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

/** True when ip is the gateway of r; gateways of other ranges in the set are ordinary addresses here, as in Go. */
export function isGateway(r: Range, ip: IPAddr): boolean {
  return r.gateway.family === ip.family && r.gateway.value === ip.value;
}

/** True when two ranges share an address: same family and intersecting [start, end] spans. */
export function rangesOverlap(a: Range, b: Range): boolean {
  return (
    a.subnet.family === b.subnet.family &&
    a.rangeStart.value <= b.rangeEnd.value &&
    b.rangeStart.value <= a.rangeEnd.value
  );
}

/** True when any range of one set overlaps any range of the other. */
export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((r) => b.some((r1) => rangesOverlap(r, r1)));
}

type Fail = (msg: string) => CniError;

function invalidConfig(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

/** Parse an address written in the config; the key is named so a user can find the typo. */
export function parseConfigIP(text: string, where: string): IPAddr {
  const ip = parseIP(text);
  if (ip === undefined) {
    throw invalidConfig(
      `invalid IP address: ${text} (${where})`,
      "IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are refused: write the IPv4 address",
    );
  }
  return ip;
}

/** Parse a CIDR written in the config (host bits allowed here; the caller decides). */
export function parseConfigCidr(text: string, where: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === undefined) throw invalidConfig(`invalid CIDR address: ${text} (${where})`);
  return cidr;
}

function parseSubnet(raw: RawRange, fail: Fail): Cidr {
  if (raw.subnet === undefined) throw fail(`${raw.where}.subnet is required`);
  const subnet = parseConfigCidr(raw.subnet, `${raw.where}.subnet`);
  // Without two host bits there is no address left besides network and broadcast (or the lone address).
  if (subnet.prefix > bitsOf(subnet.family) - 2) throw fail(`Network ${formatCidr(subnet)} too small to allocate from`);
  if (!isNetworkAddress(subnet)) {
    throw fail(
      `Network has host bits set. For a subnet mask of length ${subnet.prefix} the network address is ${bigIntToIP(subnet.family, subnet.network)}`,
    );
  }
  return subnet;
}

/** The reference's default end: IPv4 stops before the broadcast address, IPv6 has none. */
function defaultRangeEnd(subnet: Cidr): IPAddr {
  const last = lastAddress(subnet);
  return { family: subnet.family, value: subnet.family === 4 ? last - 1n : last };
}

/**
 * Validate the bounds in the reference's order: rangeStart is checked against a given rangeEnd (so start > end
 * reports "RangeStart ... not in network", as Go does), then rangeEnd against the settled rangeStart.
 */
function parseBounds(raw: RawRange, subnet: Cidr, fail: Fail): { rangeStart: IPAddr; rangeEnd: IPAddr } {
  const net = formatCidr(subnet);
  const givenEnd = raw.rangeEnd === undefined ? undefined : parseConfigIP(raw.rangeEnd, `${raw.where}.rangeEnd`);
  let rangeStart: IPAddr = { family: subnet.family, value: subnet.network + 1n };
  if (raw.rangeStart !== undefined) {
    rangeStart = parseConfigIP(raw.rangeStart, `${raw.where}.rangeStart`);
    if (!cidrContains(subnet, rangeStart) || (givenEnd !== undefined && rangeStart.value > givenEnd.value)) {
      throw fail(`RangeStart ${formatIP(rangeStart)} not in network ${net}`);
    }
  }
  const rangeEnd = givenEnd ?? defaultRangeEnd(subnet);
  if (!cidrContains(subnet, rangeEnd) || rangeEnd.value < rangeStart.value) {
    throw fail(`RangeEnd ${formatIP(rangeEnd)} not in network ${net}`);
  }
  // ::ffff:0:0/96 aliases IPv4 addresses: such an address cannot name a reservation file both implementations
  // read the same way, and handing one out would leak it. Refuse the range instead of skipping inside it.
  if (subnet.family === 6 && rangeStart.value <= MAPPED_LAST && rangeEnd.value >= MAPPED_FIRST) {
    throw fail(
      `range ${formatIP(rangeStart)}-${formatIP(rangeEnd)} includes IPv4-mapped addresses (::ffff:0:0/96); choose a range outside them`,
    );
  }
  return { rangeStart, rangeEnd };
}

const MAPPED_FIRST = 0xffffn << 32n;
const MAPPED_LAST = MAPPED_FIRST | 0xffffffffn;

/**
 * Validate one range and fill in its defaults exactly as the reference does: rangeStart = network + 1,
 * rangeEnd = broadcast - 1 (IPv4) or the last address (IPv6), gateway = network + 1 (skipped while iterating).
 */
export function canonicalizeRange(raw: RawRange, fail: Fail): Range {
  const subnet = parseSubnet(raw, fail);
  const gateway =
    raw.gateway === undefined
      ? { family: subnet.family, value: subnet.network + 1n }
      : parseConfigIP(raw.gateway, `${raw.where}.gateway`);
  return { subnet, gateway, ...parseBounds(raw, subnet, fail) };
}

/**
 * Validate a range set: non-empty, every range valid, one family, no two ranges overlapping.
 * Errors read "invalid range set N: ..." with N the set's index after runtime ranges were prepended.
 */
export function canonicalizeRangeSet(raws: readonly RawRange[], index: number): Range[] {
  const fail: Fail = (msg) => invalidConfig(`invalid range set ${index}: ${msg}`);
  if (raws.length === 0) throw fail("empty range set");
  const set: Range[] = [];
  for (const raw of raws) {
    const r = canonicalizeRange(raw, fail);
    if (set.length > 0 && set[0]?.subnet.family !== r.subnet.family) throw fail("mixed address families");
    set.push(r);
  }
  set.forEach((r1, i) => {
    set.slice(i + 1).forEach((r2) => {
      if (rangesOverlap(r1, r2)) throw fail(`subnets ${rangeToString(r1)} and ${rangeToString(r2)} overlap`);
    });
  });
  return set;
}
