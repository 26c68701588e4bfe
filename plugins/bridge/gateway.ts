/**
 * Gateways and routes from an IPAM result, the way the reference computes them: a gateway per address (IPAM's, or
 * the subnet's first host when isGateway and IPAM gave none), and with isDefaultGateway a default route per family
 * unless IPAM already routes the default through a gateway.
 */
import { bigIntToIP, parseCidr, type Family } from "../../lib/cidr.js";
import type { IPConfig, Route } from "../../lib/types.js";
import type { BridgeConfig } from "./config.js";

export interface GatewayAddr {
  family: Family;
  /** "10.1.0.1/24": the gateway with its subnet's prefix, as it goes on the bridge. */
  cidr: string;
  ip: string;
}

/** The gateway of each address (deduplicated), with the address's prefix. */
export function gatewaysOf(ips: readonly IPConfig[], conf: BridgeConfig): { ips: IPConfig[]; gateways: GatewayAddr[] } {
  const gateways: GatewayAddr[] = [];
  const out = ips.map((ip) => {
    const c = parseCidr(ip.address)!;
    let gw = ip.gateway;
    if (gw === undefined && conf.isGateway) gw = bigIntToIP(c.family, c.network + 1n);
    if (gw !== undefined && !gateways.some((g) => g.ip === gw))
      gateways.push({ family: c.family, cidr: `${gw}/${c.prefix}`, ip: gw });
    return gw === undefined ? { ...ip } : { ...ip, gateway: gw };
  });
  return { ips: out, gateways };
}

const DEFAULT_DST: Record<Family, string> = { 4: "0.0.0.0/0", 6: "::/0" };

function familyOfDst(dst: string): Family {
  return dst.includes(":") ? 6 : 4;
}

/** IPAM's routes, plus a default route per family through its first gateway when isDefaultGateway asks for one. */
export function routesOf(ipamRoutes: readonly Route[], gateways: readonly GatewayAddr[], conf: BridgeConfig): Route[] {
  const routes = ipamRoutes.map((r) => ({ ...r }));
  if (!conf.isDefaultGateway) return routes;
  for (const family of [4, 6] as const) {
    const gw = gateways.find((g) => g.family === family);
    if (!gw) continue;
    const hasDefault = routes.some((r) => r.dst === DEFAULT_DST[family] && r.gw !== undefined);
    if (!hasDefault) routes.push({ dst: DEFAULT_DST[family], gw: gw.ip });
  }
  return routes;
}

/** The gateway a route without `gw` uses inside the pod: the first gateway of the route's family (reference rule). */
export function nextHopFor(route: Route, gateways: readonly GatewayAddr[]): string | undefined {
  return route.gw ?? gateways.find((g) => g.family === familyOfDst(route.dst))?.ip;
}
