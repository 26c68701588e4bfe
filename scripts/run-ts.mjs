// Run a TypeScript entry point of this repository with the project's own tools: esbuild (a dependency) bundles it
// into a temporary ES module, and node runs it. No TS loader is needed at run time.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { devNodeTarget, sourceDefines } from "./package-facts.mjs";

/** Bundle `entry` and run it with `args`; returns the exit status. stdio is inherited. */
export async function runTs(entry, args = []) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-run-"));
  try {
    const outfile = join(dir, "main.mjs");
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: devNodeTarget,
      define: sourceDefines,
      logLevel: "warning",
      // Bundled CommonJS dependencies may call require(): give the ES module one.
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    const r = spawnSync(process.execPath, [outfile, ...args], { stdio: "inherit" });
    return r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
