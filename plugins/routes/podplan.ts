/**
 * What ADD does inside the pod, computed without touching anything: which kernel routes go (flushroutes,
 * flushgateway, delroutes), which configured routes are added, and the result that then describes the pod.
 * Pure functions of the config, prevResult and the pod's routes as read, so unit tests cover the decisions.
 *
 * @example
 *   const plan = planPod(conf, prev, "eth0", await readRoutes(netns));
 *   const result = podResult(prev, conf, plan);
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import type { Result, Route } from "../../lib/types.js";
import type { Op } from "./apply.js";
import {
  defaultDst,
  effectiveMetric,
  effectiveTable,
  familyOf,
  ROUTES_PROTO,
  routeKey,
  type RoutesConfig,
} from "./config.js";
import type { KernelRoute } from "../../lib/ip/routes.js";
import { deleteTokens, describeKernel, describeRoute, restoreTokens, routeTokens } from "./kernel.js";

/** A configured route with the next hop it really gets in the pod. */
export interface PlannedRoute {
  route: Route;
  via: string | undefined;
}

/** What ADD does in the pod, and the batch lines (with their undo) that do it. */
export interface PodPlan {
  ifname: string;
  /** Index of the target interface in prevResult.interfaces, -1 when prevResult does not list it. */
  ifindex: number;
  /** Kernel routes ADD removes. */
  deletes: KernelRoute[];
  /** Configured routes ADD adds. */
  adds: PlannedRoute[];
  /** Configured routes that were already there exactly (nothing to do, still reported in the result). */
  present: PlannedRoute[];
  ops: Op[];
}

/** The target interface's index in prevResult: name == ifname and sandbox == CNI_NETNS (the spec's rule). */
export function targetIndex(prev: Result, ifname: string, netns: string): number {
  return (prev.interfaces ?? []).findIndex((i) => i.name === ifname && i.sandbox === netns);
}

/**
 * The next hop of a configured route. The spec: "If [gw is] omitted, a default gateway is assumed (as determined by
 * the CNI plugin)": ours is prevResult's gateway of that family on the target interface, as the bridge plugin
 * does; a link or host scope asks for an on-link route, and without any gateway the route is on-link too.
 */
export function nextHop(r: Route, prev: Result, ifindex: number): string | undefined {
  if (r.gw !== undefined) return r.gw;
  if (r.scope !== undefined && r.scope >= 253) return undefined;
  const family = familyOf(r.dst);
  const ip = (prev.ips ?? []).find(
    (i) =>
      i.gateway !== undefined &&
      familyOf(i.address) === family &&
      (i.interface === undefined || i.interface === ifindex),
  );
  return ip?.gateway;
}

function isDefault(k: { dst: string; family?: Family }): boolean {
  return k.dst === defaultDst(familyOf(k.dst));
}

/** Does a delroutes entry pick this kernel route? Every field it gives must match; table unset means main. */
export function selects(d: Route, k: KernelRoute): boolean {
  return (
    k.dst === d.dst &&
    k.table === effectiveTable(d) &&
    (d.gw === undefined || k.gateway === d.gw) &&
    (d.priority === undefined || k.metric === d.priority) &&
    (d.scope === undefined || k.scope === d.scope) &&
    (d.mtu === undefined || k.metrics.mtu === d.mtu) &&
    (d.advmss === undefined || k.metrics.advmss === d.advmss)
  );
}

/** Is kernel route k the one a result route describes? A result route without gw or priority leaves them open. */
export function represents(r: Route, k: KernelRoute): boolean {
  return (
    k.family === familyOf(r.dst) &&
    k.dst === r.dst &&
    k.table === effectiveTable(r) &&
    (r.priority === undefined || k.metric === r.priority) &&
    (r.gw === undefined || k.gateway === r.gw)
  );
}

/** Is k exactly the route a configured pod route asks for (its own next hop `via`, on `ifname`)? */
export function isExactly(p: PlannedRoute, ifname: string, k: KernelRoute): boolean {
  const r = p.route;
  return (
    k.type === 1 &&
    !k.multipath &&
    k.dst === r.dst &&
    k.dev === ifname &&
    k.table === effectiveTable(r) &&
    k.metric === effectiveMetric(r) &&
    k.gateway === p.via &&
    (r.scope === undefined || k.scope === r.scope) &&
    (r.mtu === undefined || k.metrics.mtu === r.mtu) &&
    (r.advmss === undefined || k.metrics.advmss === r.advmss)
  );
}

