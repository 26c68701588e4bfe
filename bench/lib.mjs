// Shared helpers for the benchmarks (`npm run bench -- NAME`): running a plugin the way a runtime does and timing
// it, statistics, the markdown table, the machine and version lines, the throwaway directory, and the checks
// that the executables to compare exist.
import { spawnSync } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnPlugin } from "../sandbox/plugin.ts";
import { ensureDeps } from "../scripts/deps.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OURS_EXE = join(ROOT, "dist/bin/cni-ts");
export const OURS_BIN = join(ROOT, "dist/bin");
export const REFERENCE_BIN = "/usr/lib/cni";

/** Thrown for anything that must stop the benchmark with a message (no stack trace printed). */
export class BenchError extends Error {
  name = "BenchError";
}

/**
 * Walk a benchmark's options: `take(option, next)` handles one (next() is its value) and returns false for an
 * option it does not know; --help prints `usage` and exits.
 */
export function parseOptions(argv, usage, take) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log(usage);
      process.exit(0);
    }
    if (!take(a, () => argv[++i])) throw new BenchError(`unknown option ${a}\n${usage}`);
  }
}

/** --n: an integer from lo to hi. */
export function checkN(n, lo, hi) {
  if (!Number.isInteger(n) || n < lo || n > hi) throw new BenchError(`--n must be an integer from ${lo} to ${hi}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Running plugins

/**
 * The whole environment of a plugin run: PATH and the CNI_* variables, nothing inherited. In particular no
 * NODE_OPTIONS / NODE_EXTRA_CA_CERTS, which cost a Node start tens of milliseconds on some machines.
 */
export function pluginEnv(cni) {
  const env = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_NETNS: "/var/run/netns/bench",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
  };
  for (const [k, v] of Object.entries(cni)) {
    if (v !== undefined) env[k.startsWith("CNI_") ? k : `CNI_${k}`] = String(v);
  }
  return env;
}

// Standard input as a runtime gives it: Go's exec.Cmd hands a plugin the read end of a pipe(2). Node's spawn would
// hand it one end of a socketpair, which a plugin reads differently (cni-ts through its stream path: some
// milliseconds and megabytes more than through a pipe), so the bench hands each call a FIFO of its own, already
// holding the config with its writer closed: a pipe with the data and end of file, read exactly as a runtime's.
const fifos = { dir: undefined, free: [], made: 0 };

function takeFifo() {
  if (fifos.free.length > 0) return fifos.free.pop();
  if (!fifos.dir) {
    fifos.dir = mkdtempSync(join(tmpdir(), "cni-ts-bench-stdin-"));
    process.once("exit", () => rmSync(fifos.dir, { recursive: true, force: true }));
  }
  const path = join(fifos.dir, `in${fifos.made++}`);
  const r = spawnSync("mkfifo", ["-m", "600", path]);
  if (r.status !== 0) throw new BenchError(`mkfifo ${path} failed: ${r.stderr}`);
  return path;
}

/**
 * The read end of a pipe holding `data` (at most a pipe's 64 KiB), its writer closed. `spawned`: the child has its
 * copy, ours is closed; `done`: the child has exited, so its FIFO may carry another call's input (while any reader
 * holds it open, a second writer's bytes would land in the same pipe).
 */
function pipeHolding(data) {
  const path = takeFifo();
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(path, constants.O_WRONLY);
  const buf = Buffer.from(data);
  if (buf.length > 65536) throw new BenchError("bench stdin larger than a pipe's buffer");
  if (buf.length > 0) writeSync(writeFd, buf);
  closeSync(writeFd);
  return { fd: readFd, spawned: () => closeSync(readFd), done: () => fifos.free.push(path) };
}

/**
 * Run `file` with exactly `env`, `stdin` in a pipe on its standard input (as a Go runtime gives it), and wait for it
 * to exit (the sandbox toolkit's spawnPlugin).
 * ms: wall time from just before spawn to the exit event, as a float.
 * Never rejects for a plugin failure (code !== 0): the caller decides; see mustSucceed. Kills it after timeoutMs.
 */
export function runPlugin(file, env, stdin, { timeoutMs = 120_000, args = [] } = {}) {
  const input = pipeHolding(stdin);
  let child;
  let done;
  try {
    done = spawnPlugin(file, args, "", { env, stdinFd: input.fd, killAfterMs: timeoutMs, onSpawn: (c) => (child = c) });
  } finally {
    input.spawned();
  }
  if (child) {
    child.once("close", input.done);
    const settled = done.then(
      () => {},
      () => {},
    );
    live.set(child, settled);
    void settled.then(() => live.delete(child));
  }
  return done.then(
    (r) => ({
      ms: r.exitMs,
      code: r.killedAt === undefined ? r.status : null,
      signal: r.killedAt === undefined ? r.signal : `timeout after ${timeoutMs} ms`,
      stdout: r.stdout,
      stderr: r.stderr,
    }),
    (e) => {
      throw new BenchError(`cannot run ${file}: ${e.code ?? e.message}`);
    },
  );
}

/** Plugin processes started by runPlugin that have not finished yet, with a promise of their end. */
const live = new Map();

/**
 * Kill (SIGKILL) every plugin process still running and wait for them to end (at most waitMs), so that nothing
 * writes into a directory being removed. Used on errors (one failed call of a burst) and on signals.
 */
export async function stopPlugins(waitMs = 3000) {
  if (live.size === 0) return;
  for (const child of live.keys()) child.kill("SIGKILL");
  let timer;
  await Promise.race([Promise.all(live.values()), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
}

/** Throw a BenchError that shows everything the plugin said unless it exited 0. Returns r. */
export function mustSucceed(r, what) {
  if (r.code === 0) return r;
  const how = r.code === null ? `was killed (${r.signal})` : `exited ${r.code}`;
  const said = [
    r.stdout.trim() && `stdout: ${r.stdout.trim()}`,
    r.stderr.trim() && `stderr: ${r.stderr.trim()}`,
  ].filter(Boolean);
  throw new BenchError(`${what} ${how}${said.length ? `\n  ${said.join("\n  ")}` : " and printed nothing"}`);
}

/** Parse a plugin's JSON result, or throw a BenchError naming who printed what. */
export function parseResult(r, what) {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new BenchError(`${what} exited 0 but printed no JSON result: ${JSON.stringify(r.stdout)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics and formatting

/** Linear-interpolated percentile (p in 0..100) of a list of numbers; NaN for an empty list. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = ((s.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function median(values) {
  return percentile(values, 50);
}

export function max(values) {
  return values.length === 0 ? NaN : Math.max(...values);
}

/** Summary of a list of millisecond samples, for JSON output. */
export function summarize(values) {
  return {
    n: values.length,
    median: median(values),
    p90: percentile(values, 90),
    min: values.length ? Math.min(...values) : NaN,
    max: max(values),
  };
}

/** Milliseconds with one decimal. */
export function fmtMs(ms) {
  return Number.isFinite(ms) ? ms.toFixed(1) : "n/a";
}

/** a / b as "1.23x". */
export function fmtRatio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a";
}

/**
 * A markdown table, columns padded to line up in a terminal. `align` per column: "l" or "r" (default: first
 * column left, the others right).
 */
export function markdownTable(headers, rows, align = headers.map((_, i) => (i === 0 ? "l" : "r"))) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const width = headers.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)));
  const pad = (s, i) => (align[i] === "r" ? s.padStart(width[i]) : s.padEnd(width[i]));
  const line = (r) => `| ${r.map((c, i) => pad(c, i)).join(" | ")} |`;
  const rule = `|${width.map((w, i) => (align[i] === "r" ? `${"-".repeat(w + 1)}:` : `:${"-".repeat(w + 1)}`)).join("|")}|`;
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join("\n");
}

