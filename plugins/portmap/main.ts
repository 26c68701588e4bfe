/**
 * The `portmap` plugin: chained after the main plugin, it forwards the runtime's `portMappings` (hostPort on the
 * node to containerPort in the pod) with iptables (the reference's layout) or nftables (a table of constant rules
 * and maps). See docs/portmap.md.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import { gcMarkers, hasMarker, markAttachment, unmarkAttachment } from "../../lib/marker.js";
import { requireBackendTool } from "../../lib/netfilter/backend.js";
import type { CmdContext, GcContext, PluginDefinition } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { requirePrevResult } from "../../lib/version.js";
import { PORTMAP_CONF_SHAPE, loadPortmapConfig, type PortmapConfig } from "./config.js";
import { iptAdd, iptCheck, iptDel, iptGc } from "./iptables.js";
import { nftAdd, nftCheck, nftDel, nftGc } from "./nft.js";
import { enableLocalnet, flushUdpConntrack, localnetProblem } from "./node.js";
import { podAddresses, type PodAddr } from "./pod.js";

function requirePrev(ctx: CmdContext, what: string): Result {
  return requirePrevResult(
    ctx.config,
    ctx.version,
    what,
    "portmap runs chained after a plugin that returns the pod's addresses (prevResult)",
  );
}

async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadPortmapConfig(ctx.config);
  const prev = requirePrev(ctx, "must be called as chained plugin");
  const pods = podAddresses(prev, ctx.ifname);
  if (conf.mappings.length === 0 || pods.length === 0) return prev;
  markAttachment("portmap", conf.name, ctx.containerID, ctx.ifname);
  if (conf.backend === "nftables") await nftAdd(conf, ctx.containerID, ctx.ifname, pods);
  else await iptAdd(conf, ctx.containerID, pods);
  const v4 = pods.find((p) => p.family === 4);
  await Promise.all([
    conf.snat && v4 ? enableLocalnet(v4.ip) : undefined,
    flushUdpConntrack(
      conf.mappings,
      pods.map((p) => p.family),
    ),
  ]);
  return prev;
}

/**
 * DEL: both backends, by the attachment's identity alone, so it works without prevResult, without mappings (the
 * reference does nothing then), with the namespace gone, and after the config switched backends. An attachment
 * that maps no port and that no ADD of ours marked has nothing to remove: no process at all (lib/marker.ts).
 */
async function del(ctx: CmdContext): Promise<void> {
  if (!mapsPorts(ctx) && !hasMarker("portmap", ctx.config.name, ctx.containerID, ctx.ifname)) return;
  const outcomes = await Promise.allSettled([
    iptDel(ctx.config.name, ctx.containerID),
    nftDel(ctx.config.name, ctx.containerID, ctx.ifname),
  ]);
  const errors = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as Error] : []));
  for (const e of errors) log.warn(`portmap DEL: ${e.message}`);
  if (errors[0])
    throw errors[0] instanceof CniError ? errors[0] : new CniError(ErrorCode.KernelOperationFailed, errors[0].message);
  unmarkAttachment("portmap", ctx.config.name, ctx.containerID, ctx.ifname);
}

/** Does the DEL's config map any port? A config that does not parse counts as yes: DEL then does the full work. */
function mapsPorts(ctx: CmdContext): boolean {
  try {
    return loadPortmapConfig(ctx.config).mappings.length > 0;
  } catch {
    return true;
  }
}

async function problemOf(conf: PortmapConfig, ctx: CmdContext, pods: readonly PodAddr[]): Promise<string | undefined> {
  const rules =
    conf.backend === "nftables"
      ? await nftCheck(conf, ctx.containerID, ctx.ifname, pods)
      : await iptCheck(conf, ctx.containerID, pods);
  if (rules) return rules;
  const v4 = pods.find((p) => p.family === 4);
  return conf.snat && v4 ? localnetProblem(v4.ip) : undefined;
}

/** CHECK: every rule or element ADD made for the addresses in prevResult, and route_localnet (code 103). */
async function check(ctx: CmdContext): Promise<void> {
  const conf = loadPortmapConfig(ctx.config);
  const prev = requirePrev(ctx, "Required prevResult missing");
  const pods = podAddresses(prev, ctx.ifname);
  if (conf.mappings.length === 0 || pods.length === 0) return;
  const problem = await problemOf(conf, ctx, pods);
  if (problem)
    throw new CniError(
      ErrorCode.CheckFailed,
      `portmap: ${problem}`,
      `attachment ${ctx.containerID}/${ctx.ifname} of network ${conf.name}`,
    );
}

/** GC: both backends drop the state of this network's attachments that are not in the valid list. */
async function gc(ctx: GcContext): Promise<void> {
  if (ctx.validAttachments === undefined) return;
  const valid = ctx.validAttachments;
  const outcomes = await Promise.allSettled([iptGc(ctx.config.name, valid), nftGc(ctx.config.name, valid)]);
  const errors = outcomes.flatMap((o) => (o.status === "rejected" ? [(o.reason as Error).message] : []));
  if (errors.length > 0) throw new CniError(ErrorCode.KernelOperationFailed, `portmap GC failed: ${errors.join("; ")}`);
  gcMarkers("portmap", ctx.config.name, valid);
}

/** STATUS: the config is valid and its backend's tool is installed (code 50 otherwise: ADD could not work). */
async function status(ctx: CmdContext): Promise<void> {
  requireBackendTool(loadPortmapConfig(ctx.config).backend, "portmap");
}

/** The portmap plugin definition for the multi-call executable. */
export const portmap: PluginDefinition = {
  name: "portmap",
  about:
    "CNI portmap plugin (cni-ts): hostPort forwarding to pods (iptables or nftables), chained after the main plugin",
  // The pod's namespace is never entered: the rules live on the node. DEL must work after it is gone.
  netns: "ignored",
  config: PORTMAP_CONF_SHAPE,
  add,
  del,
  check,
  gc,
  status,
};
