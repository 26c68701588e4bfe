/**
 * Routes in the node's namespace, planned against what the node has: the config's `hostRoutes` (ADD) and the peer
 * pod subnets of `routes sync` share these rules.
 *
 * - an identical route already there is left alone, whoever installed it;
 * - a route of ours (our protocol number) to the same dst and table that differs is replaced;
 * - any other route to that dst and table is someone else's: a conflict, reported and never touched;
 * - with `prune`, routes of ours in the main table that nothing asks for any more are deleted.
 *
 * @example
 *   const plan = planHost([{ route: { dst: "10.244.2.0/24", gw: "172.31.250.2" }, label: "node2" }], await readRoutes(), SYNC_PROTO, true);
 */
import type { Op } from "./apply.js";
import { effectiveMetric, effectiveTable, familyOf, type HostRoute } from "./config.js";
import type { KernelRoute } from "../../lib/ip/routes.js";
import { deleteTokens, restoreTokens, routeTokens } from "./kernel.js";

/** A route the node should have, with a label for reports (the node it leads to, or hostRoutes[i]). */
export interface WantedRoute {
  route: HostRoute;
  label: string;
}

/** One change to the node's routes, with the batch line that makes it and the one that reverts it. */
export type HostChange =
  | { kind: "add"; want: WantedRoute; op: Op }
  | { kind: "replace"; want: WantedRoute; old: KernelRoute; op: Op }
  | { kind: "delete"; old: KernelRoute; why: string; op: Op };

/** Everything a node-route plan decided: changes in batch order, routes left alone, conflicts. */
export interface HostPlan {
  changes: HostChange[];
  /** Wanted routes that are there already. */
  unchanged: WantedRoute[];
  /** Wanted routes blocked by a route that is not ours. */
  conflicts: Array<{ want: WantedRoute; existing: KernelRoute }>;
}

/** Does kernel route k give exactly what `r` asks for? Fields `r` leaves open (dev, scope, mtu, advmss) are free. */
export function satisfies(r: HostRoute, k: KernelRoute): boolean {
  return (
    k.type === 1 &&
    !k.multipath &&
    k.family === familyOf(r.dst) &&
    k.dst === r.dst &&
    k.table === effectiveTable(r) &&
    k.metric === effectiveMetric(r) &&
    k.gateway === r.gw &&
    (r.dev === undefined || k.dev === r.dev) &&
    (r.scope === undefined || k.scope === r.scope) &&
    (r.mtu === undefined || k.metrics.mtu === r.mtu) &&
    (r.advmss === undefined || k.metrics.advmss === r.advmss)
  );
}

function withProto(tokens: ReturnType<typeof routeTokens>, proto: number): ReturnType<typeof routeTokens> {
  const i = tokens.indexOf("proto");
  const out = [...tokens];
  if (i >= 0) out[i + 1] = proto;
  return out;
}

function addOp(r: HostRoute, proto: number): Op {
  return {
    tokens: withProto(routeTokens("add", r, r.gw, r.dev), proto),
    undo: [
      "route",
      "del",
      r.dst,
      "table",
      effectiveTable(r),
      "metric",
      effectiveMetric(r),
      "proto",
      proto,
      ...(r.gw ? ["via", r.gw] : []),
    ],
  };
}

/** Plan the node's routes. `proto` marks ours; `prune` deletes ours in the main table that are not wanted. */
export function planHost(
  wanted: readonly WantedRoute[],
  current: readonly KernelRoute[],
  proto: number,
  prune: boolean,
  pruneWhy = "no longer wanted",
): HostPlan {
  const plan: HostPlan = { changes: [], unchanged: [], conflicts: [] };
  const claimed = new Set<KernelRoute>();
  const deletes: HostChange[] = [];
  const rest: HostChange[] = [];
  for (const want of wanted) {
    const r = want.route;
    const same = current.filter(
      (k) => k.family === familyOf(r.dst) && k.dst === r.dst && k.table === effectiveTable(r),
    );
    const exact = same.find((k) => satisfies(r, k));
    if (exact) {
      claimed.add(exact);
      plan.unchanged.push(want);
      continue;
    }
    const foreign = same.find((k) => k.protocol !== proto || k.multipath || k.type !== 1);
    if (foreign) {
      plan.conflicts.push({ want, existing: foreign });
      for (const k of same) claimed.add(k);
      continue;
    }
    // Only ours from here on. The one in the same kernel slot is replaced in place (no moment without a route);
    // ours with other metrics would keep steering some traffic the old way, so they go.
    const slot = same.find((k) => k.metric === effectiveMetric(r));
    for (const k of same) {
      claimed.add(k);
      if (k !== slot)
        deletes.push({
          kind: "delete",
          old: k,
          why: `superseded by ${want.label}`,
          op: { tokens: deleteTokens(k), undo: restoreTokens(k) },
        });
    }
    if (slot) {
      rest.push({
        kind: "replace",
        want,
        old: slot,
        op: { tokens: withProto(routeTokens("replace", r, r.gw, r.dev), proto), undo: restoreTokens(slot, "replace") },
      });
    } else {
      rest.push({ kind: "add", want, op: addOp(r, proto) });
    }
  }
  if (prune) {
    for (const k of current) {
      if (k.protocol !== proto || k.table !== 254 || claimed.has(k)) continue;
      deletes.push({ kind: "delete", old: k, why: pruneWhy, op: { tokens: deleteTokens(k), undo: restoreTokens(k) } });
    }
  }
  // Deletions first: a stale route of ours must not be in the way of a new one.
  plan.changes = [...deletes, ...rest];
  return plan;
}
