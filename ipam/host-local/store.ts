/**
 * host-local's reservations on disk, in the reference's format, with O(1) ADD and DEL and no lock on either.
 *
 * Layout shared with the reference Go plugin (a node can switch implementations and keep every reservation):
 *   <dataDir>/<net>/<ip>                  "containerID\r\nifname" (legacy: "containerID"), mode 0600
 *   <dataDir>/<net>/last_reserved_ip.<i>  the last address reserved in range set i
 *   <dataDir>/<net>/lock                  flock(2)ed by the reference around its changes, and by our GC
 * Ours alone (the reference never reads outside <dataDir>/<net>, and no network can be named ".cni-ts"):
 *   <dataDir>/.cni-ts/<net>/attachments/<id@ifname>  {id, ifname, ips, state, time} (a sha256 for unusual names)
 *   <dataDir>/.cni-ts/<net>/claims/<id@ifname>       held by the one ADD of that attachment running (claim.ts)
 *   <dataDir>/.cni-ts/<net>/tmp/          files written here first, then link()ed or rename()d into place
 *
 * Every file is created and read through files.ts: created exclusively, never through a link, under a random name,
 * then linked or renamed into place; read only once an fstat of the open descriptor shows a regular file. A link or
 * special file (FIFO, socket, device, directory) planted at a name we use is never written through and never
 * blocks: at an address's name it makes that address unavailable (it is never handed out, never removed: it is not
 * ours to judge); at last_reserved_ip.<i> it counts as "no last address" and is replaced by the next reservation; in
 * our own .cni-ts tree it counts as absent and is replaced by the next write.
 *
 * Why no lock on ADD and DEL: a reservation is created by link(2) of a complete file, which fails with EEXIST when
 * the address is taken, so two ADDs (ours or the reference's O_EXCL create) can never get one address; and the spec
 * forbids parallel operations on one attachment, which is all an index entry describes. The node-wide lock of the
 * reference (plugins#561: thousands of processes queued on it) is kept only for GC.
 *
 * The attachment index is written intent-first: state "adding" before the first reservation, "added" with the
 * addresses after the last, "released" (a tombstone) after DEL. So a kill at any point leaves either an entry that
 * lists the reservation, or an "adding" entry that tells DEL to look for it. DEL scans the directory only for an
 * attachment whose ADD was interrupted. An entry file's mtime is when the attachment's current life began: its ADD's
 * start ("adding", kept through "added") or its DEL ("released"). GC reads it (an ADD that began less than 60 s ago
 * is never collected: the runtime's ADD goes on after ours), so ageing the file ages the attachment.
 *
 * Reservations the reference plugin made before the node switched are indexed once, the first time cni-ts uses the
 * network (importExisting). Running both implementations on one network at the same time is not supported: what the
 * reference does behind the index is seen by DEL only through prevResult, and reclaimed by GC.
 */
