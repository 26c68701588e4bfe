/**
 * The multi-call executable: one file, installed under the name of each plugin APPLETS lists (links to it),
 * dispatching on the name it was invoked by. Invoked as `cni-ts NAME ...` it runs that plugin, which is how the
 * bundle is run in development (`node dist/cni-ts.cjs host-local`).
 */
// First: the runtime module undoes what Node.js environment variables set up at bootstrap, before any other module runs.
import { buildInfo, invokedName, runtimeVersion } from "../lib/runtime.js";
import { hostLocal } from "../ipam/host-local/main.js";
import { registerInProcess } from "../lib/invoke.js";
import { conflistMain } from "./conflist.js";
import { installMain } from "./install.js";
import { CNI_TS_VERSION, pluginMain, subcommandOf, type PluginDefinition } from "../lib/skel.js";
import { bandwidth } from "../plugins/bandwidth/main.js";
import { bridge } from "../plugins/bridge/main.js";
import { firewall } from "../plugins/firewall/main.js";
import { loopback } from "../plugins/loopback/main.js";
import { portmap } from "../plugins/portmap/main.js";
import { routes } from "../plugins/routes/main.js";
import { tuning } from "../plugins/tuning/main.js";

export const APPLETS: Readonly<Record<string, PluginDefinition>> = { bridge, "host-local": hostLocal, routes, loopback, portmap, firewall, tuning, bandwidth };

function usage(): string {
  const build = buildInfo();
  return `cni-ts ${CNI_TS_VERSION} (${runtimeVersion()}${build ? `, ${build.target}` : ", from the sources"}): CNI plugins in one executable\n` +
    `Installed under the names of its plugins (links to this file), it acts as that plugin:\n` +
    Object.values(APPLETS).map((p) => `  ${p.name.padEnd(11)} ${p.about}\n`).join("") +
    `Run by hand: cni-ts PLUGIN [--help]\n` +
    `Install on a node: cni-ts install [--dir /opt/cni/bin] [--force]\n` +
    `Write a node's conflist: cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]] [--kubeconfig FILE]\n`;
}

async function main(): Promise<void> {
  for (const p of Object.values(APPLETS)) registerInProcess(p);
  let argv = process.argv.slice(2);
  let name = invokedName();
  if (!Object.hasOwn(APPLETS, name)) {
    name = argv[0] ?? "";
    argv = argv.slice(1);
  }
  if (name === "install") return void (process.exitCode = installMain(argv, Object.keys(APPLETS)));
  if (name === "conflist") return void (process.exitCode = await conflistMain(argv));
  const plugin = Object.hasOwn(APPLETS, name) ? APPLETS[name] : undefined;
  if (!plugin) {
    process.stderr.write(usage());
    process.exitCode = name === "" || name === "--help" || name === "-h" || name === "--version" ? 0 : 2;
    return;
  }
  const subcommand = subcommandOf(plugin, argv);
  if (subcommand) return void (process.exitCode = await subcommand(argv.slice(1)));
  await pluginMain(plugin, argv);
}

void main();
