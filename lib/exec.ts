/**
 * Run a program with an argument vector (never a shell), optional stdin, a deadline, and captured output.
 * Every kernel operation (ip, nsenter, iptables, nft) and every delegate goes through here.
 *
 * @example
 *   const r = await run("ip", ["-json", "link", "show"], { timeoutMs: 5000 });
 *   if (r.code !== 0) throw new Error(r.stderr);
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { CniError, ErrorCode } from "./errors.js";
import { type RunResult, SpawnFailure, spawnCollect } from "./spawn.js";
import { ToolError, classifySpawnErrno } from "./tool-error.js";

export type { RunResult } from "./spawn.js";

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Kill the process (SIGKILL) after this long; the result then has timedOut = true. */
  timeoutMs?: number;
  /** Upper bound on captured stdout/stderr each, so a runaway child cannot exhaust memory. */
  maxOutputBytes?: number;
  /** Open descriptors the child inherits as fd 3, 4, ... */
  passFds?: readonly number[];
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_OUTPUT = 8 * 1024 * 1024;

/** Run to completion; a program that cannot be started at all is a ToolError of the kind its errno names. */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  try {
    return await spawnCollect(file, args, {
      input: opts.input,
      env: opts.env,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
      passFds: opts.passFds,
    });
  } catch (e) {
    if (!(e instanceof SpawnFailure)) throw e;
    throw new ToolError({
      tool: file,
      what: `cannot execute ${file}`,
      status: null,
      stderr: "",
      kind: classifySpawnErrno(e.code),
      reason: e.code ?? e.message,
      errno: e.code,
    });
  }
}

/**
 * The error for a child killed at its deadline: code 11 (try again later: a firewall lock, a loaded node), naming the
 * command and the deadline, so a hung `ip`, `nft` or `iptables` is told apart from one that refused. For callers that
 * read a RunResult themselves and answer with a CniError; runOk raises the ToolError of kind `timeout` instead.
 */
export function timedOutError(what: string, r: Pick<RunResult, "timeoutMs" | "stderr">): CniError {
  return new CniError(ErrorCode.TryAgainLater, `${what}: no answer within ${r.timeoutMs} ms, killed`, r.stderr.trim());
}

/**
 * The ToolError for a run that did not succeed: kind `timeout` for a deadline (the message names it as timedOutError
 * does), else the kind its stderr names, with stderr (or the exit status) as the message's reason.
 */
export function toolFailure(file: string, what: string, r: RunResult): ToolError {
  if (r.timedOut)
    return new ToolError({
      tool: file,
      what,
      status: null,
      stderr: r.stderr,
      kind: "timeout",
      reason: `no answer within ${r.timeoutMs} ms, killed`,
    });
  return new ToolError({
    tool: file,
    what,
    status: r.code,
    stderr: r.stderr,
    reason: r.stderr.trim() || `exit ${r.code ?? r.signal}`,
  });
}

/**
 * Like run, but a non-zero exit or a timeout is a ToolError carrying stderr and its kind; whoever handles the verb
 * decides what CNI code that is (skel: 11 for a deadline, 100 otherwise).
 */
export async function runOk(
  file: string,
  args: readonly string[],
  opts: RunOptions & { what?: string } = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.timedOut || r.code !== 0) throw toolFailure(file, opts.what ?? `${file} ${args.join(" ")}`, r);
  return r.stdout;
}

/**
 * Whether a program can be started from PATH, without starting it (no process on the hot path). nsenter --net
 * switches only the network namespace, so the lookup in our own mount namespace is the one nsenter will make.
 *
 * @example
 *   if (!hasExecutable("conntrack")) return; // best-effort step, skipped on nodes without conntrack-tools
 */
export function hasExecutable(name: string): boolean {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