/** The kernel routes on `ifname` that flushroutes, flushgateway and delroutes remove. */
export function doomed(conf: RoutesConfig, ifname: string, kernel: readonly KernelRoute[]): KernelRoute[] {
  return kernel.filter((k) => {
    // ECMP routes have no single device; they were not made by a CNI result and stay.
    if (k.dev !== ifname || k.multipath) return false;
    if (conf.flushroutes && k.gateway !== undefined) return true;
    if (conf.flushgateway && isDefault(k)) return true;
    return conf.delroutes.some((d) => selects(d, k));
  });
}

/** Plan ADD in the pod; throws code 102 when an added route's kernel slot is taken by a route that stays. */
export function planPod(
  conf: RoutesConfig,
  prev: Result,
  ifname: string,
  netns: string,
  kernel: readonly KernelRoute[],
): PodPlan {
  const ifindex = targetIndex(prev, ifname, netns);
  const deletes = doomed(conf, ifname, kernel);
  const remaining = kernel.filter((k) => !deletes.includes(k));
  const adds: PlannedRoute[] = [];
  const present: PlannedRoute[] = [];
  conf.addroutes.forEach((route, i) => {
    const p: PlannedRoute = { route, via: nextHop(route, prev, ifindex) };
    if (remaining.some((k) => isExactly(p, ifname, k))) {
      present.push(p);
      return;
    }
    const inTheWay = remaining.find((k) => `${k.dst} table ${k.table} metric ${k.metric}` === routeKey(route));
    if (inTheWay) {
      throw new CniError(
        ErrorCode.AlreadyInUse,
        `addroutes[${i}] ${describeRoute(route)}: the pod already has a different route with that dst, table and priority`,
        `existing: ${describeKernel(inTheWay)}; list it in delroutes to replace it`,
      );
    }
    adds.push(p);
  });
  const ops: Op[] = [
    ...deletes.map((k) => ({ tokens: deleteTokens(k), undo: restoreTokens(k) })),
    ...adds.map((p) => ({
      tokens: routeTokens("add", p.route, p.via, ifname),
      undo: [
        "route",
        "del",
        p.route.dst,
        "table",
        effectiveTable(p.route),
        "metric",
        effectiveMetric(p.route),
        "proto",
        ROUTES_PROTO,
        "dev",
        ifname,
      ],
    })),
  ];
  return { ifname, ifindex, deletes, adds, present, ops };
}

function sameRoute(a: Route, b: Route): boolean {
  return (
    a.dst === b.dst &&
    a.gw === b.gw &&
    a.mtu === b.mtu &&
    a.advmss === b.advmss &&
    a.priority === b.priority &&
    a.table === b.table &&
    a.scope === b.scope
  );
}

/** Would the config's deletions pick this result route (used for result routes the kernel no longer had)? */
function removedByConfig(conf: RoutesConfig, r: Route): boolean {
  if (conf.flushgateway && isDefault(r)) return true;
  if (conf.flushroutes && (r.gw !== undefined || isDefault(r))) return true;
  return conf.delroutes.some(
    (d) =>
      d.dst === r.dst &&
      effectiveTable(d) === effectiveTable(r) &&
      (d.gw === undefined || d.gw === r.gw) &&
      (d.priority === undefined || d.priority === r.priority),
  );
}

/**
 * prevResult with its routes as the pod now has them: a route ADD deleted (or one the config deletes) leaves the
 * list unless a route it describes is still in the kernel; the added routes are appended. With flushgateway the
 * target interface's addresses lose their `gateway` (route-override writes 0.0.0.0 / :: there, which other
 * plugins' CHECK would then look for on their bridge).
 */
export function podResult(
  prev: Result,
  conf: RoutesConfig,
  plan: PodPlan,
  kernelBefore: readonly KernelRoute[],
): Result {
  const remaining = kernelBefore.filter((k) => !plan.deletes.includes(k));
  const routes = (prev.routes ?? []).filter((r) => {
    if (remaining.some((k) => represents(r, k))) return true;
    return !(plan.deletes.some((k) => represents(r, k)) || removedByConfig(conf, r));
  });
  for (const a of conf.addroutes) if (!routes.some((r) => sameRoute(r, a))) routes.push({ ...a });
  const out: Result = { ...prev };
  if (routes.length > 0) out.routes = routes;
  else delete out.routes;
  if (conf.flushgateway && prev.ips) {
    out.ips = prev.ips.map((ip) => {
      if (ip.interface !== undefined && ip.interface !== plan.ifindex) return { ...ip };
      const { gateway: _dropped, ...rest } = ip;
      return rest;
    });
  }
  return out;
}
