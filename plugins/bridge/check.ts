/**
 * bridge CHECK: is the node and the pod still as ADD left them? Works in L2 mode (the reference fails there with
 * "no plugin name provided"), and also verifies what the reference does not: hairpin and isolation flags, MTU,
 * the gateway addresses on the bridge, masquerade. Routes are read from every table, and compared with what
 * prevResult lists (later plugins in the chain may have changed them, and prevResult says so).
 */
import { parseCidr, bigIntToIP } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { delegate } from "../../lib/invoke.js";
import { ipJson, type AddrInfo, type LinkInfo, type RouteInfo } from "../../lib/ip/read.js";
import { checkMasq, resolveMasqBackend } from "../../lib/netfilter/masq.js";
import type { CmdContext } from "../../lib/skel.js";
import type { Interface, Result, Route } from "../../lib/types.js";
import { parseResult } from "../../lib/version.js";
import { masqEntries } from "./masq-entries.js";
import { loadBridgeConfig, type BridgeConfig } from "./config.js";
import { checkSpoofCheck } from "./spoofcheck.js";
import { hasVlans, portVlanProblem, readPortVlans, usesVlanGateway, vlanFilteringOn, vlanGatewayName } from "./vlan.js";

type Link = LinkInfo & { addr_info?: AddrInfo[] };

const failed = (msg: string, details = "") => new CniError(ErrorCode.CheckFailed, msg, details);

