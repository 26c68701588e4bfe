/**
 * Where every child process starts: an argument vector (never a shell), optional stdin bytes, descriptors to pass on
 * as fd 3 and up, stdout and stderr captured up to a bound, the child in a process group of its own, and a deadline
 * that kills that group. lib/exec.ts builds `run` and `runOk` on it; nothing else starts a process.
 *
 * Besides lib/runtime.ts this is the only module that uses a runtime's own API (test/unit/architecture.test.ts holds
 * it to that). Under Bun, the default build, a child starts through `Bun.spawn`: `node:child_process` there loads
 * its module and Node's stream layer first, about 5 ms of CPU and 2.5 MB of peak RSS in every plugin call that starts
 * a process (docs/benchmarks.md). Under Node, the fallback build, through `node:child_process`, loaded on first use.
 *
 * @example
 *   const r = await spawnCollect("ip", ["-json", "link", "show"], { timeoutMs: 5000, maxOutputBytes: 1 << 20 });
 */
import type * as ChildProcess from "node:child_process";
import { bunSpawner, type BunChild, type BunSpawn } from "./runtime.js";

export interface SpawnOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Open descriptors the child inherits as fd 3, 4, ... (a lock file for flock(1)). */
  passFds?: readonly number[];
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The deadline the child had, for messages. */
  timeoutMs: number;
}

/** The child could not be started at all; `code` is the errno name (ENOENT, EACCES, ETXTBSY ...). */
export class SpawnFailure extends Error {
  constructor(
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export function spawnCollect(file: string, args: readonly string[], opts: SpawnOptions): Promise<RunResult> {
  const bun = bunSpawner();
  return bun ? spawnBun(bun, file, args, opts) : spawnNode(file, args, opts);
}

/** Kill the child's process group (its children too: a grandchild holding our pipes would keep us waiting). */
function killGroup(pid: number | undefined, fallback: () => void): void {
  try {
    if (pid === undefined) throw new Error("no pid");
    process.kill(-pid, "SIGKILL");
  } catch {
    fallback();
  }
}

/** Output kept up to `max` bytes (the chunk that crosses it whole), counted beyond. */
class Capture {
  private readonly parts: Uint8Array[] = [];
  private length = 0;
  constructor(private readonly max: number) {}
  add(chunk: Uint8Array): void {
    if (this.length < this.max) this.parts.push(chunk);
    this.length += chunk.length;
  }
  text(): string {
    return Buffer.concat(this.parts).toString("utf8");
  }
}

function spawnBun(bun: BunSpawn, file: string, args: readonly string[], opts: SpawnOptions): Promise<RunResult> {
  let child: BunChild;
  try {
    const input = opts.input === undefined || opts.input.length === 0 ? "ignore" : Buffer.from(opts.input);
    child = bun([file, ...args], {
      env: opts.env ?? process.env,
      stdio: [input, "pipe", "pipe", ...(opts.passFds ?? [])],
      detached: true,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return Promise.reject(new SpawnFailure(err.code, err.message));
  }
  const out = new Capture(opts.maxOutputBytes);
  const err = new Capture(opts.maxOutputBytes);
  const readers = [child.stdout.getReader(), child.stderr.getReader()] as const;
  const drain = async (reader: ReadableStreamDefaultReader<Uint8Array>, into: Capture) => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      into.add(value);
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid, () => child.kill("SIGKILL"));
    // A descendant that left the group may still hold the pipes: stop reading, the answer is the child's exit.
    for (const r of readers) r.cancel().catch(() => undefined);
  }, opts.timeoutMs);
  return Promise.all([
    drain(readers[0], out).catch(() => undefined),
    drain(readers[1], err).catch(() => undefined),
    child.exited,
  ]).then(() => {
    clearTimeout(timer);
    return {
      code: child.exitCode,
      signal: child.signalCode as NodeJS.Signals | null,
      timedOut,
      timeoutMs: opts.timeoutMs,
      stdout: out.text(),
      stderr: err.text(),
    };
  });
}

let childProcess: typeof ChildProcess | undefined;

function spawnNode(file: string, args: readonly string[], opts: SpawnOptions): Promise<RunResult> {
  childProcess ??= process.getBuiltinModule("node:child_process") as typeof ChildProcess;
  const cp = childProcess;
  return new Promise((resolve, reject) => {
    const child = cp.spawn(file, args, {
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe", ...(opts.passFds ?? [])],
      detached: true,
    }) as ChildProcess.ChildProcessByStdio<
      import("node:stream").Writable,
      import("node:stream").Readable,
      import("node:stream").Readable
    >;
    const out = new Capture(opts.maxOutputBytes);
    const err = new Capture(opts.maxOutputBytes);
    let timedOut = false;
    let settled = false;
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, signal, timedOut, timeoutMs: opts.timeoutMs, stdout: out.text(), stderr: err.text() });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, () => child.kill("SIGKILL"));
      child.stdout.destroy();
      child.stderr.destroy();
    }, opts.timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.add(b));
    child.stderr.on("data", (b: Buffer) => err.add(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new SpawnFailure(e.code, e.message));
    });
    child.on("exit", (code, signal) => {
      if (timedOut) settle(code, signal);
    });
    child.on("close", (code, signal) => settle(code, signal));
    // A child that exits without reading its stdin makes the write fail with EPIPE: that is its answer, not ours.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}
