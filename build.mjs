#!/usr/bin/env node
// Build the single-file executable: esbuild bundle -> SEA blob -> postject into a copy of the pinned official
// Node binary (npm package node-linux-<arch>) -> links named after each plugin -> smoke test.
// A failed injection leaves a bare `node` that exits 0 silently, so the smoke test is not optional.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const bin = join(dist, "bin");
const require = createRequire(import.meta.url);
const PLUGINS = ["bridge", "host-local", "routes", "loopback", "portmap"];
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

function fail(msg) {
  console.error(`build: ${msg}`);
  process.exit(1);
}

function step(msg) {
  console.error(`build: ${msg}`);
}

// Environment that cannot alter a Node process we start (blob generation, smoke tests).
function cleanEnv(extra = {}) {
  const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...extra };
  return env;
}

function baseNode() {
  const arch = { x64: "x64", arm64: "arm64" }[process.arch];
  if (!arch || process.platform !== "linux") fail(`no pinned Node build for ${process.platform}/${process.arch}`);
  const pkg = `node-linux-${arch}`;
  const pinned = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).optionalDependencies?.[pkg];
  let file;
  try {
    file = join(dirname(require.resolve(`${pkg}/package.json`)), "bin", "node");
  } catch {
    fail(`${pkg} is not installed: run npm ci (it is an optional dependency pinned in package.json)`);
  }
  const r = spawnSync(file, ["--version"], { env: cleanEnv(), encoding: "utf8" });
  if (r.status !== 0 || r.stdout.trim() !== `v${pinned}`) fail(`${file} is not the pinned Node ${pinned} (got ${r.stdout.trim() || r.stderr})`);
  return { file, version: pinned };
}

async function bundle() {
  await build({
    entryPoints: [join(root, "cmd/cni-ts.ts")],
    outfile: join(dist, "cni-ts.cjs"),
    bundle: true,
    platform: "node",
    target: "node26",
    format: "cjs",
    legalComments: "none",
    logLevel: "warning",
  });
}

function seaBlob(node) {
  const config = join(dist, "sea-config.json");
  writeFileSync(config, JSON.stringify({
    main: join(dist, "cni-ts.cjs"),
    output: join(dist, "cni-ts.blob"),
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    // A plugin runs as root with the runtime's environment: NODE_OPTIONS must not inject code into it.
    execArgvExtension: "none",
  }, null, 2));
  const r = spawnSync(node.file, ["--experimental-sea-config", config], { env: cleanEnv(), encoding: "utf8" });
  if (r.status !== 0) fail(`SEA blob generation failed: ${r.stderr}`);
}

async function inject(node) {
  const { inject: postject } = require("postject");
  const tmp = join(bin, ".cni-ts.tmp");
  copyFileSync(node.file, tmp);
  chmodSync(tmp, 0o755);
  const strip = spawnSync("strip", [tmp], { encoding: "utf8" });
  if (strip.error || strip.status !== 0) step("strip not available or failed: the executable stays unstripped (larger, same behaviour)");
  await postject(tmp, "NODE_SEA_BLOB", readFileSync(join(dist, "cni-ts.blob")), { sentinelFuse: SEA_FUSE });
  renameSync(tmp, join(bin, "cni-ts"));
  for (const p of PLUGINS) {
    rmSync(join(bin, p), { force: true });
    symlinkSync("cni-ts", join(bin, p));
  }
}

function smokeTest() {
  const exe = join(bin, "cni-ts");
  const marker = join(dist, ".node-options-marker");
  const hook = join(dist, ".node-options-hook.cjs");
  rmSync(marker, { force: true });
  writeFileSync(hook, `require("fs").writeFileSync(${JSON.stringify(marker)}, "injected")\n`);
  for (const p of PLUGINS) {
    const r = spawnSync(join(bin, p), [], {
      env: cleanEnv({ CNI_COMMAND: "VERSION", NODE_OPTIONS: `--require ${hook}` }),
      input: '{"cniVersion":"1.0.0"}',
      encoding: "utf8",
    });
    let answer;
    try {
      answer = JSON.parse(r.stdout);
    } catch {
      fail(`smoke test: ${p} VERSION printed ${JSON.stringify(r.stdout)} (exit ${r.status}): the SEA injection did not work`);
    }
    if (r.status !== 0 || answer.cniVersion !== "1.0.0" || answer.supportedVersions?.length !== 7) {
      fail(`smoke test: ${p} VERSION answered ${r.stdout} (exit ${r.status})`);
    }
  }
  if (existsSync(marker)) fail("smoke test: NODE_OPTIONS --require ran code inside the executable (execArgvExtension not honoured)");
  const help = spawnSync(exe, [], { env: cleanEnv(), encoding: "utf8" });
  if (help.status !== 0 || !help.stderr.includes("cni-ts")) fail(`smoke test: '${exe}' printed no usage (exit ${help.status})`);
  rmSync(hook, { force: true });
}

const node = baseNode();
mkdirSync(bin, { recursive: true });
step(`bundling with esbuild`);
await bundle();
step(`SEA blob with Node ${node.version}`);
seaBlob(node);
step(`injecting into ${node.file}`);
await inject(node);
smokeTest();
step(`ok: ${join(bin, "cni-ts")} and links ${PLUGINS.join(", ")} (smoke-tested: VERSION, NODE_OPTIONS ignored)`);
