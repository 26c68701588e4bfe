/**
 * What the firewall reads from the previous result: every pod address (the reference accepts traffic of all of the
 * result's addresses, whatever interface they name) and, for `same-bridge`, the bridge (the first interface).
 */
import { formatIP, parseCidr, type Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import type { Result } from "../../lib/types.js";
import { validateIfname } from "../../lib/validate.js";

/** One pod address in canonical text, without prefix. */
export interface PodAddr {
  family: Family;
  ip: string;
}

/** The result's addresses, deduplicated, in result order; a malformed address is code 7. */
export function podAddresses(prev: Result): PodAddr[] {
  const out: PodAddr[] = [];
  for (const ip of prev.ips ?? []) {
    const c = parseCidr(ip.address);
    if (!c)
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `prevResult address ${JSON.stringify(ip.address)} is not a CIDR`,
      );
    const text = formatIP({ family: c.family, value: c.ip });
    if (!out.some((a) => a.ip === text)) out.push({ family: c.family, ip: text });
  }
  return out;
}

/** The address as the rules match it: a host prefix (the reference's `ipString`). */
export function hostCidr(a: PodAddr): string {
  return `${a.ip}/${a.family === 4 ? 32 : 128}`;
}

/**
 * The bridge `same-bridge` isolates: the result's first interface, as the reference takes it (chain firewall after
 * bridge). Its name reaches a rule, so it is checked as an interface name.
 */
export function bridgeOf(prev: Result): string {
  const first = prev.interfaces?.[0];
  if (!first)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      'interface needs to be set for ingress policy "same-bridge", make sure to chain "firewall" plugin with "bridge"',
    );
  return validateIfname(first.name, "prevResult.interfaces[0].name", ErrorCode.InvalidNetworkConfig);
}

/** The families of the pod's addresses, each once, 4 first. */
export function familiesOf(addrs: readonly PodAddr[]): Family[] {
  return ([4, 6] as const).filter((f) => addrs.some((a) => a.family === f));
}

/** Marker text of a pod's addresses (one word: DEL and GC read them back without prevResult). */
export function encodeAddrs(addrs: readonly PodAddr[]): string {
  return addrs.map((a) => a.ip).join(",");
}

/** The addresses a marker holds; anything that is not an address is dropped. */
export function decodeAddrs(text: string): PodAddr[] {
  const out: PodAddr[] = [];
  for (const part of text.split(",")) {
    const c = parseCidr(part.includes("/") ? part : `${part}/${part.includes(":") ? 128 : 32}`);
    if (c) out.push({ family: c.family, ip: formatIP({ family: c.family, value: c.ip }) });
  }
  return out;
}
