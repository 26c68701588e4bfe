/**
 * Which addresses of the previous result the ports map to: the reference's choice, so that both plugins forward
 * to the same address of a multi-homed result.
 */
import { bigIntToIP, parseCidr, type Family } from "../../lib/cidr.js";
import type { Result } from "../../lib/types.js";

/** One pod address the mappings point at. */
export interface PodAddr {
  family: Family;
  /** The address, canonical text. */
  ip: string;
  /** Its subnet ("10.1.0.0/24"): the reference masquerades hairpin traffic from the whole subnet, not just the pod. */
  subnet: string;
}

/**
 * The first address of each family that belongs to the container's interface `ifname`: an address whose
 * `interface` index names another interface, or one without a sandbox (a host-side interface), is skipped; an
 * address without index, or with an index outside the list, is taken (the reference's rules).
 */
export function podAddresses(prev: Result, ifname: string): PodAddr[] {
  const out = new Map<Family, PodAddr>();
  const interfaces = prev.interfaces ?? [];
  for (const ip of prev.ips ?? []) {
    const c = parseCidr(ip.address);
    if (!c || out.has(c.family)) continue;
    const idx = ip.interface;
    if (idx !== undefined && idx >= 0 && idx < interfaces.length) {
      const intf = interfaces[idx]!;
      if (intf.name !== ifname || !intf.sandbox) continue;
    }
    out.set(c.family, {
      family: c.family,
      ip: bigIntToIP(c.family, c.ip),
      subnet: `${bigIntToIP(c.family, c.network)}/${c.prefix}`,
    });
  }
  return [...out.values()].sort((a, b) => a.family - b.family);
}
