/**
 * Exclusive file locks with a bounded wait, compatible with the reference plugins' `flock` on the same file
 * (host-local's `<dataDir>/<net>/lock`), so ours and theirs exclude each other on a mixed node.
 *
 * Neither runtime has flock(2), and native addons are out, so util-linux `flock` takes the lock for us: the caller
 * opens and checks the file, `flock` locks that open file, inherited as its fd 3 (what was checked is what gets
 * locked, whatever is renamed or planted at the name in between). The lock belongs to the open file shared by both
 * processes, so `flock` exits as soon as it has the lock (one process, no shell), and the lock lasts until the caller
 * closes `fd`, which it does right after `fn`; our death closes it too, and the kernel drops the lock.
 *
 * @example
 *   const fd = openSync("/var/lib/cni/networks/net1/lock", "a");
 *   await withFileLock("/var/lib/cni/networks/net1/lock", fd, 10_000, async () => { ... });
 */
import { CniError, ErrorCode } from "./errors.js";
import { run } from "./exec.js";
import { ToolError } from "./tool-error.js";

export const DEFAULT_LOCK_WAIT_MS = 30_000;

/** flock(1)'s exit status when the wait ran out (its --conflict-exit-code). */
const CONFLICT = 75;

/** Run `fn` holding an exclusive lock on the open file `fd` (`file` is its name, for messages); wait at most `waitMs`. */
export async function withFileLock<T>(file: string, fd: number, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  const args = ["--exclusive", "--timeout", String(seconds), "--conflict-exit-code", String(CONFLICT), "3"];
  let r: Awaited<ReturnType<typeof run>>;
  try {
    // flock's own --timeout ends the wait; the deadline is only for a flock that hangs past it.
    r = await run("flock", args, { passFds: [fd], timeoutMs: seconds * 1000 + 5000 });
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    throw new CniError(ErrorCode.Internal, `cannot run flock (util-linux) to lock ${file}: ${e.errno ?? e.message}`);
  }
  if (r.code === CONFLICT || r.timedOut)
    throw new CniError(
      ErrorCode.TryAgainLater,
      `timed out after ${seconds} s waiting for the lock ${file}`,
      "another plugin instance holds it; retry later",
    );
  if (r.code !== 0)
    throw new CniError(
      ErrorCode.IOFailure,
      `cannot lock ${file}: ${r.stderr.trim() || `flock exit ${r.code ?? r.signal}`}`,
    );
  return fn();
}
