/**
 * Integration-test helpers: where the BUILT executables are (dist/bin), and running them with a clean environment
 * whose PATH holds only the tools a node has (no node). Namespaces, tools and plugin runs come from the sandbox
 * toolkit (sandbox/), re-exported here under the names the tests use.
 */
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type ExeResult, runExe as runWithEnv } from "../../sandbox/plugin.js";
import { toolPath } from "../../sandbox/tools.js";

export { sh } from "../../sandbox/exec.js";
export { Sandbox } from "../../sandbox/netns.js";
export type { ExeResult } from "../../sandbox/plugin.js";
export { toolPath } from "../../sandbox/tools.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DIST_BIN = join(ROOT, "dist/bin");
export const PLUGINS = [
  "bridge",
  "host-local",
  "routes",
  "loopback",
  "portmap",
  "firewall",
  "tuning",
  "bandwidth",
] as const;

export function requireBuilt(): void {
  if (!existsSync(join(DIST_BIN, "cni-ts")))
    throw new Error("dist/bin/cni-ts is missing: run `npm run build` first (npm test does)");
}

/** Run a built plugin by its full path with only `env` (plus the tools PATH). */
export function runExe(file: string, env: Record<string, string>, stdin = "", argv: string[] = []): ExeResult {
  return runWithEnv(file, { PATH: toolPath(), ...env }, stdin, argv);
}

/** A fake /opt/cni/bin: links named after the plugins to the built executable, as an installed node has them. */
export function installInto(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const p of PLUGINS) symlinkSync(join(DIST_BIN, "cni-ts"), join(dir, p));
  return dir;
}
