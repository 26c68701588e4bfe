/**
 * Bounded reads of the config on stdin: a runtime sends a few KiB; nobody gets to make a root process buffer
 * gigabytes.
 *
 * The config is read with read(2) rather than through `process.stdin`: creating that stream loads Node's net and
 * stream modules, a few ms of CPU at the start of every plugin process. A non-blocking descriptor (EAGAIN) falls back
 * to the stream for the rest.
 *
 * Every read has a deadline (`stdinDeadline`): a runtime that never closes stdin (`sleep 60 | bridge`) must not keep
 * a plugin, and the locks or half-made state it may be about to hold, waiting until the runtime kills it. Node has no
 * poll(2): a pipe is opened a second time through /proc/self/fd/0 with O_NONBLOCK, and read until end of file or the
 * deadline, sleeping a few ms whenever it is empty. A runtime writes the config before it waits for the answer, so
 * the usual read finds it all and end of file at once, and never sleeps.
 *
 * @example
 *   const raw = await readStdin(undefined, stdinDeadline(process.env)); // code 5 after 10 s without end of file
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { msFromEnv } from "./env-ms.js";
import { CniError, ErrorCode } from "./errors.js";

export const MAX_CONFIG_BYTES = 1024 * 1024;

/** CNI_TS_STDIN_TIMEOUT_MS: how long ADD, DEL, CHECK, GC and STATUS wait for the config's end of file. */
export const STDIN_TIMEOUT_ENV = "CNI_TS_STDIN_TIMEOUT_MS";
/** Far above any runtime's write (microseconds) and well below the runtimes' own limits (CRI-O: 60 s). */
export const DEFAULT_STDIN_TIMEOUT_MS = 10_000;
/** VERSION needs no stdin and a runtime may send none without closing it: what arrived by then is used. */
const VERSION_STDIN_MS = 1000;

export interface StdinDeadline {
  ms: number;
  /** "fail": code 5 naming the deadline (the config is needed). "resolve": go on with what arrived (VERSION). */
  onDeadline: "fail" | "resolve";
}

/** The deadline for a verb's stdin, from the environment: refused (4) when CNI_TS_STDIN_TIMEOUT_MS is malformed. */
export function stdinDeadline(env: Readonly<Record<string, string | undefined>>): StdinDeadline {
  if (env.CNI_COMMAND === "VERSION") return { ms: VERSION_STDIN_MS, onDeadline: "resolve" };
  return { ms: msFromEnv(env, STDIN_TIMEOUT_ENV, DEFAULT_STDIN_TIMEOUT_MS), onDeadline: "fail" };
}

function deadlinePassed(d: StdinDeadline): CniError {
  return new CniError(
    ErrorCode.IOFailure,
    `network configuration on stdin not complete after ${d.ms} ms`,
    `stdin was not closed: the runtime must close it once the configuration is written (${STDIN_TIMEOUT_ENV} sets this deadline)`,
  );
}

function tooLarge(max: number): CniError {
  return new CniError(
    ErrorCode.IOFailure,
    `network configuration on stdin exceeds ${max} bytes`,
    "refusing to read more",
  );
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

/**
 * Read all of stdin, failing with code 5 past `max` bytes. With a deadline, a stdin that has not reached end of file
 * by then fails with code 5 (or, for "resolve", gives what arrived); without one, reads block (in-process callers
 * hand their bytes over directly and never get here).
 */
export function readStdin(max = MAX_CONFIG_BYTES, deadline?: StdinDeadline): Promise<Buffer> {
  // No stdin at all (closed descriptor) reads as empty; a regular file cannot keep anyone waiting.
  if (deadline === undefined || stdinKind() !== "other") return readBlocking(max);
  const fd = reopenNonBlocking();
  if (fd === undefined) return readStream([], 0, max, deadline);
  try {
    return readPolling(fd, max, deadline);
  } finally {
    closeSync(fd);
  }
}

function stdinKind(): "none" | "file" | "other" {
  try {
    return fstatSync(0).isFile() ? "file" : "other";
  } catch {
    return "none";
  }
}

/** A second, non-blocking descriptor for the pipe (or device) on fd 0; undefined for a socket or no stdin at all. */
function reopenNonBlocking(): number | undefined {
  try {
    return openSync("/proc/self/fd/0", constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function readPolling(fd: number, max: number, deadline: StdinDeadline): Promise<Buffer> {
  const end = Date.now() + deadline.ms;
  const chunks: Buffer[] = [];
  let size = 0;
  let nap = 1;
  for (;;) {
    const buf = Buffer.allocUnsafe(Math.min(65536, max + 1 - size));
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EINTR") continue;
      if (code !== "EAGAIN")
        return Promise.reject(new CniError(ErrorCode.IOFailure, "error reading from stdin", (e as Error).message));
      const left = end - Date.now();
      if (left <= 0)
        return deadline.onDeadline === "fail"
          ? Promise.reject(deadlinePassed(deadline))
          : Promise.resolve(Buffer.concat(chunks, size));
      // Nothing else runs in the process meanwhile: a plain sleep, growing to 20 ms.
      Atomics.wait(sleeper, 0, 0, Math.min(nap, left));
      nap = Math.min(nap * 2, 20);
      continue;
    }
    if (n === 0) return Promise.resolve(Buffer.concat(chunks, size));
    size += n;
    if (size > max) return Promise.reject(tooLarge(max));
    chunks.push(buf.subarray(0, n));
    nap = 1;
  }
}

function readBlocking(max: number): Promise<Buffer> {
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

function readStream(chunks: Buffer[], size: number, max: number, deadline?: StdinDeadline): Promise<Buffer> {
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
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(() => finish(deadline.onDeadline === "fail" ? deadlinePassed(deadline) : undefined), deadline.ms);
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