import { hashHex } from "../../lib/hash.js";
import {
  type Stats,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { join } from "node:path";
import { formatIP, parseIP } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { DEFAULT_LOCK_WAIT_MS, withFileLock } from "../../lib/lock.js";
import { log } from "../../lib/log.js";
import type { ReservationStore } from "./allocator.js";
import { type ClaimHolder, claimAttachment, releaseClaim, removeIfStale } from "./claim.js";
import { NotRegularFileError, createExclusive, fileKind, readRegular, unpredictableName } from "./files.js";

/** One reservation file as found on disk. `ifname` is undefined for legacy files holding only the ID. */
export interface Reservation {
  ip: string;
  id: string;
  ifname: string | undefined;
  /** Modification time of the file, ms since the epoch. */
  mtimeMs: number;
}

export type EntryState = "adding" | "added" | "released";

/** An index entry as it is on disk right now, with its file's mtime (see the file header). */
export interface EntryNow {
  entry: IndexEntry;
  /** When the attachment's ADD began (adding, added) or its DEL ran (released), ms since the epoch. */
  sinceMs: number;
}

export interface IndexEntry {
  id: string;
  ifname: string;
  ips: string[];
  state: EntryState;
  /** When the state was last written, ms since the epoch. */
  time: number;
  /**
   * Made by importExisting from the reference's files: possibly partial (the reference reserves a dual-stack
   * attachment in two locked steps, and the import may fall between them), so never conclusive for DEL.
   */
  imported?: boolean;
  /**
   * The ADD that wrote it (a random token, or the one its caller passed in CNI_TS_IPAM_OWNER): a rollback DEL that
   * names its token releases what this entry lists only while the entry is still that ADD's (releaseOwned).
   */
  owner?: string;
}

const LAST_RESERVED = "last_reserved_ip.";
/** Marker: this network's existing reservations were indexed (see importExisting). */
const IMPORTED = "imported";
/** Marker: its mtime is when this network's old tombstones were last swept (see sweepTombstones). */
const SWEPT = "swept";
/** A tombstone ("released" entry) written longer ago than this is swept; a sweep runs at most this often. */
export const TOMBSTONE_TTL_MS = 3_600_000;
const CRLF = "\r\n";
/** An empty reservation file younger than this may be a reference ADD between its create and its write. */
const EMPTY_FILE_GRACE_MS = 10_000;

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

const SAFE_PART = /^[A-Za-z0-9_.-]*$/;

/**
 * The index file name of an attachment: "<id>@<ifname>" when both are plain names (the runtime's values, validated
 * by skel, never contain "@"), else a hash, which also covers whatever text a reference file held when it was
 * imported. Plain names need no hashing, so ADD and DEL do not load node:crypto.
 */
function attachmentKey(id: string, ifname: string): string {
  const plain = `${id}@${ifname}`;
  if (plain.length <= 200 && id !== "" && SAFE_PART.test(id) && SAFE_PART.test(ifname) && !id.startsWith("."))
    return plain;
  return hashHex("sha256", `${id}${CRLF}${ifname}`);
}

/** The reference's content rule: trimmed, "id\r\nifname", or a bare id for legacy files. */
function parseContent(text: string): { id: string; ifname: string | undefined } | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  const i = t.indexOf(CRLF);
  return i < 0 ? { id: t, ifname: undefined } : { id: t.slice(0, i).trim(), ifname: t.slice(i + 2).trim() };
}

/**
 * A directory we own: created 0755 if missing; a symlink planted in its place is refused, never followed (code 7).
 * `followLink` is for ipam.dataDir itself, which an operator may point elsewhere with a symlink, as with the reference.
 */
function ensureDir(path: string, create: boolean, followLink = false): boolean {
  try {
    const st = followLink ? statSync(path) : lstatSync(path);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `${path} is not a directory (a symlink or a file is in its place)`,
        "remove it, or point ipam.dataDir elsewhere",
      );
    }
    return true;
  } catch (e) {
    if (e instanceof CniError) throw e;
    if (errno(e) !== "ENOENT") throw new CniError(ErrorCode.IOFailure, `cannot use ${path}: ${errno(e) ?? String(e)}`);
    if (!create) return false;
    try {
      mkdirSync(path, { recursive: followLink, mode: 0o755 });
    } catch (m) {
      // Two first ADDs racing to create it: the loser checks what the winner made.
      if (errno(m) !== "EEXIST")
        throw new CniError(ErrorCode.IOFailure, `cannot create ${path}: ${errno(m) ?? String(m)}`);
      return ensureDir(path, false, followLink);
    }
    return true;
  }
}

/** An index entry file and its mtime, read from one open file (a rename over the name cannot mix two versions). */
function readEntryFile(file: string): EntryNow | undefined {
  try {
    const { text, stat } = readRegular(file);
    const entry = JSON.parse(text) as IndexEntry;
    if (typeof entry?.id !== "string" || typeof entry.ifname !== "string" || !Array.isArray(entry.ips))
      return undefined;
    return { entry, sinceMs: stat.mtimeMs };
  } catch {
    // Missing, unreadable, a link or a special file: no entry (the next write renames a regular one over it).
    return undefined;
  }
}

