#!/usr/bin/env node
// `npm run conformance -- --plugins DIR [--cases DIR] [--only NAME] [--json FILE] [--reference DIR]`
// The harness is TypeScript (conformance/); this script bundles it with esbuild (a dev dependency already) into a
// temporary .mjs, runs it with this node, and removes the bundle. No TS loader is needed or added.
//
// For other scripts (the README demo): `const { runSample } = await importConformance();` gives the bundled
// conformance/sample.ts API (see docs/conformance.md).
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { devNodeTarget, root, sourceDefines } from "./package-facts.mjs";

async function bundle(source, name) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-conformance-"));
  const outfile = join(dir, name);
  await build({
    stdin: { contents: source, resolveDir: root, loader: "ts", sourcefile: name.replace(/\.mjs$/, ".ts") },
    outfile,
    bundle: true,
    platform: "node",
    target: devNodeTarget,
    define: sourceDefines,
    format: "esm",
    logLevel: "warning",
    sourcemap: "inline",
    banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
  });
  return { dir, outfile };
}

/** The conformance API (runSample, and the CLI's main) as a module, bundled from the TS sources. */
export async function importConformance() {
  const { dir, outfile } = await bundle(
    'export { runSample, sampleAvailable } from "./conformance/sample.ts";\nexport { main } from "./conformance/cli.ts";\n',
    "conformance-api.mjs",
  );
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function cli() {
  process.env.CNI_TS_ROOT = root;
  let bundled;
  try {
    bundled = await bundle(
      'import { cliEntry } from "./conformance/cli.ts";\nawait cliEntry();\n',
      "conformance-cli.mjs",
    );
  } catch (e) {
    console.error(`conformance: cannot bundle conformance/cli.ts: ${e.message}`);
    process.exit(2);
  }
  // process.exit() from the harness's SIGINT/SIGTERM handler skips `finally`; 'exit' handlers still run.
  process.on("exit", () => rmSync(bundled.dir, { recursive: true, force: true }));
  try {
    // Relative --plugins/--cases paths are resolved against the directory npm was started from.
    if (process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
    await import(pathToFileURL(bundled.outfile).href);
  } finally {
    rmSync(bundled.dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await cli();
