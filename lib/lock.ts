/**
 * Exclusive file locks with a bounded wait, compatible with the reference plugins' `flock` on the same file
 * (host-local's `<dataDir>/<net>/lock`), so ours and theirs exclude each other on a mixed node.
 *
 * Node has no flock(2), and native addons are out, so util-linux `flock` holds the lock for us: it runs a shell
 * that says when the lock is taken and then waits on its stdin. Closing that stdin releases the lock; so does our
 * death (the pipe closes), and so does the helper's death (the kernel drops the lock). A dead holder never blocks
 * anyone for longer than it takes the kernel to notice.
 *
 * With `fd` (the file opened and checked by the caller), `flock` locks that open file, inherited as its fd 3,
 * instead of opening `file` by name: what was checked is what gets locked, whatever is renamed or planted at the
 * name in between. The lock then belongs to the open file shared by both processes, so `flock` can exit as soon as
 * it has the lock (one process, no shell) and the lock lasts until the caller closes `fd`, which it does right
 * after `fn`; our death closes it too.
 *
 * @example
 *   await withFileLock("/var/lib/cni/networks/net1/lock", 10_000, async () => { ... });
 */
import type { ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { childProcessModule } from "./builtin.js";
import { CniError, ErrorCode } from "./errors.js";

export const DEFAULT_LOCK_WAIT_MS = 30_000;

export async function withFileLock<T>(file: string, waitMs: number, fn: () => Promise<T>, fd?: number): Promise<T> {
  const release = await acquire(file, waitMs, fd);
  try {
    return await fn();
  } finally {
    release();
  }
}

function acquire(file: string, waitMs: number, fd: number | undefined): Promise<() => void> {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000)).toString();
  return new Promise((resolve, reject) => {
    const flock = ["--exclusive", "--timeout", seconds, "--conflict-exit-code", "75"];
    if (fd !== undefined) {
      // flock(1) on the inherited descriptor: exit 0 means the shared open file is locked, and stays so after it exits.
      const child = childProcessModule().spawn("flock", [...flock, "3"], { stdio: ["ignore", "ignore", "pipe", fd] });
      let stderr = "";
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("error", (e: NodeJS.ErrnoException) =>
        reject(
          new CniError(ErrorCode.Internal, `cannot run flock (util-linux) to lock ${file}: ${e.code ?? e.message}`),
        ),
      );
      child.on("close", (code) => {
        if (code === 0) resolve(() => {});
        else if (code === 75)
          reject(
            new CniError(
              ErrorCode.TryAgainLater,
              `timed out after ${seconds} s waiting for the lock ${file}`,
              "another plugin instance holds it; retry later",
            ),
          );
        else reject(new CniError(ErrorCode.IOFailure, `cannot lock ${file}: ${stderr.trim() || `flock exit ${code}`}`));
      });
      return;
    }
    const child: ChildProcessByStdio<Writable, Readable, Readable> = childProcessModule().spawn(
      "flock",
      [...flock, file, "-c", "echo locked; read _"],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    let held = false;
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdout.on("data", () => {
      if (held) return;
      held = true;
      resolve(() => {
        child.stdin.end();
        // The helper must not keep our event loop alive; the lock goes with it either way.
        child.unref();
      });
    });
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(new CniError(ErrorCode.Internal, `cannot run flock (util-linux) to lock ${file}: ${e.code ?? e.message}`)),
    );
    child.on("exit", (code) => {
      if (held) return;
      if (code === 75)
        reject(
          new CniError(
            ErrorCode.TryAgainLater,
            `timed out after ${seconds} s waiting for the lock ${file}`,
            "another plugin instance holds it; retry later",
          ),
        );
      else reject(new CniError(ErrorCode.IOFailure, `cannot lock ${file}: ${stderr.trim() || `flock exit ${code}`}`));
    });
  });
}
