/**
 * routes ADD: plan everything first (config, pod and node read once), then one batch in the pod and one on the
 * node. A failing line undoes the lines before it; a failing node batch also undoes the pod's. Unlike
 * route-override, a route that cannot be added or deleted fails ADD: a pod that silently lacks a route it was
 * configured with is harder to debug than a pod that did not start.
 */
import { CniError, ErrorCode, asCniError } from "../../lib/errors.js";
import { getLink } from "../../lib/ip/read.js";
import type { CmdContext } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { parseResult } from "../../lib/version.js";
import { ApplyError, applyOps, undoOps, type Applied, type Op } from "./apply.js";
import { loadRoutesConfig, ROUTES_PROTO, type RoutesConfig } from "./config.js";
import { planHost, type WantedRoute } from "./hostplan.js";
import { readRoutes, type KernelRoute } from "../../lib/ip/routes.js";
import { describeKernel, describeRoute } from "./kernel.js";
import { planPod, podResult } from "./podplan.js";

/** The node part, planned against the node's routes as they are now. Conflicts are code 102 before any change. */
async function hostOps(conf: RoutesConfig, current?: KernelRoute[]): Promise<Op[]> {
  const wanted: WantedRoute[] = conf.hostRoutes.map((route, i) => ({ route, label: `hostRoutes[${i}]` }));
  const plan = planHost(wanted, current ?? (await readRoutes()), ROUTES_PROTO, false);
  const c = plan.conflicts[0];
  if (c) {
    throw new CniError(
      ErrorCode.AlreadyInUse,
      `${c.want.label} ${describeRoute(c.want.route)}: the node has a different route to ${c.want.route.dst} that cni-ts did not install`,
      `existing: ${describeKernel(c.existing)}; routes are replaced only when they carry proto ${ROUTES_PROTO}`,
    );
  }
  return plan.changes.map((ch) => ch.op);
}

/**
 * Apply the node part. hostRoutes are the same for every pod of the node, so two ADDs can race to add the same
 * route: the loser's `exists` means the route is there now, and a second plan against the new state settles it.
 */
async function applyHost(conf: RoutesConfig, ops: Op[]): Promise<Applied> {
  try {
    return await applyOps(ops, undefined, "the node's namespace");
  } catch (e) {
    if (!(e instanceof ApplyError && e.kind === "exists")) throw e;
    return applyOps(await hostOps(conf), undefined, "the node's namespace");
  }
}

/** ADD: the chained plugin's verb; returns prevResult with the pod's routes as they now are. */
export async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadRoutesConfig(ctx.config);
  if (ctx.config.prevResult === undefined || ctx.config.prevResult === null) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "Required prevResult missing",
      "routes is a chained plugin: list it after the plugin that creates the interface",
    );
  }
  const prev = parseResult(ctx.config.prevResult, ctx.version);
  const ifname = conf.interface ?? ctx.ifname;
  const [link, pod, node] = await Promise.all([
    getLink(ifname, ctx.netns),
    readRoutes(ctx.netns),
    conf.hostRoutes.length > 0 ? readRoutes() : Promise.resolve([]),
  ]);
  if (!link) {
    const from = conf.interface === undefined ? "CNI_IFNAME" : "interface";
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `${from} ${ifname} does not exist in ${ctx.netns}`,
      "the routes plugin changes routes of an interface an earlier plugin created",
    );
  }
  const plan = planPod(conf, prev, ifname, ctx.netns, pod);
  const nodeOps = await hostOps(conf, node);

  const podDone = await applyOps(plan.ops, ctx.netns, `the pod (${ctx.netns})`);
  try {
    await applyHost(conf, nodeOps);
  } catch (e) {
    const problem = await undoOps(podDone);
    if (podDone.ops.length === 0) throw e;
    const err = asCniError(e);
    const undo = problem
      ? `undoing the pod's routes failed too: ${problem}`
      : "the pod's routes were put back as they were";
    throw new CniError(err.code, err.message, [err.details, undo].filter((x) => x !== "").join("; "));
  }
  return podResult(prev, conf, plan, pod);
}
