/**
 * The `bandwidth` plugin: chained after the main plugin, it limits a pod's traffic with tbf as the reference
 * (1.1.1) lays it out: ingress on the host veth, egress through an ifb in the node's namespace. Limits come from the
 * config or from the `bandwidth` capability. See docs/bandwidth.md.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import type { CmdContext, PluginDefinition } from "../../lib/skel.js";
import { ToolError } from "../../lib/tool-error.js";
import type { Result } from "../../lib/types.js";
import { requirePrevResult } from "../../lib/version.js";
import { BANDWIDTH_CONF_SHAPE, loadBandwidthConfig, shapesAnything, type BandwidthLimits } from "./config.js";
import { shapingProblem } from "./check.js";
import { hostVeth } from "./host.js";
import { createIfb, deleteIfb, ifbName, linkExists } from "./ifb.js";
import { applyShaping, type Shaping } from "./shape.js";
import { tbfFor } from "./tbf.js";

function prevResult(ctx: CmdContext, what: string): Result {
  return requirePrevResult(
    ctx.config,
    ctx.version,
    what,
    "bandwidth runs chained after a plugin that returns the pod's interfaces (prevResult)",
  );
}

/** A tool's failure as the CNI error a runtime gets: code 100, the failing command and the tool's own words. */
function kernelError(e: unknown): unknown {
  return e instanceof ToolError ? new CniError(ErrorCode.KernelOperationFailed, e.message) : e;
}

/** The kernel numbers of both directions, computed (and range-checked) before anything changes. */
function shaping(limits: BandwidthLimits, veth: string, ifb: string): Shaping {
  return {
    veth,
    ifb,
    ingress: limits.ingressRate > 0 ? tbfFor(limits.ingressRate, limits.ingressBurst) : undefined,
    egress: limits.egressRate > 0 ? tbfFor(limits.egressRate, limits.egressBurst) : undefined,
  };
}

async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadBandwidthConfig(ctx.config);
  const ifb = ifbName(conf.name, ctx.containerID);
  // Every number is range-checked with the config (a placeholder device name: the numbers do not depend on it).
  if (shapesAnything(conf.limits)) shaping(conf.limits, "veth", ifb);
  const prev = prevResult(ctx, "must be called as chained plugin");
  if (!shapesAnything(conf.limits)) return prev;
  const host = await hostVeth(prev, ctx.ifname, ctx.netns);
  const plan = shaping(conf.limits, host.name, ifb);
  let ifbMac: string | undefined;
  if (plan.egress) {
    if (linkExists(ifb))
      throw new CniError(
        ErrorCode.KernelOperationFailed,
        `adding link: ifb ${ifb} already exists`,
        `attachment ${ctx.containerID} of network ${conf.name} is shaped already`,
      );
    ifbMac = await createIfb(ifb, host.mtu);
  }
  try {
    await applyShaping(plan);
  } catch (e) {
    if (plan.egress) await deleteIfb(ifb).catch((d: Error) => log.warn(`bandwidth ADD undo: ${d.message}`));
    throw kernelError(e);
  }
  if (!plan.egress) return prev;
  return { ...prev, interfaces: [...(prev.interfaces ?? []), ifbMac ? { name: ifb, mac: ifbMac } : { name: ifb }] };
}

/**
 * DEL: the ifb, found by name from the attachment's identity, so it goes with the pod's namespace gone and without
 * prevResult. The qdiscs on the host veth belong to the veth and go with it (the main plugin's DEL, or the pod's
 * namespace going away). A config the reference would refuse does not stop DEL: it must always be able to clean up.
 * No process when there is no ifb.
 */
async function del(ctx: CmdContext): Promise<void> {
  const ifb = ifbName(ctx.config.name, ctx.containerID);
  if (!linkExists(ifb)) return;
  try {
    await deleteIfb(ifb);
  } catch (e) {
    if (linkExists(ifb)) throw kernelError(e);
  }
}

/** CHECK: the tbf(s), the ingress redirect and the ifb as ADD made them (code 103 when they differ). */
async function check(ctx: CmdContext): Promise<void> {
  const conf = loadBandwidthConfig(ctx.config);
  const prev = prevResult(ctx, "must be called as a chained plugin");
  if (!shapesAnything(conf.limits)) return;
  const host = await hostVeth(prev, ctx.ifname, ctx.netns);
  const plan = shaping(conf.limits, host.name, ifbName(conf.name, ctx.containerID));
  const where = `attachment ${ctx.containerID}/${ctx.ifname} of network ${conf.name}`;
  if (plan.egress && !linkExists(plan.ifb))
    throw new CniError(ErrorCode.CheckFailed, `bandwidth: get ifb device: ${plan.ifb} not found`, where);
  const problem = await shapingProblem(plan).catch((e: unknown) => {
    throw kernelError(e);
  });
  if (problem) throw new CniError(ErrorCode.CheckFailed, `bandwidth: ${problem}`, where);
}

/** The bandwidth plugin definition for the multi-call executable. */
export const bandwidth: PluginDefinition = {
  name: "bandwidth",
  about: "CNI bandwidth plugin (cni-ts): ingress and egress rate limits (tbf, ifb), chained after the main plugin",
  netns: "required",
  config: BANDWIDTH_CONF_SHAPE,
  // The reference starts at 0.3.0: results before it name no interfaces, so no host veth to shape.
  firstVersion: "0.3.0",
  add,
  del,
  check,
};
