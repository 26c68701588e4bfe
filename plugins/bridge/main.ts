/**
 * The `bridge` plugin: a Linux bridge on the node, a veth pair per pod, addresses from the IPAM plugin named in the
 * config (found through CNI_PATH; run in-process when it is this executable). See docs/bridge.md.
 */
import { delegate } from "../../lib/invoke.js";
import type { CmdContext, PluginDefinition } from "../../lib/skel.js";
import { BRIDGE_CONF_SHAPE, loadBridgeConfig } from "./config.js";

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
  config: BRIDGE_CONF_SHAPE,
  // Each verb's modules are evaluated only when that verb runs (VERSION and the other verbs never pay for them).
  add: async (ctx) => (await import("./add.js")).add(ctx),
  del: async (ctx) => (await import("./del.js")).del(ctx),
  check: async (ctx) => (await import("./check.js")).check(ctx),
  gc: async (ctx) => (await import("./gc.js")).gc(ctx),
  status,
};
