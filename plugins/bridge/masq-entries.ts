/**
 * The masquerade entries of an attachment (one per address), as ADD installs them and CHECK compares them: the
 * one definition both verbs use, so what CHECK looks for is by construction what ADD made.
 *
 * @example
 *   masqEntries(conf, ctx, [{ address: "10.22.0.5/16", interface: 2 }]); // [{ ip: "10.22.0.5", subnet: "10.22.0.0/16", ... }]
 */
import { bigIntToIP, parseCidr } from "../../lib/cidr.js";
import type { MasqEntry } from "../../lib/netfilter/masq.js";
import type { CmdContext } from "../../lib/skel.js";
import type { IPConfig } from "../../lib/types.js";
import type { BridgeConfig } from "./config.js";

/** One entry per address: the pod's IP, masqueraded when it leaves its subnet, keyed by the attachment. */
export function masqEntries(
  conf: Pick<BridgeConfig, "name">,
  ctx: Pick<CmdContext, "containerID" | "ifname">,
  ips: readonly IPConfig[],
): MasqEntry[] {
  return ips.map((ip) => {
    const c = parseCidr(ip.address)!;
    return {
      network: conf.name,
      containerID: ctx.containerID,
      ifname: ctx.ifname,
      ip: bigIntToIP(c.family, c.ip),
      subnet: `${bigIntToIP(c.family, c.network)}/${c.prefix}`,
    };
  });
}
