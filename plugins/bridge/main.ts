/**
 * The `bridge` plugin: a Linux bridge on the node, a veth pair per pod, addresses from the IPAM plugin named in the
 * config (found through CNI_PATH; run in-process when it is this executable). See docs/bridge.md.
 */
import { delegate } from "../../lib/invoke.js";
import { gcMasq } from "../../lib/masq.js";
import type { CmdContext, GcContext, PluginDefinition } from "../../lib/skel.js";
import { add } from "./add.js";
import { check } from "./check.js";
import { loadBridgeConfig } from "./config.js";
import { del } from "./del.js";
import { hostVethName } from "./names.js";
import { gcSpoofCheck } from "./spoofcheck.js";

/** GC: forward to IPAM (the spec's MUST), and drop masquerade state of attachments no longer valid. */
async function gc(ctx: GcContext): Promise<void> {
  const conf = loadBridgeConfig(ctx.config, ctx.args);
  if (conf.ipamType) await delegate(conf.ipamType, "GC", ctx);
  if (conf.ipMasq && ctx.validAttachments !== undefined) await gcMasq(conf.name, ctx.validAttachments);
  if (conf.macspoofchk && ctx.validAttachments !== undefined) {
    await gcSpoofCheck(conf.name, new Set(ctx.validAttachments.map((a) => hostVethName(a.containerID, a.ifname))));
  }
}

/** STATUS: bridge itself is always ready; IPAM may not be (a full range is code 50). */
async function status(ctx: CmdContext): Promise<void> {
  const conf = loadBridgeConfig(ctx.config, ctx.args);
  if (conf.ipamType) await delegate(conf.ipamType, "STATUS", ctx);
}

export const bridge: PluginDefinition = {
  name: "bridge",
  about: "CNI bridge plugin (cni-ts): a Linux bridge, a veth pair per pod, addresses from an IPAM plugin",
  netns: "required",
  // IP is for the IPAM plugin, which gets the same CNI_ARGS.
  argsKeys: ["MAC", "IP"],
  add,
  del,
  check,
  gc,
  status,
};
