/**
 * Bounded reads of the config on stdin: a runtime sends a few KiB; nobody gets to make a root process buffer
 * gigabytes.
 *
 * The config is read with read(2) on fd 0 rather than through `process.stdin`: creating that stream loads Node's
 * net and stream modules, a few ms of CPU at the start of every plugin process. A non-blocking descriptor (EAGAIN)
 * falls back to the stream for the rest.
 */
import { fstatSync, readSync } from "node:fs";
import { CniError, ErrorCode } from "./errors.js";

export const MAX_CONFIG_BYTES = 1024 * 1024;

function tooLarge(max: number): CniError {
  return new CniError(ErrorCode.IOFailure, `network configuration on stdin exceeds ${max} bytes`, "refusing to read more");
}

/**
 * True when fd 0 may be a terminal (a character device other than /dev/null): a person ran the plugin by hand,
 * and reading would wait for their typing.
 */
export function stdinMayBeTerminal(): boolean {
  try {
    const st = fstatSync(0);
    if (!st.isCharacterDevice()) return false;
    return process.stdin.isTTY === true;
  } catch {
    return false;
  }
}

/** Read all of stdin, failing with code 5 past `max` bytes; resolves early with what arrived if `timeoutMs` passes. */
export function readStdin(max = MAX_CONFIG_BYTES, timeoutMs?: number): Promise<Buffer> {
  // A deadline needs the event loop: only VERSION asks for one, and it may get a stdin nobody closes.
  if (timeoutMs !== undefined) return readStream([], 0, max, timeoutMs);
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(Math.min(65536, max + 1 - size));
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") return readStream(chunks, size, max);
      if (code === "EINTR") continue;
      // No stdin at all (closed descriptor): the same as an empty one.
      if (code === "EBADF") return Promise.resolve(Buffer.alloc(0));
      return Promise.reject(new CniError(ErrorCode.IOFailure, "error reading from stdin", (e as Error).message));
    }
    if (n === 0) return Promise.resolve(Buffer.concat(chunks, size));
    size += n;
    if (size > max) return Promise.reject(tooLarge(max));
    chunks.push(buf.subarray(0, n));
  }
}

function readStream(chunks: Buffer[], size: number, max: number, timeoutMs?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: CniError) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      process.stdin.pause();
      process.stdin.removeAllListeners("data");
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish(), timeoutMs);
    process.stdin.on("data", (b: Buffer) => {
      size += b.length;
      if (size > max) {
        finish(tooLarge(max));
        return;
      }
      chunks.push(b);
    });
    process.stdin.on("end", () => finish());
    process.stdin.on("error", (e) => finish(new CniError(ErrorCode.IOFailure, "error reading from stdin", e.message)));
  });
}