/** The text of a regular file, or undefined when it is missing, unreadable or not a regular file. */
function readText(file: string): string | undefined {
  try {
    return readRegular(file).text;
  } catch {
    return undefined;
  }
}

export class DiskStore implements ReservationStore {
  private readonly meta: string;
  /** The claim this ADD holds on its attachment, from claim() to commit() or abort(). */
  private claimed: { file: string; holder: ClaimHolder } | undefined;
  /** last_reserved_ip.<set> as it was before this ADD first wrote it, and what it wrote last: abort() puts it back. */
  private readonly lastWritten = new Map<number, { before: string | undefined; wrote: string }>();
  /** The entry of the attachment this ADD works for, once begin() wrote its intent. */
  private current: IndexEntry | undefined;
  /** When begin() ran: commit() keeps it as the entry's mtime, so GC sees when the ADD began, not when IPAM ended. */
  private startedMs = 0;
  /** What the index said before begin(): a refused ADD (duplicate) must not erase what the attachment holds. */
  private previous: EntryNow | undefined;

  private constructor(
    readonly dir: string,
    meta: string,
  ) {
    this.meta = meta;
  }

  /**
   * Open the store of network `name`. With `create` false (DEL, CHECK, GC, STATUS) a network that never had a
   * reservation yields undefined and nothing is created.
   */
  static async open(dataDir: string, name: string, create: boolean): Promise<DiskStore | undefined> {
    if (!ensureDir(dataDir, create, true)) return undefined;
    const dir = join(dataDir, name);
    const meta = join(dataDir, ".cni-ts", name);
    const dirs = [
      dir,
      join(dataDir, ".cni-ts"),
      meta,
      join(meta, "attachments"),
      join(meta, "claims"),
      join(meta, "tmp"),
    ];
    // Every one is looked at before any is created, parents first: a symlink planted anywhere refuses the call
    // (code 7) with nothing written, not even an empty <dataDir>/<name>/.
    const present = dirs.map((d) => ensureDir(d, false));
    if (!present[0] && !create) return undefined;
    dirs.forEach((d, i) => {
      if (!present[i]) ensureDir(d, true);
    });
    const store = new DiskStore(dir, meta);
    if (!existsSync(join(meta, IMPORTED))) await store.importExisting();
    return store;
  }

  /**
   * First use of a network directory by cni-ts: index the reservations already there (made by the reference plugin
   * before the node switched), under the reference's lock so none is half-written. Once per network; from then on
   * the index knows every attachment, which is what keeps ADD and DEL O(1).
   */
  private async importExisting(): Promise<void> {
    await this.locked(async () => {
      if (existsSync(join(this.meta, IMPORTED))) return;
      const byAttachment = new Map<string, IndexEntry>();
      for (const r of this.scan()) {
        const key = `${r.id}${CRLF}${r.ifname ?? ""}`;
        const e = byAttachment.get(key) ?? {
          id: r.id,
          ifname: r.ifname ?? "",
          ips: [],
          state: "added" as const,
          time: r.mtimeMs,
          imported: true,
        };
        e.ips.push(r.ip);
        byAttachment.set(key, e);
      }
      for (const e of byAttachment.values()) if (!this.readEntry(e.id, e.ifname)) this.writeEntry(e);
      this.writeAtomic(join(this.meta, SWEPT), "");
      this.writeAtomic(join(this.meta, IMPORTED), `${new Date().toISOString()} ${byAttachment.size} attachments\n`);
    });
  }

  // --- the ADD protocol: begin (intent), reservations, commit or abort ----------------------------------------------

