#!/usr/bin/env node
// `npm run demo [-- --keep | --watch | --forward-drop | --remove ID | --help]`: the main job. Build if needed, then
// run the cluster lab (lab/main.ts): three nodes and five pods in network namespaces of their own, kubenet-style,
// with every pod pinging every other pod across nodes. The machine's own network namespace is never touched;
// everything is removed at the end.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDeps, requireRoot } from "./deps.mjs";
import { runTs } from "./run-ts.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const exe = join(root, "dist/bin/cni-ts");

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfNeeded() {
  const sources = ["lib", "plugins", "ipam", "cmd"].map((d) => newestSource(join(root, d)));
  if (existsSync(exe) && statSync(exe).mtimeMs > Math.max(...sources, statSync(join(root, "build.mjs")).mtimeMs))
    return;
  console.log("building the executables (npm run build) ...");
  const r = spawnSync("node", [join(root, "build.mjs")], { stdio: "inherit" });
  if (r.status !== 0) process.exit(1);
}

const HELP = `npm run demo [-- OPTIONS]: a 3-node kubenet-style cluster lab in network namespaces (lab/main.ts)

  (no option)        5 pods ADDed with the conflist bridge (+ host-local), portmap, firewall; node routes by
                     routes sync from a NodeList; the ping matrix, a hostPort check, then DEL and removal
  --forward-drop     the nodes' FORWARD policy is DROP (as Docker sets it, inside the node namespaces only): the
                     matrix with routes and firewall only (cross-node pings fail), then routes sync
                     --forward-accept auto on every node, then the matrix again (every ping answered)
  --watch            the node routes kept by routes sync --kubernetes on every node against a stand-in API
                     server while a node joins, a node leaves and the API goes away (with --forward-drop, the
                     controllers run with --forward-accept auto)
  --outage SECONDS   with --watch: how long the API stays away (default 60)
  --keep             leave the lab up and print how to enter and remove it
  --remove ID        remove a lab left up with --keep
  --help             this text`;

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(HELP);
  process.exit(0);
}
requireRoot("the demo");
ensureDeps(["ip", "nsenter", "ping", "strip", "iptables", "python3"]);
buildIfNeeded();
process.exit(await runTs(join(root, "lab/main.ts"), process.argv.slice(2)));
