/**
 * One host-local ADD at a time per attachment: `<dataDir>/.cni-ts/<net>/claims/<key>`, a file only the ADD that
 * link()ed it holds, from before it reads what the attachment holds until it has written what it reserved.
 *
 * Why: the spec forbids concurrent calls for one attachment, but a runtime that retries after a timeout sends them
 * anyway. Without the claim, two such ADDs both see the attachment empty, both reserve an address, and the loser's
 * rollback then releases the winner's. With it, a second ADD that finds the attachment claimed by a live ADD is
 * refused (102) before it reserves anything, and once the first has finished, it finds the attachment's address
 * and is refused as a duplicate (102), as it is today.
 *
 * A claim names its holder (pid and that process's start time from /proc, so a reused pid is not mistaken for it).
 * A claim whose holder is gone (kill -9 between claim and release) or that is older than CLAIM_MAX_AGE_MS is stale:
 * it is removed under the network's lock, where every remover re-reads it first, so that a stale claim is never
 * removed by one process after another has already replaced it with a live one. Taking the lock costs a process
 * start, so it is paid only in that rare case, never on a normal ADD.
 *
 * @example
 *   const claim = await claimAttachment(file, tmpDir, (fn) => store.locked(fn), "ctr1/eth0");
 *   try { ... } finally { releaseClaim(file, claim); }
 */
import { linkSync, rmSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { randomBytes } from "../../lib/hash.js";
import { log } from "../../lib/log.js";
import { createExclusive, readRegular } from "./files.js";

/** Who holds a claim. */
export interface ClaimHolder {
  /** Unique to the claiming ADD. */
  token: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid, names one process for the boot's life. */
  start: string;
  /** When the claim was made, ms since the epoch. */
  time: number;
}

/** A host-local ADD holds its claim for milliseconds; one this old is a hung process's, and no longer protects anything. */
export const CLAIM_MAX_AGE_MS = 600_000;

/** The start time of process `pid`, or undefined when there is no such process (in this pid namespace). */
export function processStart(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const text = readRegular(`/proc/${pid}/stat`).text;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return fields[19];
  } catch {
    return undefined;
  }
}

let ownStart: string | undefined;
function self(): ClaimHolder {
  ownStart ??= processStart(process.pid) ?? "unknown";
  return { token: randomBytes(16).toString("hex"), pid: process.pid, start: ownStart, time: Date.now() };
}

/** The claim at `file`: a holder, "gone" when there is none, or "garbage" (unreadable, not a regular file, not ours). */
export function readClaim(file: string): ClaimHolder | "gone" | "garbage" {
  try {
    const h = JSON.parse(readRegular(file).text) as Partial<ClaimHolder>;
    if (
      typeof h.token !== "string" ||
      typeof h.pid !== "number" ||
      typeof h.start !== "string" ||
      typeof h.time !== "number"
    )
      return "garbage";
    return h as ClaimHolder;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "garbage";
  }
}

/** A claim protects its attachment while its holder process lives and it is younger than CLAIM_MAX_AGE_MS. */
export function isLive(
  h: ClaimHolder,
  now = Date.now(),
  startOf: (pid: number) => string | undefined = processStart,
): boolean {
  const age = now - h.time;
  return age < CLAIM_MAX_AGE_MS && startOf(h.pid) === h.start;
}

/**
 * Take the claim at `file` for this process. `locked` runs a function under the network's lock (used only to remove
 * a stale claim). `what` names the attachment in messages.
 *
 * @throws CniError 102 when a live ADD of the attachment holds it; 11 when it stays contended; 5 on an I/O failure.
 */
export async function claimAttachment(
  file: string,
  tmpDir: string,
  locked: <T>(fn: () => Promise<T>) => Promise<T>,
  what: string,
): Promise<ClaimHolder> {
  const me = self();
  for (let attempt = 0; attempt < 4; attempt++) {
    const tmp = createExclusive(tmpDir, JSON.stringify(me));
    try {
      linkSync(tmp, file);
      return me;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST")
        throw new CniError(
          ErrorCode.IOFailure,
          `cannot claim ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        );
    } finally {
      rmSync(tmp, { force: true });
    }
    const cur = readClaim(file);
    if (cur === "gone") continue; // released between our link and our read
    if (cur !== "garbage" && isLive(cur)) {
      throw new CniError(
        ErrorCode.AlreadyInUse,
        `an ADD of ${what} is already in progress (pid ${cur.pid})`,
        "concurrent calls for one attachment are not allowed; once it has finished, run DEL before ADD again",
      );
    }
    await locked(async () => removeIfStale(file));
  }
  throw new CniError(
    ErrorCode.TryAgainLater,
    `could not claim ${what}: its claim changed hands too often`,
    "retry later",
  );
}

/** Remove the claim at `file` if it is stale now. Call with the network's lock held (see the module comment). */
export function removeIfStale(file: string, now = Date.now()): boolean {
  const cur = readClaim(file);
  if (cur === "gone" || (cur !== "garbage" && isLive(cur, now))) return false;
  log.warn(`host-local: removing stale claim ${file}${cur === "garbage" ? " (unreadable)" : ` of pid ${cur.pid}`}`);
  try {
    rmSync(file, { force: true });
  } catch (e) {
    // A directory planted in its place: refusing is all that is safe (never a recursive removal as root).
    throw new CniError(
      ErrorCode.IOFailure,
      `cannot remove stale claim ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      "remove it by hand",
    );
  }
  return true;
}

/**
 * Give up a claim this process holds. Only its holder removes a live claim, so what is at `file` is ours; the token
 * check covers the one exception (a holder taken for dead, e.g. from another pid namespace).
 */
export function releaseClaim(file: string, me: ClaimHolder): void {
  const cur = readClaim(file);
  if (cur !== "gone" && cur !== "garbage" && cur.token === me.token) rmSync(file, { force: true });
}
