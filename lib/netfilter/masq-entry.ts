/**
 * What the masquerade backends (masq-iptables.ts, masq-nft.ts) are given: validated entries in canonical text, and
 * the question GC asks about live attachments. Kept apart from masq.ts so the backends never import their caller.
 *
 * @example
 *   const [e] = normalizeEntries([{ network: "net1", containerID: "c1", ifname: "eth0", ip: "10.1.0.5", subnet: "10.1.0.7/24" }]);
 *   e.subnet; // "10.1.0.0/24"
 */
import { bigIntToIP, cidrContains, formatIP, parseCidr, parseIP, type Family } from "../cidr.js";
import { CniError, ErrorCode } from "../errors.js";

/** One masqueraded address of one attachment. ip: the pod address without prefix; subnet: the network CIDR of that address (e.g. "10.1.0.0/24"). */
export interface MasqEntry {
  network: string;
  containerID: string;
  ifname: string;
  ip: string;
  subnet: string;
}

/**
 * A MasqEntry after validation, in the canonical text the kernel tools print back (dotted quad, RFC 5952 IPv6,
 * network address with its prefix), so that what we wrote and what we read compare as plain strings.
 */
export interface NormalizedMasqEntry extends MasqEntry {
  family: Family;
}

/**
 * The masqKeys of every attachment that is live right now. GC calls it after each read of a backend's state and
 * before deleting anything, never before the read: an ADD installs its masquerade only after it made itself live,
 * so whatever state the read saw either belongs to something this call reports or has lost its owner.
 */
export type LiveMasqKeys = () => Promise<ReadonlySet<string>>;

// The names end up inside iptables-restore and nft scripts, quoted: a quote, a backslash or a newline would let
// them write rules of their own. Callers validate them already (lib/validate.ts); this is the last line.
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Refuse (code 999) a name that could break out of its quotes in a firewall script. */
export function requireSafe(what: string, value: string): void {
  if (!SAFE_NAME.test(value) || value.length > 255) {
    throw new CniError(ErrorCode.Internal, `ipMasq: refusing ${what} ${JSON.stringify(value.slice(0, 64))}`);
  }
}

/** Check an attachment's identity before it reaches a firewall script. */
export function requireSafeIdentity(network: string, containerID: string, ifname?: string): void {
  requireSafe("network name", network);
  requireSafe("containerID", containerID);
  if (ifname !== undefined) requireSafe("interface name", ifname);
}

/** Validate entries and bring addresses to canonical text; an address outside its own subnet is a caller bug. */
export function normalizeEntries(entries: readonly MasqEntry[]): NormalizedMasqEntry[] {
  return entries.map((e) => {
    requireSafeIdentity(e.network, e.containerID, e.ifname);
    const ip = parseIP(e.ip);
    const subnet = parseCidr(e.subnet);
    if (ip === undefined)
      throw new CniError(ErrorCode.Internal, `ipMasq: ${JSON.stringify(e.ip)} is not an IP address`);
    if (subnet === undefined)
      throw new CniError(ErrorCode.Internal, `ipMasq: ${JSON.stringify(e.subnet)} is not a CIDR`);
    if (!cidrContains(subnet, ip)) {
      throw new CniError(ErrorCode.Internal, `ipMasq: address ${e.ip} is not inside its subnet ${e.subnet}`);
    }
    return {
      ...e,
      family: ip.family,
      ip: formatIP(ip),
      subnet: `${bigIntToIP(subnet.family, subnet.network)}/${subnet.prefix}`,
    };
  });
}
