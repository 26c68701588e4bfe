/**
 * The `routes` plugin: a chained plugin that shapes the pod's routes (route-override's keys, every spec 1.1 route
 * field) and ensures routes on the node; and, as `routes sync`, the node-level peer routes of a kubenet-style
 * cluster. See docs/routes.md.
 */
import type { CmdContext, PluginDefinition } from "../../lib/skel.js";
import { ROUTES_CONF_SHAPE, loadRoutesConfig } from "./config.js";

/** DEL changes nothing: the pod's routes go with its namespace, and hostRoutes are shared by every pod of the node
 * (removing them when one pod goes would cut the others off). */
async function del(): Promise<void> {}

/** STATUS: ready whenever the config is valid (nothing else can keep ADD from working). */
async function status(ctx: CmdContext): Promise<void> {
  loadRoutesConfig(ctx.config);
}

/** The plugin, with `routes sync ...` (node mode, cli.ts) as a subcommand. */
export const routes: PluginDefinition = {
  name: "routes",
  about: "CNI routes plugin (cni-ts): route shaping inside the pod and on the node; `routes sync --help` for node mode",
  netns: "required",
  config: ROUTES_CONF_SHAPE,
  // The modules of a verb (and of `routes sync`) are evaluated only when it runs: VERSION never pays for them.
  add: async (ctx) => (await import("./add.js")).add(ctx),
  del,
  check: async (ctx) => (await import("./check.js")).check(ctx),
  // Nothing per attachment is kept anywhere, so there is nothing to collect.
  gc: async () => {},
  status,
  subcommands: { sync: async (argv) => (await import("./cli.js")).syncMain(argv) },
};