  /**
   * Claim (id, ifname) for this ADD, before begin(): a concurrent ADD of the same attachment is refused with 102
   * (claim.ts). commit() and abort() give the claim up.
   */
  async claim(id: string, ifname: string): Promise<void> {
    const file = join(this.meta, "claims", attachmentKey(id, ifname));
    const holder = await claimAttachment(file, join(this.meta, "tmp"), (fn) => this.locked(fn), `${id}/${ifname}`);
    this.claimed = { file, holder };
  }

  /** Record that (id, ifname) is being added, before any reservation exists. `owner` names this ADD in its entry. */
  begin(id: string, ifname: string, owner?: string): void {
    this.lastWritten.clear();
    try {
      this.previous = this.entryNow(id, ifname);
      const previous = this.previous?.entry;
      this.startedMs = Date.now();
      this.current = {
        id,
        ifname,
        ips: previous?.state === "released" ? [] : (previous?.ips ?? []),
        state: "adding",
        time: this.startedMs,
      };
      if (owner !== undefined) this.current.owner = owner;
      this.writeEntry(this.current, this.startedMs);
    } catch (e) {
      this.current = undefined;
      this.unclaim();
      throw e;
    }
  }

  /** The ADD succeeded: the entry lists exactly `ips`, all reserved by this ADD. */
  commit(ips: readonly string[]): void {
    if (!this.current) return;
    try {
      this.writeEntry({ ...this.current, ips: [...ips], state: "added", time: Date.now() }, this.startedMs);
    } finally {
      this.current = undefined;
      this.lastWritten.clear();
      this.unclaim();
    }
  }

  /**
   * The ADD failed after begin: the allocator released what it took; everything else goes back to what it was, so
   * a refused ADD leaves no trace: the entry as before (none if there was none), last_reserved_ip.* as before.
   */
  abort(): void {
    if (!this.current) return;
    try {
      const previous = this.previous?.entry;
      const file = join(this.meta, "attachments", attachmentKey(this.current.id, this.current.ifname));
      if (!previous) rmSync(file, { force: true });
      else if (previous.state === "released") this.writeEntry(previous, this.previous!.sinceMs);
      else
        this.writeEntry(
          { ...previous, ips: this.verified(previous.ips, this.current.id, this.current.ifname) },
          this.previous!.sinceMs,
        );
      this.restoreLastReserved();
    } finally {
      this.current = undefined;
      this.unclaim();
    }
  }

  private unclaim(): void {
    if (this.claimed) releaseClaim(this.claimed.file, this.claimed.holder);
    this.claimed = undefined;
  }

  /** Put back each last_reserved_ip.<set> this ADD wrote, unless another ADD has written it since. */
  private restoreLastReserved(): void {
    for (const [setIndex, { before, wrote }] of this.lastWritten) {
      const file = join(this.dir, `${LAST_RESERVED}${setIndex}`);
      if (readText(file) !== wrote) continue;
      if (before === undefined) rmSync(file, { force: true });
      else this.writeAtomic(file, before);
    }
    this.lastWritten.clear();
  }

  // --- ReservationStore -------------------------------------------------------------------------------------------

  async reserve(ip: string, id: string, ifname: string, setIndex: number): Promise<boolean> {
    const target = join(this.dir, ip);
    const tmp = this.writeTmp(`${id}${CRLF}${ifname}`);
    try {
      if (!this.linkOrRepair(tmp, target)) return false;
    } finally {
      rmSync(tmp, { force: true });
    }
    const file = join(this.dir, `${LAST_RESERVED}${setIndex}`);
    if (this.current && !this.lastWritten.has(setIndex))
      this.lastWritten.set(setIndex, { before: readText(file), wrote: ip });
    else if (this.current) this.lastWritten.get(setIndex)!.wrote = ip;
    // A rename replaces whatever is at the name (a link, a FIFO) instead of writing through it. It is a hint for the
    // next round robin: a directory in its way costs the hint, never the reservation just made.
    try {
      this.writeAtomic(file, ip);
    } catch (e) {
      log.warn(`host-local: ${(e as Error).message}; the next ADD starts its walk at the range's start`);
    }
    return true;
  }

