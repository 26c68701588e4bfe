#!/usr/bin/env node
// Build the single-file executable: esbuild bundle -> a standalone executable -> links named after each plugin ->
// smoke test of the built file.
//   node build.mjs                      Bun standalone executable for this machine's architecture (the default)
//   node build.mjs --arch arm64         cross-compiled for arm64 (Bun only), into dist/linux-arm64 unless --out
//   node build.mjs --cpu avx2           x86_64 only: Bun's AVX2 build instead of the baseline one (see README)
//   node build.mjs --runtime node       the fallback: a Node single executable (SEA) of the same bundle
//   node build.mjs --out DIR            write DIR/cni-ts.cjs and DIR/bin/ instead of dist/
// Bun (npm package `bun`) and every target runtime come from the npm registry, pinned by package-lock.json.
// A broken executable can exit 0 silently, so the smoke test is not optional.
import { build } from "esbuild";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { executableTarget, pkgJson, root, sourceDefines } from "./scripts/package-facts.mjs";

const require = createRequire(import.meta.url);
const PLUGINS = ["bridge", "host-local", "routes", "loopback", "portmap", "firewall", "tuning", "bandwidth"];
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
/** JavaScriptCore's tier-up thresholds, scaled at start (Bun's --compile-jit-policy; 1 is the normal JIT). */
const BUN_JIT_POLICY = 1000;
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));

/**
 * What each x86_64 build needs from the CPU, as /proc/cpuinfo names it; `cni-ts install` refuses a CPU without it.
 * baseline: x86-64-v2 (Nehalem, 2008, and later), below which Bun's own start dies with SIGILL.
 * avx2: Bun's default x86_64 build, compiled for Haswell (2013) and later.
 */
const X64_CPU = {
  baseline: ["sse4_2", "popcnt", "ssse3", "cx16"],
  avx2: ["sse4_2", "popcnt", "ssse3", "cx16", "avx", "avx2", "bmi1", "bmi2", "fma", "movbe"],
};

function fail(msg) {
  console.error(`build: ${msg}`);
  process.exit(1);
}

function step(msg) {
  console.error(`build: ${msg}`);
}

function parseArgs(argv) {
  const hostArch = { x64: "x64", arm64: "arm64" }[process.arch];
  if (!hostArch || process.platform !== "linux")
    fail(`cannot build on ${process.platform}/${process.arch}: linux x64 or arm64 only`);
  const o = { runtime: "bun", arch: hostArch, cpu: "baseline", out: undefined, hostArch };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--runtime" && (value === "bun" || value === "node")) o.runtime = value;
    else if (flag === "--arch" && (value === "x64" || value === "arm64")) o.arch = value;
    else if (flag === "--cpu" && (value === "baseline" || value === "avx2")) o.cpu = value;
    else if (flag === "--out" && value) o.out = resolve(value);
    else
      fail(
        `unknown or incomplete argument ${JSON.stringify(flag)}: node build.mjs [--runtime bun|node] [--arch x64|arm64] [--cpu baseline|avx2] [--out DIR]`,
      );
    i++;
  }
  if (o.runtime === "node" && o.arch !== hostArch)
    fail("the Node build is for this machine's architecture only (--arch is for Bun)");
  o.out ??= o.arch === hostArch ? join(root, "dist") : join(root, "dist", `linux-${o.arch}`);
  o.bin = join(o.out, "bin");
  return o;
}

// Environment that cannot alter a process we start (compilers, blob generation, smoke tests).
function cleanEnv(extra = {}) {
  return { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...extra };
}

