#!/usr/bin/env node
// `npm run demo`: the main job. Build if needed, then run the plugins as a runtime would on a node, inside a
// throwaway sandbox of network namespaces (the machine's own namespace is never touched), and show the result.
// It grows with the plugins: today it installs the executables into a relocated /opt/cni/bin and asks each
// one what it is and which spec versions it speaks, from inside a node namespace.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDeps, requireRoot } from "./deps.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const exe = join(root, "dist/bin/cni-ts");
const PLUGINS = ["bridge", "host-local", "routes"];

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

function sh(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: "utf8", ...opts });
}

requireRoot("the demo");
ensureDeps(["ip", "nsenter", "strip"]);
buildIfNeeded();

const id = `ctsdemo${process.pid.toString(36)}`;
const node = `${id}-node`;
const work = mkdtempSync(join(tmpdir(), `${id}-`));
const optBin = join(work, "opt/cni/bin");
let ok = true;
const cleanup = () => {
  sh("ip", ["netns", "del", node]);
  rmSync(work, { recursive: true, force: true });
};
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

try {
  mkdirSync(optBin, { recursive: true });
  for (const p of PLUGINS) symlinkSync(exe, join(optBin, p));
  if (sh("ip", ["netns", "add", node]).status !== 0) throw new Error(`cannot create namespace ${node}`);
  console.log(`sandbox: node namespace ${node}, plugins in ${optBin}\n`);
  console.log("PLUGIN       VERSION answer (CNI_COMMAND=VERSION, run inside the node namespace)");
  for (const p of PLUGINS) {
    const r = sh("ip", ["netns", "exec", node, join(optBin, p)], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", CNI_COMMAND: "VERSION" },
      input: '{"cniVersion":"1.1.0"}',
    });
    let line;
    try {
      const v = JSON.parse(r.stdout);
      line = `speaks ${v.supportedVersions.join(", ")}`;
    } catch {
      ok = false;
      line = `FAILED (exit ${r.status}): ${r.stdout}${r.stderr}`;
    }
    console.log(`${p.padEnd(12)} ${line}`);
  }
} catch (e) {
  ok = false;
  console.error(String(e));
} finally {
  cleanup();
}
console.log(`\nverdict: ${ok ? "OK" : "FAILED"} (sandbox removed)`);
process.exit(ok ? 0 : 1);
