#!/usr/bin/env node
// `npm run demo [-- --keep | --remove ID]`: the main job. Build if needed, then run the cluster lab (lab/main.ts):
// three nodes and five pods in network namespaces of their own, kubenet-style, with every pod pinging every
// other pod across nodes. The machine's own network namespace is never touched; everything is removed at the end.
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
  if (existsSync(exe) && statSync(exe).mtimeMs > Math.max(...sources, statSync(join(root, "build.mjs")).mtimeMs)) return;
  console.log("building the executables (npm run build) ...");
  const r = spawnSync("node", [join(root, "build.mjs")], { stdio: "inherit" });
  if (r.status !== 0) process.exit(1);
}

requireRoot("the demo");
ensureDeps(["ip", "nsenter", "ping", "strip"]);
buildIfNeeded();
process.exit(await runTs(join(root, "lab/main.ts"), process.argv.slice(2)));