async function bundle(o, buildInfo) {
  await build({
    entryPoints: [join(root, "cmd/cni-ts.ts")],
    outfile: join(o.out, "cni-ts.cjs"),
    bundle: true,
    platform: "node",
    target: executableTarget,
    format: "cjs",
    legalComments: "none",
    logLevel: "warning",
    define: { ...sourceDefines, CNI_TS_BUILD: JSON.stringify(buildInfo) },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Bun

/**
 * The `bun` CLI of the pinned devDependency: its postinstall puts the host's binary in place of bin/bun.exe; where
 * install scripts did not run, the host's @oven/bun-linux-<arch> package still holds it.
 */
function bunCli() {
  const pinned = pkgJson.devDependencies?.bun;
  const hostPkg = `@oven/bun-linux-${process.arch === "arm64" ? "aarch64" : "x64"}`;
  const candidates = [
    join(root, "node_modules", "bun", "bin", "bun.exe"),
    join(root, "node_modules", hostPkg, "bin", "bun"),
  ];
  const seen = [];
  for (const file of candidates) {
    const r = spawnSync(file, ["--version"], { env: cleanEnv(), encoding: "utf8" });
    if (!r.error && r.status === 0 && r.stdout.trim() === pinned) return { file, version: pinned };
    seen.push(`${file}: ${r.error?.code ?? (r.stdout.trim() || r.stderr.trim() || `exit ${r.status}`)}`);
  }
  fail(`no pinned Bun ${pinned} (run npm ci): ${seen.join("; ")}`);
}

/**
 * The Bun runtime the executable is made of, for the target: the npm package @oven/bun-linux-<arch>[-baseline] at
 * Bun's version. npm installs the one for this machine (our optionalDependencies, and `bun`'s own for the host
 * default, which its postinstall moves to bun/bin/bun.exe). Any other (arm64 on x86_64) is fetched with `npm pack`
 * from the npm registry and must match package-lock.json's integrity. Handed to bun with
 * --compile-executable-path, so bun itself downloads nothing.
 */
function bunTargetRuntime(o, bun) {
  const pkg =
    o.arch === "arm64"
      ? "@oven/bun-linux-aarch64"
      : o.cpu === "baseline"
        ? "@oven/bun-linux-x64-baseline"
        : "@oven/bun-linux-x64";
  if (o.arch === o.hostArch && pkg === `@oven/bun-linux-${o.hostArch === "arm64" ? "aarch64" : "x64"}`)
    return { pkg, file: bun.file };
  const installed = join(root, "node_modules", pkg, "bin", "bun");
  if (existsSync(installed)) return { pkg, file: installed };
  const locked = lock.packages?.[`node_modules/${pkg}`];
  if (!locked || locked.version !== bun.version)
    fail(`${pkg}@${bun.version} is not in package-lock.json (run npm install)`);
  const cache = join(root, "node_modules", ".cache", "cni-ts-bun", `${pkg.replace("/", "+")}-${bun.version}`);
  const file = join(cache, "package", "bin", "bun");
  if (!existsSync(file)) {
    step(`fetching ${pkg}@${bun.version} from the npm registry (npm pack)`);
    mkdirSync(cache, { recursive: true });
    const r = spawnSync("npm", ["pack", `${pkg}@${bun.version}`, "--json", "--pack-destination", cache], {
      encoding: "utf8",
      env: process.env,
    });
    if (r.status !== 0) fail(`npm pack ${pkg}@${bun.version} failed: ${r.stderr}`);
    const [packed] = JSON.parse(r.stdout);
    if (packed.integrity !== locked.integrity)
      fail(`${pkg}@${bun.version}: integrity ${packed.integrity} is not package-lock.json's ${locked.integrity}`);
    const t = spawnSync("tar", ["-xzf", join(cache, packed.filename), "-C", cache], { encoding: "utf8" });
    if (t.status !== 0 || !existsSync(file)) fail(`cannot unpack ${packed.filename}: ${t.stderr}`);
    rmSync(join(cache, packed.filename), { force: true });
  }
  return { pkg, file };
}

function compileWithBun(o, bun, target, runtimeFile) {
  const tmp = join(o.bin, ".cni-ts.tmp");
  const args = [
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    // A plugin call is a few milliseconds of code that runs once: the JIT would compile what it never sees again.
    // Measured per pod (bench pod, 3 rounds each): RunPodSandbox 1.21-1.34x the reference without, 1.10-1.20x with.
    // The routes controller, which stays, restores the normal policy (lib/runtime.ts normalJitPolicy).
    `--compile-jit-policy=${BUN_JIT_POLICY}`,
    // A plugin runs as root in whatever directory the runtime runs in: nothing there may configure it.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--no-compile-autoload-package-json",
    "--no-compile-autoload-tsconfig",
    `--target=${target}`,
    `--compile-executable-path=${runtimeFile}`,
    join(o.out, "cni-ts.cjs"),
    "--outfile",
    tmp,
  ];
  // An empty working directory and HOME: nothing of the checkout (a bunfig.toml, .env) configures the compiler.
  const cwd = mkdtempSync(join(tmpdir(), "cni-ts-bun-"));
  try {
    const r = spawnSync(bun.file, args, { cwd, env: cleanEnv({ HOME: cwd }), encoding: "utf8" });
    if (r.status !== 0) fail(`bun build --compile failed (exit ${r.status}): ${r.stderr}${r.stdout}`);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, join(o.bin, "cni-ts"));
}

// ---------------------------------------------------------------------------------------------------------------
// Node (fallback)

function baseNode() {
  const pkg = `node-linux-${process.arch}`;
  const pinned = pkgJson.optionalDependencies?.[pkg];
  let file;
  try {
    file = join(dirname(require.resolve(`${pkg}/package.json`)), "bin", "node");
  } catch {
    fail(`${pkg} is not installed: run npm ci (it is an optional dependency pinned in package.json)`);
  }
  const r = spawnSync(file, ["--version"], { env: cleanEnv(), encoding: "utf8" });
  if (r.status !== 0 || r.stdout.trim() !== `v${pinned}`)
    fail(`${file} is not the pinned Node ${pinned} (got ${r.stdout.trim() || r.stderr})`);
  return { file, version: pinned };
}

async function compileWithNode(o, node) {
  const config = join(o.out, "sea-config.json");
  const blob = join(o.out, "cni-ts.blob");
  writeFileSync(
    config,
    JSON.stringify(
      {
        main: join(o.out, "cni-ts.cjs"),
        output: blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
        useSnapshot: false,
        // A plugin runs as root with the runtime's environment: NODE_OPTIONS must not inject code into it.
        execArgvExtension: "none",
      },
      null,
      2,
    ),
  );
  const r = spawnSync(node.file, ["--experimental-sea-config", config], { env: cleanEnv(), encoding: "utf8" });
  if (r.status !== 0) fail(`SEA blob generation failed: ${r.stderr}`);
  const { inject: postject } = require("postject");
  const tmp = join(o.bin, ".cni-ts.tmp");
  copyFileSync(node.file, tmp);
  chmodSync(tmp, 0o755);
  const strip = spawnSync("strip", [tmp], { encoding: "utf8" });
  if (strip.error || strip.status !== 0)
    step("strip not available or failed: the executable stays unstripped (larger, same behaviour)");
  await postject(tmp, "NODE_SEA_BLOB", readFileSync(blob), { sentinelFuse: SEA_FUSE });
  renameSync(tmp, join(o.bin, "cni-ts"));
}

function link(o) {
  for (const p of PLUGINS) {
    rmSync(join(o.bin, p), { force: true });
    symlinkSync("cni-ts", join(o.bin, p));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Smoke test

/**
 * How to run the built file here: directly, or under qemu-user for another architecture (Debian's qemu-user-static
 * and libc6-arm64-cross). undefined when it cannot run here.
 */
function runner(o) {
  if (o.arch === o.hostArch) return { prefix: [], what: "natively" };
  const qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"].find(existsSync);
  const sysroot = "/usr/aarch64-linux-gnu";
  if (!qemu || !existsSync(join(sysroot, "lib", "ld-linux-aarch64.so.1"))) return undefined;
  return { prefix: [qemu, "-L", sysroot], what: `under ${qemu}` };
}

function run(_o, how, file, { env = {}, input = "", args = [], cwd } = {}) {
  const [cmd, ...pre] = how.prefix.length ? how.prefix : [file];
  const argv = how.prefix.length ? [...pre, file, ...args] : args;
  // Under qemu the exec'd name is qemu: the applet is then given as the first argument, the way `cni-ts NAME` works.
  return spawnSync(cmd, argv, { env: cleanEnv(env), input, encoding: "utf8", cwd, timeout: 120_000 });
}

const VERSION_IN = '{"cniVersion":"1.0.0"}';

/** VERSION through every plugin name; the exact answer, and nothing on stderr. */
function checkVersions(o, how, what, opts = {}) {
  for (const p of PLUGINS) {
    const viaLink = how.prefix.length === 0;
    const r = run(o, how, join(o.bin, viaLink ? p : "cni-ts"), {
      ...opts,
      args: viaLink ? [] : [p],
      env: { CNI_COMMAND: "VERSION", ...opts.env },
      input: VERSION_IN,
    });
    let answer;
    try {
      answer = JSON.parse(r.stdout);
    } catch {
      fail(
        `smoke test (${what}): ${p} VERSION printed ${JSON.stringify(r.stdout)} (exit ${r.status ?? r.signal}, stderr ${JSON.stringify(r.stderr.slice(0, 300))})`,
      );
    }
    if (
      r.status !== 0 ||
      answer.cniVersion !== "1.0.0" ||
      !answer.supportedVersions?.includes("1.1.0") ||
      r.stderr !== ""
    ) {
      fail(
        `smoke test (${what}): ${p} VERSION answered ${r.stdout} (exit ${r.status}, stderr ${JSON.stringify(r.stderr.slice(0, 300))})`,
      );
    }
  }
}

function listDir(dir) {
  return spawnSync("find", [dir, "-mindepth", "1"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).sort();
}

/**
 * Bun: a working directory full of configuration and the Node.js variables change nothing; the variables of
 * BUN_ACTING do act before our code (docs/reliability.md lists them as an operator requirement: proving each here
 * keeps that list true when Bun changes).
 */
async function smokeTestBun(o, how) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-smoke-"));
  try {
    const marker = join(dir, "hook-ran");
    const hook = join(dir, "hook.cjs");
    writeFileSync(hook, `require("fs").writeFileSync(${JSON.stringify(marker)}, "injected")\n`);
    // Each file would change the run if autoloaded: .env sets CNI_COMMAND (so a run without it would answer VERSION),
    // bunfig.toml preloads the hook, package.json and tsconfig.json are not even JSON.
    const cwd = join(dir, "cwd");
    mkdirSync(cwd);
    writeFileSync(join(cwd, ".env"), "CNI_COMMAND=VERSION\nBUN_OPTIONS=--preload ./hook.cjs\n");
    writeFileSync(join(cwd, "bunfig.toml"), `preload = [${JSON.stringify(hook)}]\n[run]\nbun = true\n`);
    writeFileSync(join(cwd, "package.json"), "{ not json");
    writeFileSync(join(cwd, "tsconfig.json"), "{ not json");
    const before = listDir(dir);
    checkVersions(o, how, "files in the working directory", { cwd });
    const person = run(o, how, join(o.bin, "cni-ts"), { cwd, args: ["bridge"] });
    if (person.status !== 0 || person.stdout !== "" || !person.stderr.includes("bridge"))
      fail(
        `smoke test: bridge in a directory with a .env answered ${JSON.stringify(person.stdout)} (exit ${person.status}): the .env was loaded`,
      );
    const inert = {
      NODE_OPTIONS: `--require ${hook}`,
      NODE_COMPILE_CACHE: join(dir, "cache"),
      NODE_REPL_EXTERNAL_MODULE: hook,
      NODE_CHANNEL_FD: "3",
      NODE_UNIQUE_ID: "1",
      NODE_V8_COVERAGE: join(dir, "coverage"),
      NODE_REDIRECT_WARNINGS: join(dir, "warnings"),
      JSC_dumpOptions: "1",
      BUN_RUNTIME_TRANSPILER_CACHE_PATH: join(dir, "transpiler"),
    };
    checkVersions(o, how, "Node.js variables", { env: inert });
    const after = listDir(dir);
    if (existsSync(marker) || after.join() !== before.join())
      fail(`smoke test: something was written: ${after.filter((f) => !before.includes(f)).join(", ")}`);

    // Each variable of the list acts: prove it, so the documented list stays true.
    const exe = join(o.bin, "cni-ts");
    const version = (env, args = ["host-local"]) =>
      run(o, how, exe, { env: { CNI_COMMAND: "VERSION", ...env }, input: VERSION_IN, args });
    const acts = [];
    let r = version({ BUN_OPTIONS: `--preload ${hook}` });
    if (existsSync(marker)) acts.push("BUN_OPTIONS");
    rmSync(marker, { force: true });
    r = version({ BUN_BE_BUN: "1" }, ["--version"]);
    if (r.stdout.trim() === pkgJson.devDependencies.bun) acts.push("BUN_BE_BUN");
    r = version({ BUN_JSC_dumpOptions: "1" });
    if (r.stderr.includes("dumpOptions")) acts.push("BUN_JSC_*");
    for (const v of ["BUN_BYTECODE_ORDER_OUT", "BUN_BYTECODE_DIGEST_OUT"]) {
      version({ [v]: join(dir, v) });
      if (existsSync(join(dir, v))) acts.push(v);
    }
    r = version({ MIMALLOC_VERBOSE: "1" });
    if (r.stderr.includes("mimalloc")) acts.push("MIMALLOC_*");
    if (how.prefix.length === 0) {
      // The dynamic loader's variables (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, GLIBC_TUNABLES ...): LD_DEBUG shows it reads them.
      r = version({ LD_DEBUG: "statistics" });
      if (r.stderr.includes("runtime linker statistics")) acts.push("LD_*");
      for (const v of ["BUN_INSPECT", "BUN_INSPECT_CONNECT_TO"]) if (await connectsTo(exe, v, dir)) acts.push(v);
    }
    const expected = [
      "BUN_OPTIONS",
      "BUN_BE_BUN",
      "BUN_JSC_*",
      "BUN_BYTECODE_ORDER_OUT",
      "BUN_BYTECODE_DIGEST_OUT",
      "MIMALLOC_*",
      ...(how.prefix.length === 0 ? ["LD_*", "BUN_INSPECT", "BUN_INSPECT_CONNECT_TO"] : []),
    ];
    const unproven = expected.filter((v) => !acts.includes(v));
    if (unproven.length)
      fail(
        `smoke test: ${unproven.join(", ")} no longer act(s) before our code: update docs/reliability.md ("Environment variables that act before our code") and this list`,
      );
    return acts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Does the executable, run with `variable` naming a unix socket, connect to it (a debugger would be served there)? */
function connectsTo(exe, variable, dir) {
  const sock = join(dir, `${variable}.sock`);
  return new Promise((resolveConnected) => {
    let connected = false;
    const server = createServer((c) => {
      connected = true;
      c.destroy();
    });
    server.listen(sock, () => {
      const child = spawn(exe, ["host-local"], {
        env: cleanEnv({ CNI_COMMAND: "VERSION", [variable]: `unix://${sock}` }),
        stdio: ["pipe", "ignore", "ignore"],
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.stdin.on("error", () => {});
      child.stdin.end(VERSION_IN);
      child.on("close", () => {
        clearTimeout(timer);
        server.close(() => resolveConnected(connected));
      });
    });
  });
}

function smokeTestNode(o, how) {
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-smoke-"));
  try {
    const marker = join(dir, "marker");
    const hook = join(dir, "hook.cjs");
    writeFileSync(hook, `require("fs").writeFileSync(${JSON.stringify(marker)}, "injected")\n`);
    checkVersions(o, how, "NODE_OPTIONS", { env: { NODE_OPTIONS: `--require ${hook}` } });
    if (existsSync(marker))
      fail("smoke test: NODE_OPTIONS --require ran code inside the executable (execArgvExtension not honoured)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The baseline x86_64 build on the oldest CPU its flags allow (Nehalem: no AVX), emulated by qemu-user where it is
 * installed: proves that X64_CPU.baseline is all it needs. Returns what was proved, or undefined.
 */
function smokeTestBaselineCpu(o) {
  const qemu = "/usr/bin/qemu-x86_64-static";
  if (o.runtime !== "bun" || o.arch !== "x64" || o.cpu !== "baseline" || o.hostArch !== "x64" || !existsSync(qemu))
    return undefined;
  checkVersions(o, { prefix: [qemu, "-cpu", "Nehalem"], what: "" }, "under qemu-user -cpu Nehalem (no AVX)");
  return "runs on a Nehalem CPU (qemu-user)";
}

async function smokeTest(o, how) {
  checkVersions(o, how, "plain");
  const help = run(o, how, join(o.bin, "cni-ts"));
  if (help.status !== 0 || !help.stderr.includes("cni-ts"))
    fail(`smoke test: cni-ts printed no usage (exit ${help.status ?? help.signal}, ${help.stderr.slice(0, 300)})`);
  if (o.runtime === "node") return smokeTestNode(o, how);
  return smokeTestBun(o, how);
}

// ---------------------------------------------------------------------------------------------------------------

const o = parseArgs(process.argv.slice(2));
mkdirSync(o.bin, { recursive: true });
let info;
if (o.runtime === "bun") {
  const bun = bunCli();
  const target =
    o.arch === "arm64" ? "bun-linux-arm64" : o.cpu === "baseline" ? "bun-linux-x64-baseline" : "bun-linux-x64";
  const rt = bunTargetRuntime(o, bun);
  info = {
    runtime: "bun",
    target: `${target}-v${bun.version}`,
    arch: o.arch,
    cpuFlags: o.arch === "x64" ? X64_CPU[o.cpu] : [],
  };
  step(`bundling with esbuild`);
  await bundle(o, info);
  step(`compiling with Bun ${bun.version} for ${target} (runtime ${rt.pkg})`);
  compileWithBun(o, bun, target, rt.file);
} else {
  const node = baseNode();
  info = { runtime: "node", target: `node-linux-${o.arch}-v${node.version}`, arch: o.arch, cpuFlags: [] };
  step(`bundling with esbuild`);
  await bundle(o, info);
  step(`SEA blob with Node ${node.version}, injecting into ${node.file}`);
  await compileWithNode(o, node);
}
link(o);
const how = runner(o);
const size = `${(statSync(join(o.bin, "cni-ts")).size / 1e6).toFixed(1)} MB`;
if (!how) {
  step(
    `ok: ${join(o.bin, "cni-ts")} (${info.target}, ${size}) and links ${PLUGINS.join(", ")}; NOT smoke-tested: it cannot run here (apt-get install qemu-user-static libc6-arm64-cross)`,
  );
} else {
  const acts = await smokeTest(o, how);
  const cpu = smokeTestBaselineCpu(o);
  const proved =
    o.runtime === "bun"
      ? `working-directory files and NODE_* inert; act before our code: ${acts.join(", ")}`
      : "NODE_OPTIONS ignored";
  step(
    `ok: ${join(o.bin, "cni-ts")} (${info.target}, ${size}) and links ${PLUGINS.join(", ")}; smoke-tested ${how.what}: VERSION, ${proved}${cpu ? `; ${cpu}` : ""}`,
  );
}
