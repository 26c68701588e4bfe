/**
 * host-local's only ways to read and create files under its data directory, so that a planted link or special file
 * can neither redirect a write nor hang a read.
 *
 * host-local runs as root in a directory others may have written to (a container with a hostPath mount, an operator's
 * mistake, an attacker with a foothold). So:
 *   - every file it creates is created exclusively (O_CREAT|O_EXCL) without following a link (O_NOFOLLOW), under a
 *     name nobody can guess beforehand (random bytes), and only then link()ed or rename()d into place: neither call
 *     follows a link at its target, and rename replaces a link or special file instead of writing through it;
 *   - every file it reads is opened with O_NONBLOCK (a FIFO or a device must not block the open) and checked with
 *     fstat on that very descriptor to be a regular file before one byte is read (a FIFO would block the read,
 *     /dev/zero would never end).
 *
 * @example
 *   const tmp = createExclusive("/var/lib/cni/networks/.cni-ts/net1/tmp", "ctr1\r\neth0");
 *   const { text } = readRegular("/var/lib/cni/networks/net1/10.1.2.3");
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "../../lib/hash.js";

/** A name exists but is not a regular file (a FIFO, socket, device, directory, or a link where links are refused). */
export class NotRegularFileError extends Error {
  constructor(
    readonly path: string,
    readonly kind: string,
  ) {
    super(`${path} is a ${kind}, not a regular file`);
    this.name = "NotRegularFileError";
  }
}

/** What a stat says a file is, in words for messages. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return "regular file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symbolic link";
  if (st.isFIFO()) return "FIFO";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "character device";
  if (st.isBlockDevice()) return "block device";
  return "special file";
}

export interface RegularFile {
  text: string;
  /** fstat of the descriptor the text was read from: size and mtime belong to exactly that text. */
  stat: Stats;
}

export interface ReadOptions {
  /** Follow a link at `path` (an operator's ipam.resolvConf may be one); by default a link is refused (ELOOP). */
  follow?: boolean;
  /** Refuse a larger file (NotRegularFileError is not used for this: a RangeError says so). */
  maxBytes?: number;
}

/**
 * Read a regular file whole. Throws NotRegularFileError for anything else (a link, unless `follow`), the fs error
 * (ENOENT, EACCES, ...) when it cannot be opened, RangeError when it is larger than `maxBytes`.
 */
export function readRegular(path: string, opts: ReadOptions = {}): RegularFile {
  const flags =
    constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | (opts.follow ? 0 : constants.O_NOFOLLOW);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (e) {
    // O_NOFOLLOW on a link fails with ELOOP: say what is in the way rather than "too many levels of links".
    if ((e as NodeJS.ErrnoException).code === "ELOOP" && !opts.follow)
      throw new NotRegularFileError(path, "symbolic link");
    throw e;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new NotRegularFileError(path, fileKind(stat));
    if (opts.maxBytes !== undefined && stat.size > opts.maxBytes)
      throw new RangeError(`${path} is larger than ${opts.maxBytes} bytes`);
    // Read to the end rather than trust st_size: the file may have grown since fstat (never the case for ours, which
    // are written before they get their name, but a reference ADD writes after its create).
    const limit = opts.maxBytes ?? Number.MAX_SAFE_INTEGER;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.max(4096, Math.min(stat.size + 1, 1 << 20)));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > limit) throw new RangeError(`${path} is larger than ${limit} bytes`);
      chunks.push(buf.subarray(0, n));
    }
    return { text: Buffer.concat(chunks).toString("utf8"), stat };
  } finally {
    closeSync(fd);
  }
}

/** A fresh name in `dir` that nobody can have predicted: 96 random bits. */
export function unpredictableName(dir: string): string {
  return join(dir, `${randomBytes(12).toString("hex")}.tmp`);
}

/**
 * Create `path` with `content`, failing if anything (a file, a planted link) already has that name: O_EXCL makes
 * the create exclusive and, with O_NOFOLLOW, a link at `path` is never followed (EEXIST either way).
 */
export function writeExclusive(path: string, content: string, mode = 0o600): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NOCTTY,
    mode,
  );
  try {
    const buf = Buffer.from(content, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
  } finally {
    closeSync(fd);
  }
}

/**
 * Write `content` to a new file of unpredictable name in `dir` (see writeExclusive); returns its path. A name that is
 * taken (by chance, 2^-96) is simply drawn again.
 */
export function createExclusive(dir: string, content: string, mode = 0o600): string {
  for (let attempt = 0; ; attempt++) {
    const path = unpredictableName(dir);
    try {
      writeExclusive(path, content, mode);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 3) throw e;
    }
  }
}
