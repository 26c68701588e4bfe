/**
 * Bounded reads of the config on stdin: a runtime sends a few KiB; nobody gets to make a root process buffer
 * gigabytes.
 */
import { CniError, ErrorCode } from "./errors.js";

export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Read all of stdin, failing with code 5 past `max` bytes; resolves early with what arrived if `timeoutMs` passes. */
export function readStdin(max = MAX_CONFIG_BYTES, timeoutMs?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
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
        finish(new CniError(ErrorCode.IOFailure, `network configuration on stdin exceeds ${max} bytes`, "refusing to read more"));
        return;
      }
      chunks.push(b);
    });
    process.stdin.on("end", () => finish());
    process.stdin.on("error", (e) => finish(new CniError(ErrorCode.IOFailure, "error reading from stdin", e.message)));
  });
}