  async lastReserved(setIndex: number): Promise<string | undefined> {
    // A link or special file there is no last address: the walk starts at the first, as with a missing file.
    const text = readText(join(this.dir, `${LAST_RESERVED}${setIndex}`))?.trim();
    return text === "" ? undefined : text;
  }

  /** Taken: a non-empty file; also anything that is not a regular file (a FIFO, a link...), never ours to hand out. */
  async isReserved(ip: string): Promise<boolean> {
    try {
      const st = lstatSync(join(this.dir, ip));
      return !st.isFile() || st.size > 0;
    } catch {
      return false;
    }
  }

  async findByAttachment(id: string, ifname: string): Promise<string[]> {
    return this.verified(this.readEntry(id, ifname)?.ips ?? [], id, ifname);
  }

  async release(ip: string): Promise<void> {
    rmSync(join(this.dir, ip), { force: true });
  }

  // --- whole-attachment operations (DEL, CHECK) ---------------------------------------------------------------------

  /**
   * The addresses (id, ifname) holds. From the index when it knows the attachment; from `hints` (prevResult) when
   * they check out; otherwise from one scan of the directory. Like the reference, legacy ID-only files count only
   * when the attachment holds no file in the current format.
   */
  held(id: string, ifname: string, hints: readonly string[] = []): string[] {
    return this.lookup(id, ifname, hints).ips;
  }

  /** held(), with the index entry it was decided from. */
  private lookup(id: string, ifname: string, hints: readonly string[]): { ips: string[]; entry?: IndexEntry } {
    const entry = this.readEntry(id, ifname);
    const claimed = entry && entry.state !== "released" ? entry.ips : [];
    const fromHints = this.verified(hints, id, ifname);
    const known = this.verified([...claimed, ...hints], id, ifname);
    // Conclusive: an entry of ours whose ADD finished (or that DEL already released), or a prevResult that agrees
    // with the files (it lists every address the ADD returned).
    const conclusive = (entry !== undefined && !entry.imported && entry.state !== "adding") || fromHints.length > 0;
    if (conclusive) return { ips: known, entry };
    const all = this.scan();
    const exact = all.filter((r) => r.id === id && r.ifname === ifname).map((r) => r.ip);
    const ips = exact.length > 0 ? exact : all.filter((r) => r.id === id && r.ifname === undefined).map((r) => r.ip);
    return { ips, entry };
  }

  /**
   * The rollback of one ADD: release what the entry lists only if the entry is still that ADD's (its `owner` token),
   * and only the addresses whose files still name the attachment. Anything else (another ADD of the attachment
   * owns the entry now, or it was released meanwhile) is left alone: releasing by attachment there could free an
   * address another call handed out.
   */
  releaseOwned(id: string, ifname: string, owner: string): string[] {
    const now = this.entryNow(id, ifname);
    if (!now || now.entry.owner !== owner || now.entry.state === "released") return [];
    const ips = this.verified(now.entry.ips, id, ifname);
    for (const ip of ips) rmSync(join(this.dir, ip), { force: true });
    this.writeTombstone(id, ifname);
    return ips;
  }

  /**
   * Release everything (id, ifname) holds and leave a tombstone, so a repeated DEL is O(1). A repeated DEL that
   * finds the tombstone and nothing held (containerd's RemovePodSandbox after StopPodSandbox) writes nothing.
   */
  releaseAttachment(id: string, ifname: string, hints: readonly string[] = []): string[] {
    const { ips, entry } = this.lookup(id, ifname, hints);
    for (const ip of ips) rmSync(join(this.dir, ip), { force: true });
    if (ips.length > 0 || entry?.state !== "released") this.writeTombstone(id, ifname);
    return ips;
  }

