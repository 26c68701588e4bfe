/**
 * The routes plugin's words for kernel routes (lib/ip/routes.ts reads them): their human form for messages and the
 * sync report, and the `ip route` command lines that add, delete or restore them.
 *
 * @example
 *   deleteTokens(route); // ["route", "del", "unicast", "10.50.0.0/16", "table", 254, ...]
 */
import type { Token } from "../../lib/batch.js";
import { ROUTE_TYPE_NAMES as TYPE_NAMES, type KernelRoute } from "../../lib/ip/routes.js";
import type { Route } from "../../lib/types.js";
import { effectiveMetric, effectiveTable, familyOf, ROUTES_PROTO, SYNC_PROTO, type HostRoute } from "./config.js";

/** Human form of a kernel route for messages and the sync report. */
export function describeKernel(k: KernelRoute): string {
  const parts = [k.dst];
  if (k.type !== 1) parts.unshift(TYPE_NAMES[k.type] ?? `type ${k.type}`);
  if (k.gateway) parts.push(`via ${k.gateway}`);
  if (k.dev) parts.push(`dev ${k.dev}`);
  if (k.table !== 254) parts.push(`table ${k.table}`);
  if (k.metric !== (k.family === 6 ? 1024 : 0)) parts.push(`metric ${k.metric}`);
  if (k.protocol !== ROUTES_PROTO && k.protocol !== SYNC_PROTO) parts.push(`proto ${k.protocol}`);
  return parts.join(" ");
}

/** Human form of a configured route. */
export function describeRoute(r: HostRoute): string {
  const parts = [r.dst];
  if (r.gw) parts.push(`via ${r.gw}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (effectiveTable(r) !== 254) parts.push(`table ${effectiveTable(r)}`);
  if (r.priority !== undefined) parts.push(`metric ${r.priority}`);
  if (r.scope !== undefined) parts.push(`scope ${r.scope}`);
  if (r.mtu !== undefined) parts.push(`mtu ${r.mtu}`);
  if (r.advmss !== undefined) parts.push(`advmss ${r.advmss}`);
  return parts.join(" ");
}

/**
 * `ip route add|replace` tokens for a configured route, marked with our protocol. The family follows from dst
 * (a batch accepts no -4/-6); `via` is the next hop already resolved by the caller.
 */
export function routeTokens(
  verb: "add" | "replace",
  r: Route,
  via: string | undefined,
  dev: string | undefined,
): Token[] {
  const t: Token[] = ["route", verb, r.dst];
  if (via !== undefined) t.push("via", via);
  if (dev !== undefined) t.push("dev", dev);
  t.push("table", effectiveTable(r), "metric", effectiveMetric(r), "proto", ROUTES_PROTO);
  if (r.scope !== undefined && familyOf(r.dst) === 4) t.push("scope", r.scope);
  if (r.mtu !== undefined) t.push("mtu", r.mtu);
  if (r.advmss !== undefined) t.push("advmss", r.advmss);
  return t;
}

/** Tokens that delete exactly this kernel route (and not a neighbour with another metric or next hop). */
export function deleteTokens(k: KernelRoute): Token[] {
  const t: Token[] = [
    "route",
    "del",
    TYPE_NAMES[k.type] ?? "unicast",
    k.dst,
    "table",
    k.table,
    "metric",
    k.metric,
    "proto",
    k.protocol,
  ];
  if (k.gateway) t.push("via", k.gateway);
  if (k.dev) t.push("dev", k.dev);
  return t;
}

// Metrics `ip route` can set, by their JSON names: what a restored route needs to be the route it was.
const SETTABLE_METRICS = [
  "mtu",
  "advmss",
  "hoplimit",
  "initcwnd",
  "initrwnd",
  "window",
  "cwnd",
  "ssthresh",
  "reordering",
  "quickack",
  "fastopen_no_cookie",
];

/** Tokens that put back a route deleted earlier, with the attributes it had (used by undo). */
export function restoreTokens(k: KernelRoute, verb: "add" | "replace" = "add"): Token[] {
  const t: Token[] = ["route", verb, TYPE_NAMES[k.type] ?? "unicast", k.dst];
  if (k.gateway) t.push("via", k.gateway);
  if (k.dev) t.push("dev", k.dev);
  t.push("table", k.table, "metric", k.metric, "proto", k.protocol);
  if (k.family === 4) t.push("scope", k.scope);
  if (k.prefsrc) t.push("src", k.prefsrc);
  for (const m of SETTABLE_METRICS) if (k.metrics[m] !== undefined) t.push(m, k.metrics[m]!);
  if (k.onlink) t.push("onlink");
  return t;
}
