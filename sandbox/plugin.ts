/**
 * Running a plugin as a runtime does: inside a node namespace (`ip netns exec NODE env -i PATH=… CNI_…=… PLUGIN`,
 * which execs, so the child's pid ends up the plugin's), the config on stdin, the CNI_* environment and nothing
 * inherited. Synchronous calls for the common case; a spawned call that can be killed at a chosen moment and whose
 * memory is sampled while it runs. Each call is timed.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Ns } from "./netns.js";

export type Conf = Record<string, unknown>;

/** What the runtime says about the attachment of one call. */
export interface CallOpts {
  /** The pod namespace (CNI_NETNS is its path); a string is used as CNI_NETNS verbatim ("" for "no netns"). */
  pod?: Ns | string;
  containerID?: string;
  ifname?: string;
  /** CNI_ARGS. */
  args?: string;
  /** PATH for the plugin instead of the default one (recordingTools()). */
  path?: string;
  /** Environment on top of the CNI_* variables; a null value removes a variable. */
  env?: Record<string, string | null>;
}

/** The environment a runtime gives a plugin for `cmd`: PATH, the CNI_* variables, then the overrides of `o`. */
export function cniEnv(cmd: string, cniPath: string, path: string, o: CallOpts = {}): Record<string, string> {
  const pod = o.pod === undefined ? "" : typeof o.pod === "string" ? o.pod : o.pod.path;
  const env: Record<string, string> = {
    PATH: o.path ?? path,
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: o.containerID ?? (typeof o.pod === "object" ? `ctr-${o.pod.name}` : "ctr-none"),
    CNI_NETNS: pod,
    CNI_IFNAME: o.ifname ?? "eth0",
    CNI_PATH: cniPath,
  };
  if (o.args !== undefined) env.CNI_ARGS = o.args;
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** argv of `ip` that runs `exe` inside namespace `node` with exactly `env`. */
export function inNodeArgv(node: string, exe: string, env: Record<string, string>): string[] {
  return ["netns", "exec", node, "env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), exe];
}

/** One plugin call: exit status, stdout parsed (result or error object), stderr, wall time. */
export interface CniCall {
  status: number | null;
  out: Record<string, any> | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A call's outcome, its stdout parsed; throws when stdout is not empty and not one JSON value. */
export function parseCall(status: number | null, stdout: string, stderr: string, ms: number): CniCall {
  let out: Record<string, any> | undefined;
  if (stdout.trim() !== "") {
    try {
      out = JSON.parse(stdout) as Record<string, any>;
    } catch {
      throw new Error(`plugin stdout is not one JSON value: ${stdout.slice(0, 300)}\nstderr: ${stderr}`);
    }
  }
  return { status, out, stdout, stderr, ms };
}

/** Run `exe` inside namespace `node` with `env`, `stdin` on a pipe, and wait for it. */
export function runInNode(node: string, exe: string, env: Record<string, string>, stdin: string): CniCall {
  const t = performance.now();
  const r = spawnSync("ip", inNodeArgv(node, exe, env), { input: stdin, encoding: "utf8", timeout: 60_000 });
  return parseCall(r.status, r.stdout ?? "", r.stderr ?? "", performance.now() - t);
}

/** A run of an executable outside any namespace (host-local, VERSION): stdout parsed when not empty. */
export interface ExeResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as exactly one JSON value, or undefined when stdout is empty. Throws if it is not one JSON value. */
  json: Record<string, unknown> | undefined;
}

/** Run an executable by its full path with exactly `env`. */
export function runExe(file: string, env: Record<string, string>, stdin = "", argv: string[] = []): ExeResult {
  const r = spawnSync(file, argv, { env, input: stdin, encoding: "utf8", timeout: 60_000 });
  const stdout = r.stdout ?? "";
  return {
    status: r.status,
    stdout,
    stderr: r.stderr ?? "",
    json: stdout.trim() === "" ? undefined : (JSON.parse(stdout) as Record<string, unknown>),
  };
}

/** A spawned plugin's outcome. */
export interface ProcResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed when it is one JSON value; undefined when empty or not JSON (see `jsonError`). */
  out: Record<string, any> | undefined;
  jsonError: string | undefined;
  ms: number;
  /** Highest VmHWM (kB) seen while the plugin itself (not `ip netns exec`/`env` before it) ran; 0 if never sampled. */
  peakRssKb: number;
  /** Most open file descriptors seen in the plugin process. */
  peakFds: number;
  /** Set when the process was killed by us, in ms after spawn. */
  killedAt: number | undefined;
  /** Wall time to the process's exit (before its output is drained), as a benchmark counts a call. */
  exitMs: number;
}

export interface SpawnOpts {
  /** SIGKILL the plugin this many ms after spawn. */
  killAfterMs?: number;
  /** Sample the plugin's memory and descriptors while it runs (a 2 ms poll of /proc). */
  sample?: boolean;
  /** With `sample`: SIGKILL the plugin once its VmHWM passes this many kB (a runaway read must not take the machine). */
  maxRssKb?: number;
  /** Called with the child right after spawn. */
  onSpawn?: (c: ChildProcess) => void;
}

/** VmHWM and open descriptors of `pid` once it runs the plugin executable (before that it is `ip`, then `env`). */
function readStatus(pid: number): { hwm: number; fds: number } | undefined {
  try {
    // Node renames its main thread ("MainThread"), so the executable, not comm, tells the plugin apart.
    if (!readlinkSync(`/proc/${pid}/exe`).endsWith("/cni-ts")) return undefined;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { hwm, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/**
 * Run `exe` inside namespace `node` as a separate process (concurrently with others), with stdin `stdin`, and
 * resolve when it exits. Never rejects for a plugin failure; a stdout that is not JSON is reported in `jsonError`.
 */
export function spawnInNode(
  node: string,
  exe: string,
  env: Record<string, string>,
  stdin: string | Buffer,
  o: SpawnOpts = {},
): Promise<ProcResult> {
  // Only the spawn options: a caller's `o` may also hold its CNI overrides under `env`, already in `env` here.
  const { killAfterMs, sample, maxRssKb, onSpawn } = o;
  return spawnPlugin("ip", inNodeArgv(node, exe, env), stdin, { killAfterMs, sample, maxRssKb, onSpawn });
}

/**
 * spawnInNode's machinery for any command line: `file argv` with `o.env` (else this process's environment), stdin
 * `stdin` written to a pipe, or the file descriptor `o.stdinFd` handed to the child as it is (a benchmark's FIFO).
 */
export function spawnPlugin(
  file: string,
  argv: string[],
  stdin: string | Buffer,
  o: SpawnOpts & { env?: Record<string, string>; stdinFd?: number } = {},
): Promise<ProcResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: o.env ?? process.env, stdio: [o.stdinFd ?? "pipe", "pipe", "pipe"] });
    let peakRssKb = 0;
    let peakFds = 0;
    let killedAt: number | undefined;
    const sample = () => {
      if (child.pid === undefined) return;
      const s = readStatus(child.pid);
      if (s) {
        peakRssKb = Math.max(peakRssKb, s.hwm);
        peakFds = Math.max(peakFds, s.fds);
        if (o.maxRssKb !== undefined && s.hwm > o.maxRssKb && killedAt === undefined) {
          killedAt = performance.now() - t0;
          child.kill("SIGKILL");
        }
      }
    };
    const poll = o.sample ? setInterval(sample, 2) : undefined;
    const killer =
      o.killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            killedAt = performance.now() - t0;
            child.kill("SIGKILL");
          }, o.killAfterMs);
    // Chunks joined at the end: a multi-byte character may straddle two of them.
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    const stopTimers = () => {
      if (poll) clearInterval(poll);
      if (killer) clearTimeout(killer);
    };
    child.on("error", (e) => {
      stopTimers();
      reject(e);
    });
    let exitMs: number | undefined;
    child.on("exit", () => {
      exitMs = performance.now() - t0;
      stopTimers();
    });
    child.on("close", (status, signal) => {
      const ms = performance.now() - t0;
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      let parsed: Record<string, any> | undefined;
      let jsonError: string | undefined;
      if (stdout.trim() !== "") {
        try {
          parsed = JSON.parse(stdout) as Record<string, any>;
        } catch (e) {
          jsonError = (e as Error).message;
        }
      }
      resolve({
        status,
        signal,
        stdout,
        stderr,
        out: parsed,
        jsonError,
        ms,
        peakRssKb,
        peakFds,
        killedAt: signal === "SIGKILL" ? killedAt : undefined,
        exitMs: exitMs ?? ms,
      });
    });
    if (child.stdin) {
      child.stdin.on("error", () => undefined); // a plugin that stops reading (10 MB stdin) or was killed
      child.stdin.end(stdin);
    }
    o.onSpawn?.(child);
  });
}
