/**
 * All-or-nothing route changes: one `ip -batch` per namespace, and when a line fails, the lines before it are
 * undone (in reverse, with `-force` so one stubborn line does not keep the others in place). `ip -batch` stops at
 * the first failing line and says which ("Command failed -:N"), so exactly the applied prefix is known.
 *
 * @example
 *   const done = await applyOps([{ tokens: ["route", "add", ...], undo: ["route", "del", ...] }], "/var/run/netns/pod", "the pod");
 *   await undoOps(done); // when a later step fails
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { run } from "../../lib/exec.js";
import { batchReason, failedBatchIndex, type Token } from "../../lib/batch.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { inNetns } from "../../lib/netns.js";
import { classifyStderr, type ToolErrorKind } from "../../lib/tool-error.js";

/** One batch line and the line that reverts it (undefined: nothing to revert). */
export interface Op {
  tokens: Token[];
  undo: Token[] | undefined;
}

/** Ops that ran to completion in a namespace, kept so that a later failure can revert them. */
export interface Applied {
  netns: string | undefined;
  ops: Op[];
}

/**
 * applyOps' failure: code 100 naming the failing command, with `kind` (lib/tool-error.ts) saying what the kernel
 * answered, so a caller decides on it (a route added by a concurrent ADD is `exists`) and not on the message.
 */
export class ApplyError extends CniError {
  readonly kind: ToolErrorKind;

  constructor(kind: ToolErrorKind, msg: string, details: string) {
    super(ErrorCode.KernelOperationFailed, msg, details);
    this.kind = kind;
  }
}

const BATCH_TIMEOUT_MS = 30_000;

async function runBatch(
  lines: readonly Token[][],
  netns: string | undefined,
  force: boolean,
): Promise<{ ok: boolean; failedLine: number | undefined; stderr: string; kind: ToolErrorKind }> {
  const b = new IpBatch();
  for (const l of lines) b.cmd(...l);
  const [file, args] = inNetns(netns, "ip", force ? ["-force", "-batch", "-"] : ["-batch", "-"]);
  const r = await run(file, args, { input: b.text(), timeoutMs: BATCH_TIMEOUT_MS });
  if (r.code === 0 && !r.timedOut) return { ok: true, failedLine: undefined, stderr: r.stderr, kind: "failed" };
  if (r.timedOut)
    return { ok: false, failedLine: undefined, stderr: `no answer within ${r.timeoutMs} ms, killed`, kind: "timeout" };
  return { ok: false, failedLine: failedBatchIndex(r.stderr), stderr: r.stderr, kind: classifyStderr(r.stderr) };
}

/** The kernel's complaint without iproute2's batch bookkeeping. */
function reason(stderr: string): string {
  return batchReason(stderr).replace(/\s+/g, " ") || "failed";
}

/**
 * Run `ops` as one batch in `netns` (ours when undefined). On failure the applied prefix is undone and an ApplyError
 * (code 100) names the failing command; `where` says which namespace ("the pod", "the node").
 */
export async function applyOps(ops: readonly Op[], netns: string | undefined, where: string): Promise<Applied> {
  if (ops.length === 0) return { netns, ops: [] };
  const r = await runBatch(
    ops.map((o) => o.tokens),
    netns,
    false,
  );
  if (r.ok) return { netns, ops: [...ops] };
  // Without a line number (ip itself failed to start, a timeout) nothing says how far it got: revert all of it,
  // which -force makes harmless for lines that never ran.
  const applied = r.failedLine === undefined ? ops : ops.slice(0, r.failedLine - 1);
  const undoProblem = await undoOps({ netns, ops: [...applied] });
  const failed = r.failedLine === undefined ? undefined : ops[r.failedLine - 1];
  const cmd = failed ? `ip ${failed.tokens.join(" ")}` : "ip -batch";
  const details = undoProblem
    ? `undoing the earlier changes in ${where} failed too: ${undoProblem}`
    : applied.length > 0
      ? `the ${applied.length} earlier change(s) in ${where} were undone`
      : "";
  throw new ApplyError(r.kind, `${cmd} in ${where}: ${reason(r.stderr)}`, details);
}

/** Revert applied ops, newest first. Returns undefined on success, or what went wrong (for an error's details). */
export async function undoOps(applied: Applied): Promise<string | undefined> {
  const lines = applied.ops
    .map((o) => o.undo)
    .filter((u): u is Token[] => u !== undefined)
    .reverse();
  if (lines.length === 0) return undefined;
  try {
    const r = await runBatch(lines, applied.netns, true);
    return r.ok ? undefined : reason(r.stderr);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
