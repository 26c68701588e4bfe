/**
 * The multi-call executable: one file, installed under the name of each plugin APPLETS lists (links to it),
 * dispatching on the name it was invoked by. Invoked as `cni-ts NAME ...` it runs that plugin, which is how the
 * bundle is run in development (`node dist/cni-ts.cjs host-local`).
 */
// First: the runtime module undoes what Node.js environment variables set up at bootstrap, before any other module runs.
import { buildInfo, invokedName, runtimeVersion } from "../lib/runtime.js";
import { registerInProcess } from "../lib/invoke.js";
import { CNI_TS_VERSION, pluginMain, subcommandOf, type PluginDefinition } from "../lib/skel.js";

/**
 * The plugins of the executable, each behind a loader: a call evaluates the modules of the plugin it runs (and of
 * the delegates it runs in-process), not those of all of them, so a plugin added costs the others no start-up time.
 */
export const APPLETS: Readonly<Record<string, () => Promise<PluginDefinition>>> = {
  bridge: async () => (await import("../plugins/bridge/main.js")).bridge,
  "host-local": async () => (await import("../ipam/host-local/main.js")).hostLocal,
  routes: async () => (await import("../plugins/routes/main.js")).routes,
  loopback: async () => (await import("../plugins/loopback/main.js")).loopback,
  portmap: async () => (await import("../plugins/portmap/main.js")).portmap,
  firewall: async () => (await import("../plugins/firewall/main.js")).firewall,
  tuning: async () => (await import("../plugins/tuning/main.js")).tuning,
  bandwidth: async () => (await import("../plugins/bandwidth/main.js")).bandwidth,
};

async function usage(): Promise<string> {
  const build = buildInfo();
  const plugins = await Promise.all(Object.values(APPLETS).map((load) => load()));
  return (
    `cni-ts ${CNI_TS_VERSION} (${runtimeVersion()}${build ? `, ${build.target}` : ", from the sources"}): CNI plugins in one executable\n` +
    `Installed under the names of its plugins (links to this file), it acts as that plugin:\n` +
    plugins.map((p) => `  ${p.name.padEnd(11)} ${p.about}\n`).join("") +
    `Run by hand: cni-ts PLUGIN [--help]\n` +
    `Install on a node: cni-ts install [--dir /opt/cni/bin] [--force]\n` +
    `Write a node's conflist: cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]] [--kubeconfig FILE]\n`
  );
}

async function main(): Promise<void> {
  for (const [name, load] of Object.entries(APPLETS)) registerInProcess(name, load);
  let argv = process.argv.slice(2);
  let name = invokedName();
  if (!Object.hasOwn(APPLETS, name)) {
    name = argv[0] ?? "";
    argv = argv.slice(1);
  }
  if (name === "install") {
    process.exitCode = (await import("./install.js")).installMain(argv, Object.keys(APPLETS));
    return;
  }
  if (name === "conflist") {
    process.exitCode = await (await import("./conflist.js")).conflistMain(argv);
    return;
  }
  const plugin = Object.hasOwn(APPLETS, name) ? await APPLETS[name]!() : undefined;
  if (!plugin) {
    process.stderr.write(await usage());
    process.exitCode = name === "" || name === "--help" || name === "-h" || name === "--version" ? 0 : 2;
    return;
  }
  const subcommand = subcommandOf(plugin, argv);
  if (subcommand) {
    process.exitCode = await subcommand(argv.slice(1));
    return;
  }
  await pluginMain(plugin, argv);
}

void main();
