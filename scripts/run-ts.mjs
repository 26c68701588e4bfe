// Run a TypeScript entry point of this repository with the project's own tools: esbuild (a dependency) bundles it
// into a temporary ES module, and node runs it (a child process, or this one). No TS loader is needed at run time.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { devNodeTarget, sourceDefines } from "./package-facts.mjs";

/**
 * Bundle `entry` (and what it imports: TypeScript modules too) into `dir`/main.mjs; returns that file. Every module
 * of the bundle sees `import.meta.url` as the entry's own, so that a module beside the entry (one directory below
 * the repository root) finds the repository as it does unbundled.
 */
export async function bundleTs(entry, dir) {
  const outfile = join(dir, "main.mjs");
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: devNodeTarget,
    define: { ...sourceDefines, "import.meta.url": JSON.stringify(pathToFileURL(entry).href) },
    logLevel: "warning",
    // Bundled CommonJS dependencies may call require(): give the ES module one.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

/** Bundle `entry` and run it with `args` in a child node; returns the exit status. stdio is inherited. */
export async function runTs(entry, args = []) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-run-"));
  try {
    const r = spawnSync(process.execPath, [await bundleTs(entry, dir), ...args], { stdio: "inherit" });
    return r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Bundle `entry` and import it into this process; the bundle's file is removed once loaded. */
export async function importTs(entry) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-run-"));
  try {
    return await import(pathToFileURL(await bundleTs(entry, dir)).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