  /**
   * A tombstone only spares a repeated DEL a directory scan: DEL must not fail over it (a directory planted at the
   * entry's name), since runtimes retry a failed DEL forever.
   */
  private writeTombstone(id: string, ifname: string): void {
    try {
      this.writeEntry({ id, ifname, ips: [], state: "released", time: Date.now() });
    } catch (e) {
      log.warn(`host-local: ${(e as Error).message}; no tombstone left for ${id}/${ifname}`);
    }
  }

  // --- GC -------------------------------------------------------------------------------------------------------------

  /** Run `fn` holding the network's lock (the reference's flock on <net>/lock): GC must not meet a reference ADD half-way. */
  async locked<T>(fn: () => Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
    const lockFile = join(this.dir, "lock");
    // O_NOFOLLOW: a symlink planted at <net>/lock must not make us create its target as root.
    // O_NONBLOCK: a FIFO planted there must not block the open (a writer's open waits for a reader); the fstat
    // then refuses it, as anything else that is not a regular file.
    let fd: number;
    try {
      fd = openSync(
        lockFile,
        constants.O_WRONLY |
          constants.O_CREAT |
          constants.O_APPEND |
          constants.O_NOFOLLOW |
          constants.O_NONBLOCK |
          constants.O_NOCTTY,
        0o600,
      );
    } catch (e) {
      if (errno(e) === "ELOOP")
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `${lockFile} is a symlink`,
          "remove it; the lock file must be a regular file",
        );
      if (errno(e) === "ENXIO")
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `${lockFile} is a FIFO`,
          "remove it; the lock file must be a regular file",
        );
      throw new CniError(ErrorCode.IOFailure, `cannot open ${lockFile}: ${errno(e) ?? String(e)}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile())
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `${lockFile} is a ${fileKind(st)}`,
          "remove it; the lock file must be a regular file",
        );
      // The helper locks this descriptor, not the name: nothing swapped in at the name after our check is touched.
      return await withFileLock(lockFile, fd, waitMs, fn);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Every reservation of the network: one pass over the directory. Files not named by an address (lock,
   * last_reserved_ip.*, anything else) are never touched. Empty files older than a few seconds are leftovers of an
   * interrupted reference ADD (plugins#498): removed here, never counted as used.
   */
  scan(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of readdirSync(this.dir)) {
      const ip = parseIP(name);
      if (!ip || formatIP(ip) !== name) continue;
      const file = join(this.dir, name);
      let text: string;
      let mtimeMs: number;
      try {
        const r = readRegular(file);
        text = r.text;
        mtimeMs = r.stat.mtimeMs;
      } catch (e) {
        // A link or special file named like an address is nobody's reservation we can read: left alone, never
        // released (it keeps the address from being handed out, see isReserved).
        if (e instanceof NotRegularFileError) log.warn(`host-local: ignoring ${e.message} (not a reservation)`);
        continue;
      }
      const owner = parseContent(text);
      if (owner) out.push({ ip: name, ...owner, mtimeMs });
      else if (Date.now() - mtimeMs > EMPTY_FILE_GRACE_MS) {
        log.warn(`host-local: removing empty reservation file ${file} (left by an interrupted ADD)`);
        rmSync(file, { force: true });
      }
    }
    return out;
  }

  /** Every index entry (GC's view of who holds what and since when). */
  entries(): IndexEntry[] {
    const out: IndexEntry[] = [];
    for (const f of readdirSync(join(this.meta, "attachments"))) {
      const file = join(this.meta, "attachments", f);
      let text: string;
      try {
        text = readRegular(file).text;
      } catch {
        continue; // gone, or a link or special file: no entry (the attachment's next write replaces it)
      }
      try {
        out.push(JSON.parse(text) as IndexEntry);
      } catch {
        rmSync(file, { force: true });
      }
    }
    return out;
  }

  /** The entry of (id, ifname) as it is on disk now (GC re-reads it right before it releases anything). */
  entryNow(id: string, ifname: string): EntryNow | undefined {
    const now = readEntryFile(join(this.meta, "attachments", attachmentKey(id, ifname)));
    return now && now.entry.id === id && now.entry.ifname === ifname ? now : undefined;
  }

  /** The reservation of `ip` as it is on disk now: owner and age, read from one open file. */
  reservationNow(ip: string): Reservation | undefined {
    if (!parseIP(ip)) return undefined;
    try {
      const { text, stat } = readRegular(join(this.dir, ip));
      const owner = parseContent(text);
      return owner && { ip, ...owner, mtimeMs: stat.mtimeMs };
    } catch {
      return undefined;
    }
  }

  /**
   * Remove the entry of (id, ifname) if `stale` holds for what it is when removed. It is renamed aside first and
   * judged there, so an ADD or DEL of the attachment that rewrites it (a rename over the name) is never lost: a
   * rewrite that came before is seen and put back, one that comes after replaces nothing of ours.
   */
  forgetIf(id: string, ifname: string, stale: (e: EntryNow) => boolean): boolean {
    return this.dropEntryIf(join(this.meta, "attachments", attachmentKey(id, ifname)), stale);
  }

  /**
   * Keep the index bounded without GC (which only spec 1.1.0 runtimes send): at most once per TOMBSTONE_TTL_MS per
   * network, drop the tombstones written longer ago than that, and temp files of killed writers as old. Every other
   * call costs one stat of the marker, so ADD and DEL stay O(1) but for one O(entries) pass an hour. A tombstone only
   * saves a repeated DEL a directory scan, so losing an old one costs nothing. Never fails its caller.
   */
  sweepTombstones(): number {
    const marker = join(this.meta, SWEPT);
    const now = Date.now();
    try {
      const age = now - lstatSync(marker).mtimeMs;
      // A marker from the future (the clock went back) does not postpone the sweep.
      if (age >= 0 && age < TOMBSTONE_TTL_MS) return 0;
    } catch (e) {
      // Missing: a network indexed before sweeps existed; it may have a lot to sweep.
      if (errno(e) !== "ENOENT") return 0;
    }
    const old = (e: EntryNow) => e.entry.state === "released" && Date.now() - e.sinceMs >= TOMBSTONE_TTL_MS;
    let swept = 0;
    try {
      // Claimed first, so that the ADDs and DELs running meanwhile do not all sweep too.
      this.writeAtomic(marker, "");
      const dir = join(this.meta, "attachments");
      for (const f of readdirSync(dir)) {
        const e = readEntryFile(join(dir, f));
        // Judged again once renamed aside: the attachment's ADD may rewrite the entry in between.
        if (e && old(e) && this.dropEntryIf(join(dir, f), old)) swept++;
      }
      this.sweepTmp(TOMBSTONE_TTL_MS);
    } catch (e) {
      log.warn(`host-local: sweeping old tombstones in ${this.meta}: ${errno(e) ?? String(e)}`);
    }
    if (swept > 0)
      log.debug(`host-local: swept ${swept} tombstones older than ${TOMBSTONE_TTL_MS / 1000} s from ${this.meta}`);
    return swept;
  }

  /** Claims of ADDs that died holding them (claim.ts). Call with the network's lock held, as GC does. */
  sweepClaims(): void {
    const dir = join(this.meta, "claims");
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // a network indexed before claims existed
    }
    for (const f of names) {
      try {
        removeIfStale(join(dir, f));
      } catch (e) {
        log.warn(`host-local: ${(e as Error).message}`);
      }
    }
  }

  /** Temp files of processes killed between write and link/rename. */
  sweepTmp(olderThanMs: number): void {
    const dir = join(this.meta, "tmp");
    for (const f of readdirSync(dir)) {
      try {
        if (Date.now() - lstatSync(join(dir, f)).mtimeMs > olderThanMs) rmSync(join(dir, f), { force: true });
      } catch {
        // gone already
      }
    }
  }

  // --- internals ----------------------------------------------------------------------------------------------------

  /** Keep only the addresses whose file still names this attachment (an index entry is a claim, the file is the truth). */
  private verified(ips: readonly string[], id: string, ifname: string): string[] {
    const out: string[] = [];
    for (const ip of new Set(ips)) {
      const owner = this.owner(ip);
      if (owner && owner.id === id && (owner.ifname === ifname || owner.ifname === undefined)) out.push(ip);
    }
    return out;
  }

  private owner(ip: string): { id: string; ifname: string | undefined } | undefined {
    if (!parseIP(ip)) return undefined;
    const text = readText(join(this.dir, ip));
    return text === undefined ? undefined : parseContent(text);
  }

  private readEntry(id: string, ifname: string): IndexEntry | undefined {
    return this.entryNow(id, ifname)?.entry;
  }

  /** `sinceMs` becomes the file's mtime (see the file header); by default, now. */
  private writeEntry(e: IndexEntry, sinceMs?: number): void {
    this.writeAtomic(join(this.meta, "attachments", attachmentKey(e.id, e.ifname)), JSON.stringify(e), sinceMs);
  }

  private dropEntryIf(file: string, stale: (e: EntryNow) => boolean): boolean {
    const aside = this.tmpName();
    try {
      renameSync(file, aside);
    } catch {
      return false; // gone already
    }
    const now = readEntryFile(aside);
    if (now === undefined || stale(now)) {
      rmSync(aside, { force: true });
      return true;
    }
    try {
      linkSync(aside, file);
    } catch (e) {
      // EEXIST: the attachment's ADD or DEL wrote a newer entry meanwhile, which wins.
      if (errno(e) !== "EEXIST") log.warn(`host-local: cannot put back index entry ${file}: ${errno(e) ?? String(e)}`);
    }
    rmSync(aside, { force: true });
    return false;
  }

  /** A name in tmp/ nobody can have planted anything at beforehand (see files.ts). */
  private tmpName(): string {
    return unpredictableName(join(this.meta, "tmp"));
  }

  private writeTmp(content: string): string {
    try {
      return createExclusive(join(this.meta, "tmp"), content);
    } catch (e) {
      throw new CniError(ErrorCode.IOFailure, `cannot write in ${join(this.meta, "tmp")}: ${errno(e) ?? String(e)}`);
    }
  }

  /** Write then rename: readers see the old content or the new, never a torn one. */
  private writeAtomic(file: string, content: string, mtimeMs?: number): void {
    const tmp = this.writeTmp(content);
    try {
      if (mtimeMs !== undefined) utimesSync(tmp, new Date(), new Date(mtimeMs));
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new CniError(ErrorCode.IOFailure, `cannot write ${file}: ${errno(e) ?? String(e)}`);
    }
  }

  /**
   * link(2) is the atomic "create with this content unless it exists". An empty file in the way is replaced only when
   * it is old enough to be a leftover rather than a reference ADD between its create and its write.
   */
  private linkOrRepair(tmp: string, target: string): boolean {
    try {
      linkSync(tmp, target);
      return true;
    } catch (e) {
      if (errno(e) !== "EEXIST")
        throw new CniError(ErrorCode.IOFailure, `cannot create ${target}: ${errno(e) ?? String(e)}`);
    }
    let st: Stats;
    try {
      st = lstatSync(target);
    } catch {
      return this.linkOrRepair(tmp, target);
    }
    // Only an empty regular file is ever repaired: a link or special file is not ours to remove (see isReserved).
    if (!st.isFile() || st.size > 0 || Date.now() - st.mtimeMs <= EMPTY_FILE_GRACE_MS) return false;
    log.warn(`host-local: replacing empty reservation file ${target} (left by an interrupted ADD)`);
    rmSync(target, { force: true });
    return this.linkOrRepair(tmp, target);
  }
}