/** "PASS"/"FAIL" line for a project target. */
export function targetLine(ok, text, detail) {
  return `${ok ? "PASS" : "FAIL"}  ${text}${detail ? ` (${detail})` : ""}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Throwaway directory

/**
 * A fresh directory under os.tmpdir(), removed when the process ends in any way we can see: normal exit, an
 * exception, Ctrl-C, SIGTERM/SIGHUP (plugin processes still running are killed first). Returns { path, cleanup }
 * (cleanup is synchronous and idempotent; call stopPlugins() before it when plugins may still be running).
 */
export function makeTmpRoot(prefix) {
  const path = mkdtempSync(join(tmpdir(), prefix));
  let done = false;
  const handlers = {};
  const cleanup = () => {
    if (done) return;
    done = true;
    process.off("exit", cleanup);
    for (const [sig, h] of Object.entries(handlers)) process.off(sig, h);
    try {
      // Retries cover a plugin killed a moment ago whose last write lands during the removal.
      rmSync(path, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    } catch (e) {
      process.stderr.write(`warning: could not remove ${path}: ${e.code ?? e.message}\n`);
    }
  };
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ]) {
    handlers[sig] = async () => {
      process.stderr.write(`\ninterrupted (${sig}): stopping the plugins, removing ${path}\n`);
      await stopPlugins();
      cleanup();
      process.exit(code);
    };
    process.once(sig, handlers[sig]);
  }
  process.on("exit", cleanup);
  return { path, cleanup };
}

/** Run fn(path) with a throwaway directory, removed afterwards whatever happens. */
export async function withTmpRoot(prefix, fn) {
  const tmp = makeTmpRoot(prefix);
  try {
    return await fn(tmp.path);
  } finally {
    await stopPlugins();
    tmp.cleanup();
  }
}

/** The filesystem type of a directory ("tmpfs", "ext2/ext3", "overlayfs", ...), or "unknown". */
export function fsType(dir) {
  const r = spawnSync("stat", ["-f", "-c", "%T", dir], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

// ---------------------------------------------------------------------------------------------------------------
// What is compared, and on what

function newestMtime(dir) {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Build dist (node build.mjs) if dist/bin/cni-ts is missing. An existing build is used as it is; when sources
 * are newer, say so (rebuilding is the caller's decision: npm run build).
 */
export function ensureBuilt() {
  if (!existsSync(OURS_EXE)) {
    console.error("dist/bin/cni-ts is missing: building it (node build.mjs) ...");
    const r = spawnSync(process.execPath, [join(ROOT, "build.mjs")], { cwd: ROOT, stdio: "inherit" });
    if (r.status !== 0 || !existsSync(OURS_EXE))
      throw new BenchError("the build failed (node build.mjs): nothing to benchmark");
    return;
  }
  const sources = Math.max(
    ...["lib", "plugins", "ipam", "cmd"].map((d) => newestMtime(join(ROOT, d))),
    statSync(join(ROOT, "build.mjs")).mtimeMs,
  );
  if (sources > statSync(OURS_EXE).mtimeMs) {
    console.error(
      "note: sources are newer than dist/bin/cni-ts; benchmarking the existing build (npm run build to refresh it)",
    );
  }
}

/**
 * Make sure the reference plugin `name` exists in /usr/lib/cni (Debian's containernetworking-plugins): as root on
 * Debian it is installed, anywhere else ensureDeps stops with what to install.
 */
export function ensureReference(name) {
  const file = join(REFERENCE_BIN, name);
  if (existsSync(file)) return file;
  console.error(`${file} (the reference plugin) is missing`);
  ensureDeps(["reference plugins"]);
  if (!existsSync(file)) throw new BenchError(`${file} is still missing after installing containernetworking-plugins`);
  return file;
}

export function machineInfo() {
  const list = cpus();
  return {
    cpus: typeof availableParallelism === "function" ? availableParallelism() : list.length,
    cpuModel: list[0]?.model?.trim() ?? "unknown",
    kernel: release(),
    arch: process.arch,
    tmpdir: tmpdir(),
    tmpfs: fsType(tmpdir()),
  };
}

export function oursVersion() {
  return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
}

/** The Debian package version of the reference plugins, e.g. "1.1.1+ds1-3+b5", or undefined. */
function debianVersion() {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${Version} is dpkg-query's own format field
  const r = spawnSync("dpkg-query", ["-W", "-f", "${Version}", "containernetworking-plugins"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/**
 * What a reference plugin says about itself when run without CNI_COMMAND ("CNI host-local plugin version
 * unknown" for Debian's build), completed with the Debian package version when the binary does not know it.
 */
export function referenceVersion(file) {
  const r = spawnSync(file, [], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, input: "", encoding: "utf8" });
  const self = `${r.stdout}${r.stderr}`.split("\n")[0]?.trim() || `${file}: no version output`;
  const deb = debianVersion();
  return deb ? `${self}; Debian containernetworking-plugins ${deb}` : self;
}

/** The CNI versions a plugin speaks (CNI_COMMAND=VERSION), or [] if it would not say. */
export function supportedVersions(file) {
  const r = spawnSync(file, [], {
    env: pluginEnv({ COMMAND: "VERSION" }),
    input: '{"cniVersion":"1.0.0"}',
    encoding: "utf8",
  });
  try {
    return JSON.parse(r.stdout).supportedVersions ?? [];
  } catch {
    return [];
  }
}
