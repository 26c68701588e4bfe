/**
 * routes CHECK: the configured routes exist, the deleted ones are absent, the node routes are in place.
 *
 * Every comparison is against the full route list of every table, never `ip route get DST` (which answers with
 * the default route for any dst, so "is 10.99.0.0/16 gone?" would always look like "no"). The prevResult CHECK
 * receives is the final result of the chain: a route it lists was reported by some plugin, so a later plugin's
 * route is never mistaken for one that delroutes or a flush removed (the spec: CHECK must tolerate later plugins).
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { getLink } from "../../lib/ip/read.js";
import type { CmdContext } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { parseResult } from "../../lib/version.js";
import { defaultDst, familyOf, loadRoutesConfig, type RoutesConfig } from "./config.js";
import { readRoutes, type KernelRoute } from "../../lib/ip/routes.js";
import { describeKernel, describeRoute } from "./kernel.js";
import { satisfies } from "./hostplan.js";
import { represents, selects } from "./podplan.js";

function onIface(k: KernelRoute, ifname: string): boolean {
  return k.dev === ifname && !k.multipath;
}

/** The first way the pod differs from what ADD left, as a message naming the route and the key; undefined when none. */
export function podProblem(
  conf: RoutesConfig,
  prev: Result,
  ifname: string,
  kernel: readonly KernelRoute[],
): string | undefined {
  const listed = (k: KernelRoute) => (prev.routes ?? []).some((r) => represents(r, k));
  for (const [i, a] of conf.addroutes.entries()) {
    // Without gw the next hop was derived from a gateway the final result may no longer list (flushgateway): any
    // next hop on the interface will do.
    const found = kernel.some(
      (k) => onIface(k, ifname) && k.type === 1 && satisfies({ ...a, gw: a.gw ?? k.gateway }, k),
    );
    if (!found) return `route ${describeRoute(a)} (addroutes[${i}]) is missing on ${ifname}`;
  }
  for (const [i, d] of conf.delroutes.entries()) {
    const back = kernel.find((k) => onIface(k, ifname) && selects(d, k) && !listed(k));
    if (back) return `route ${describeKernel(back)} is present, but delroutes[${i}] (${describeRoute(d)}) removes it`;
  }
  if (conf.flushgateway) {
    const back = kernel.find((k) => onIface(k, ifname) && k.dst === defaultDst(familyOf(k.dst)) && !listed(k));
    if (back) return `default route ${describeKernel(back)} is present, but flushgateway removes default routes`;
  }
  if (conf.flushroutes) {
    const back = kernel.find((k) => onIface(k, ifname) && k.gateway !== undefined && !listed(k));
    if (back) return `route ${describeKernel(back)} is present, but flushroutes removes routes via a gateway`;
  }
  return undefined;
}

/** The first configured node route that is not there; undefined when all are. */
export function hostProblem(conf: RoutesConfig, kernel: readonly KernelRoute[]): string | undefined {
  for (const [i, h] of conf.hostRoutes.entries()) {
    if (!kernel.some((k) => satisfies(h, k)))
      return `route ${describeRoute(h)} (hostRoutes[${i}]) is missing on the node`;
  }
  return undefined;
}

/** CHECK: code 103 naming the first route that is not as ADD left it; nothing at all with skipcheck. */
export async function check(ctx: CmdContext): Promise<void> {
  const conf = loadRoutesConfig(ctx.config);
  if (conf.skipcheck) return;
  if (ctx.config.prevResult === undefined || ctx.config.prevResult === null)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  const prev = parseResult(ctx.config.prevResult, ctx.version);
  const ifname = conf.interface ?? ctx.ifname;
  const [link, pod, node] = await Promise.all([
    getLink(ifname, ctx.netns),
    readRoutes(ctx.netns),
    conf.hostRoutes.length > 0 ? readRoutes() : Promise.resolve([]),
  ]);
  if (!link) throw new CniError(ErrorCode.CheckFailed, `interface ${ifname} does not exist in ${ctx.netns}`);
  const problem = podProblem(conf, prev, ifname, pod) ?? hostProblem(conf, node);
  if (problem) throw new CniError(ErrorCode.CheckFailed, problem, `in ${ctx.netns}`);
}