/** Kernel route text ("default", "10.1.0.5", "10.1.0.0/24") in canonical CIDR form. */
function canonicalDst(dst: string, family: 4 | 6): string {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  const c = parseCidr(dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return c ? `${bigIntToIP(c.family, c.network)}/${c.prefix}` : dst;
}

function hasAddr(link: Link, cidr: string): boolean {
  const c = parseCidr(cidr);
  return (link.addr_info ?? []).some((a) => {
    const h = parseCidr(`${a.local}/${a.prefixlen}`);
    return h !== undefined && c !== undefined && h.ip === c.ip && h.prefix === c.prefix && h.family === c.family;
  });
}

/** Returns the host end of the pod's veth, for the checks that follow. */
function checkHostSide(conf: BridgeConfig, prev: Result, hostLinks: Link[], pod: Link, ctx: CmdContext): Link {
  const br = hostLinks.find((l) => l.ifname === conf.bridge);
  if (!br) throw failed(`bridge ${conf.bridge} does not exist`);
  if (br.linkinfo?.info_kind !== "bridge")
    throw failed(`${conf.bridge} is not a bridge`, `it is a ${br.linkinfo?.info_kind}`);
  const prevBr = prev.interfaces?.find((i) => i.name === conf.bridge && !i.sandbox);
  if (prevBr?.mac && prevBr.mac !== br.address)
    throw failed(`bridge ${conf.bridge} MAC ${br.address} does not match ${prevBr.mac}`);
  if (conf.promiscMode && !(br.promiscuity && br.promiscuity > 0))
    throw failed(`bridge ${conf.bridge} is not in promiscuous mode`);
  if (hasVlans(conf) && !vlanFilteringOn(br))
    throw failed(`vlan: bridge ${conf.bridge} has vlan_filtering off`, "its ports' VLANs are not enforced");

  const host = hostLinks.find((l) => l.ifindex === pod.link_index && l.linkinfo?.info_kind === "veth");
  if (!host) throw failed(`the host end of ${ctx.ifname} (ifindex ${pod.link_index}) does not exist`);
  if (host.master !== conf.bridge)
    throw failed(`${host.ifname} is not attached to ${conf.bridge}`, `its master is ${host.master ?? "none"}`);
  const prevHost = prev.interfaces?.find((i) => i.name === host.ifname && !i.sandbox);
  if (prevHost?.mac && prevHost.mac !== host.address)
    throw failed(`interface ${host.ifname} MAC ${host.address} does not match ${prevHost.mac}`);
  const port = host.linkinfo?.info_slave_data ?? {};
  if (Boolean(port.hairpin) !== conf.hairpinMode)
    throw failed(
      `hairpin mode of ${host.ifname} is ${port.hairpin ? "on" : "off"}, config says ${conf.hairpinMode ? "on" : "off"}`,
    );
  if (Boolean(port.isolated) !== conf.portIsolation)
    throw failed(
      `port isolation of ${host.ifname} is ${port.isolated ? "on" : "off"}, config says ${conf.portIsolation ? "on" : "off"}`,
    );
  if (conf.mtu && host.mtu !== conf.mtu) throw failed(`MTU of ${host.ifname} is ${host.mtu}, config says ${conf.mtu}`);

  if (conf.isGateway) {
    // With a VLAN, the gateway is the `<bridge>.<vlan>` interface (vlan.ts), and it is in prevResult.
    let gwLink: Link = br;
    if (usesVlanGateway(conf) && (prev.ips ?? []).some((ip) => ip.gateway)) {
      const name = vlanGatewayName(conf.bridge, conf.vlan);
      const found = hostLinks.find((l) => l.ifname === name);
      if (!found) throw failed(`VLAN gateway interface ${name} does not exist`);
      const prevGw = prev.interfaces?.find((i) => i.name === name && !i.sandbox);
      if (prevGw?.mac && prevGw.mac !== found.address)
        throw failed(`interface ${name} MAC ${found.address} does not match ${prevGw.mac}`);
      gwLink = found;
    }
    for (const ip of prev.ips ?? []) {
      if (!ip.gateway) continue;
      const prefix = parseCidr(ip.address)!.prefix;
      if (!hasAddr(gwLink, `${ip.gateway}/${prefix}`))
        throw failed(`gateway ${ip.gateway}/${prefix} is not on ${gwLink === br ? "bridge " : ""}${gwLink.ifname}`);
    }
  }
  return host;
}

function checkPodSide(
  conf: BridgeConfig,
  prev: Result,
  podIface: Interface,
  podIndex: number,
  pod: Link,
  routes: Array<RouteInfo & { family: 4 | 6 }>,
  ctx: CmdContext,
): void {
  if (pod.linkinfo?.info_kind !== "veth")
    throw failed(`${ctx.ifname} in ${ctx.netns} is not a veth`, `it is a ${pod.linkinfo?.info_kind}`);
  if (podIface.mac && podIface.mac !== pod.address)
    throw failed(`interface ${ctx.ifname} MAC ${pod.address} does not match ${podIface.mac}`);
  if (!conf.disableContainerInterface && !pod.flags.includes("UP")) throw failed(`interface ${ctx.ifname} is down`);
  if (conf.mtu && pod.mtu !== conf.mtu) throw failed(`MTU of ${ctx.ifname} is ${pod.mtu}, config says ${conf.mtu}`);
  for (const ip of prev.ips ?? []) {
    if (ip.interface !== undefined && ip.interface !== podIndex) continue;
    if (!hasAddr(pod, ip.address)) throw failed(`address ${ip.address} is not on ${ctx.ifname}`);
  }
  for (const r of prev.routes ?? []) {
    if (!routeExists(r, routes)) throw failed(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in ${ctx.netns}`);
  }
}

function routeExists(r: Route, routes: Array<RouteInfo & { family: 4 | 6 }>): boolean {
  const family = r.dst.includes(":") ? 6 : 4;
  const want = canonicalDst(r.dst, family);
  return routes.some(
    (k) =>
      k.family === family &&
      canonicalDst(k.dst, family) === want &&
      (r.gw === undefined || k.gateway === r.gw) &&
      (r.table === undefined || String(r.table) === k.table || (r.table === 254 && k.table === "main")),
  );
}

export async function check(ctx: CmdContext): Promise<void> {
  const conf = loadBridgeConfig(ctx.config, ctx.args);
  if (ctx.config.prevResult === undefined)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  const prev = parseResult(ctx.config.prevResult, ctx.version);
  if (conf.ipamType) await delegate(conf.ipamType, "CHECK", ctx);

  const podIndex = (prev.interfaces ?? []).findIndex((i) => i.name === ctx.ifname && i.sandbox === ctx.netns);
  if (podIndex < 0) throw failed(`prevResult has no interface ${ctx.ifname} with sandbox ${ctx.netns}`);
  const podIface = prev.interfaces![podIndex]!;

  const [hostLinks, podLinks, r4, r6] = await Promise.all([
    ipJson<Link[]>(["-details", "addr", "show"]),
    ipJson<Link[]>(["-details", "addr", "show", "dev", ctx.ifname], ctx.netns).catch(() => [] as Link[]),
    ipJson<RouteInfo[]>(["-4", "route", "show", "table", "all"], ctx.netns),
    ipJson<RouteInfo[]>(["-6", "route", "show", "table", "all"], ctx.netns),
  ]);
  const pod = podLinks[0];
  if (!pod) throw failed(`interface ${ctx.ifname} does not exist in ${ctx.netns}`);
  const routes = [...r4.map((r) => ({ ...r, family: 4 as const })), ...r6.map((r) => ({ ...r, family: 6 as const }))];
  checkPodSide(conf, prev, podIface, podIndex, pod, routes, ctx);
  const host = checkHostSide(conf, prev, hostLinks, pod, ctx);

  if (hasVlans(conf)) {
    const problem = portVlanProblem(conf, host.ifname, await readPortVlans(host.ifname));
    if (problem) throw failed(`vlan: ${problem}`);
  }
  if (conf.macspoofchk) {
    const problem = await checkSpoofCheck(host.ifname, pod.address ?? "");
    if (problem) throw failed(`macspoofchk: ${problem}`);
  }
  if (conf.ipMasq && conf.ipamType) {
    const ips = (prev.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === podIndex);
    const problem = await checkMasq(resolveMasqBackend(conf.ipMasqBackend), masqEntries(conf, ctx, ips));
    if (problem) throw failed(`masquerade: ${problem}`);
  }
}
