/**
 * The pod's side of an attachment: sysctls, addresses, link up, routes (every spec 1.1 field, including the `mtu`
 * and `advmss` the reference ignores), in one NetnsScript.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { ipJson, type LinkAddrs } from "../../lib/ip/read.js";
import { NetnsScript } from "../../lib/ip/script.js";
import type { IPConfig, Route } from "../../lib/types.js";
import type { BridgeConfig } from "./config.js";
import { nextHopFor, type GatewayAddr } from "./gateway.js";

/** `ip route add` arguments for one route on `dev`. */
export function routeArgs(route: Route, dev: string, gateways: readonly GatewayAddr[]): Array<string | number> {
  // append, not add: a second interface of the pod may bring a route to the same destination (a second default
  // route), which the kernel keeps beside the first, as the reference's RouteAddEcmp does. The family follows
  // from dst (-4/-6 are not accepted inside a batch).
  const args: Array<string | number> = ["route", "append", route.dst];
  const via = nextHopFor(route, gateways);
  if (via !== undefined) args.push("via", via);
  args.push("dev", dev);
  if (route.priority !== undefined) args.push("metric", route.priority);
  if (route.table !== undefined) args.push("table", route.table);
  if (route.scope !== undefined) args.push("scope", route.scope);
  if (route.mtu !== undefined) args.push("mtu", route.mtu);
  if (route.advmss !== undefined) args.push("advmss", route.advmss);
  return args;
}

export function podScript(
  conf: BridgeConfig,
  ifname: string,
  ips: readonly IPConfig[],
  routes: readonly Route[],
  gateways: readonly GatewayAddr[],
): NetnsScript {
  const s = new NetnsScript();
  const b = new IpBatch();
  const conf4 = ["net", "ipv4", "conf", ifname];
  const conf6 = ["net", "ipv6", "conf", ifname];
  if (ips.length > 0) {
    // DAD off unless asked for: with hairpin it reflects its own probes (dadfailed), and its wait costs seconds
    // per pod (plugins#680, kubernetes#54651).
    s.sysctl([...conf6, "accept_dad"], conf.enabledad ? "1" : "0", true);
    if (conf.enabledad) s.sysctl([...conf6, "enhanced_dad"], "1", true);
    s.sysctl([...conf4, "arp_notify"], "1");
    if (ips.some((ip) => ip.address.includes(":"))) {
      s.sysctl(["net", "ipv6", "conf", "lo", "disable_ipv6"], "0");
      s.sysctl([...conf6, "disable_ipv6"], "0");
      s.sysctl([...conf6, "keep_addr_on_down"], "1", true);
    }
    for (const ip of ips) {
      const v4 = !ip.address.includes(":");
      b.cmd("addr", "add", ip.address, ...(v4 ? ["brd", "+"] : []), "dev", ifname);
    }
  }
  if (!conf.disableContainerInterface) b.cmd("link", "set", "dev", ifname, "up");
  // IPAM's gateway-less default plus isDefaultGateway's default resolve to the same kernel route: add it once.
  const seen = new Set<string>();
  for (const r of routes) {
    const key = `${r.dst} ${nextHopFor(r, gateways) ?? ""} ${r.table ?? ""}`;
    if (seen.has(key)) continue;
    seen.add(key);
    b.cmd(...routeArgs(r, ifname, gateways));
  }
  return s.batch(b);
}

/** With enabledad: wait until no IPv6 address of the pod is tentative (50 ms steps, 5 s at most, as the reference). */
export async function waitForDad(netns: string, ifname: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const links = await ipJson<LinkAddrs[]>(
      ["-6", "addr", "show", "dev", ifname],
      netns === "" ? undefined : netns,
    ).catch(() => [] as LinkAddrs[]);
    const addrs = links.flatMap((l) => l.addr_info);
    const failed = addrs.find((a) => a.dadfailed);
    if (failed)
      throw new CniError(
        ErrorCode.KernelOperationFailed,
        `duplicate address detection failed for ${failed.local} on ${ifname}`,
      );
    if (!addrs.some((a) => a.tentative)) return;
    if (Date.now() > deadline)
      throw new CniError(ErrorCode.TryAgainLater, `IPv6 addresses of ${ifname} still tentative after 5 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
