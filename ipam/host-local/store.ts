/**
 * host-local's reservations on disk, in the reference's format, without the reference's O(N) scans.
 *
 * Layout shared with the reference Go plugin (a node can switch implementations and keep every reservation):
 *   <dataDir>/<net>/<ip>                  "containerID\r\nifname" (legacy: "containerID"), mode 0600
 *   <dataDir>/<net>/last_reserved_ip.<i>  the last address reserved in range set i
 *   <dataDir>/<net>/lock                  flock(2)ed by both implementations around every change
 * Ours alone (the reference never reads outside <dataDir>/<net>, and no network can be named ".cni-ts"):
 *   <dataDir>/.cni-ts/<net>/attachments/<sha256(id\r\nifname)>   {"id","ifname","ips"}: who holds what
 *   <dataDir>/.cni-ts/<net>/synced       the network directory's identity and mtime after our last change
 *   <dataDir>/.cni-ts/<net>/tmp/         files written here first, then link()ed into place
 *
 * A reservation appears with its content in one step (link of a complete file; EEXIST means taken), so a kill
 * at any point leaves either no file or a whole one. The attachment index makes ADD's duplicate check and DEL's
 * lookup O(1). It is trusted only while the network directory is exactly as we left it (`synced`): a change by
 * anyone else (the reference plugin, a crash of ours between reservation and index update, a person) changes the
 * directory's mtime, and the next locked operation rebuilds the index with one scan. Empty reservation files
 * (reference leftovers, plugins#498) are removed during that scan: under the lock nobody is half-way writing one.
 */
import { createHash } from "node:crypto";
import { closeSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { DEFAULT_LOCK_WAIT_MS, withFileLock } from "../../lib/lock.js";
import { log } from "../../lib/log.js";
import { parseIP, formatIP } from "../../lib/cidr.js";
import type { ReservationStore } from "./allocator.js";

/** One reservation file as found on disk. `ifname` is undefined for legacy files holding only the ID. */
export interface Reservation {
  ip: string;
  id: string;
  ifname: string | undefined;
}

interface IndexEntry {
  id: string;
  ifname: string;
  ips: string[];
}

const LAST_RESERVED = "last_reserved_ip.";
const CRLF = "\r\n";

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

function attachmentKey(id: string, ifname: string): string {
  return createHash("sha256").update(`${id}${CRLF}${ifname}`).digest("hex");
}

/** The reference's content rule: trimmed, "id\r\nifname", or a bare id for legacy files. */
function parseContent(text: string): { id: string; ifname: string | undefined } | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  const i = t.indexOf(CRLF);
  return i < 0 ? { id: t, ifname: undefined } : { id: t.slice(0, i).trim(), ifname: t.slice(i + 2).trim() };
}

/** A directory we own: created 0755 if missing; a symlink planted in its place is refused, never followed. */
function ensureDir(path: string, create: boolean): boolean {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `${path} is not a directory (a symlink or a file is in its place)`, "remove it, or point ipam.dataDir elsewhere");
    }
    return true;
  } catch (e) {
    if (e instanceof CniError) throw e;
    if (errno(e) !== "ENOENT") throw new CniError(ErrorCode.IOFailure, `cannot use ${path}: ${errno(e) ?? String(e)}`);
    if (!create) return false;
    mkdirSync(path, { recursive: true, mode: 0o755 });
    return true;
  }
}

export class DiskStore implements ReservationStore {
  private readonly meta: string;
  /** Index changes of this operation, written once at the end of the locked section. */
  private readonly pending = new Map<string, IndexEntry>();
  private tmpCounter = 0;

  private constructor(readonly dir: string, meta: string) {
    this.meta = meta;
  }

  /**
   * Open the store of network `name`. With `create` false (DEL, CHECK, GC, STATUS) a network that never had a
   * reservation yields undefined and nothing is created.
   */
  static open(dataDir: string, name: string, create: boolean): DiskStore | undefined {
    if (!ensureDir(dataDir, create)) return undefined;
    const dir = join(dataDir, name);
    if (!ensureDir(dir, create)) return undefined;
    const meta = join(dataDir, ".cni-ts", name);
    ensureDir(join(dataDir, ".cni-ts"), true);
    ensureDir(meta, true);
    ensureDir(join(meta, "attachments"), true);
    ensureDir(join(meta, "tmp"), true);
    return new DiskStore(dir, meta);
  }

  /** Run `fn` holding the network's lock with a trustworthy index; changes to the index are saved at the end. */
  async locked<T>(fn: () => Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
    const lockFile = join(this.dir, "lock");
    closeSync(openSync(lockFile, "a", 0o600));
    return withFileLock(lockFile, waitMs, async () => {
      if (!this.indexIsCurrent()) this.rebuildIndex(this.scan());
      try {
        return await fn();
      } finally {
        this.flushIndex();
        this.markSynced();
      }
    });
  }

  // --- ReservationStore ---------------------------------------------------------------------------------------

  async reserve(ip: string, id: string, ifname: string, setIndex: number): Promise<boolean> {
    const target = join(this.dir, ip);
    const tmp = this.writeTmp(`${id}${CRLF}${ifname}`);
    try {
      if (!this.linkOrRepair(tmp, target)) return false;
    } finally {
      rmSync(tmp, { force: true });
    }
    this.writeAtomic(join(this.dir, `${LAST_RESERVED}${setIndex}`), ip);
    this.entry(id, ifname).ips.push(ip);
    return true;
  }

  async lastReserved(setIndex: number): Promise<string | undefined> {
    try {
      const text = readFileSync(join(this.dir, `${LAST_RESERVED}${setIndex}`), "utf8").trim();
      return text === "" ? undefined : text;
    } catch {
      return undefined;
    }
  }

  async isReserved(ip: string): Promise<boolean> {
    try {
      return statSync(join(this.dir, ip)).size > 0;
    } catch {
      return false;
    }
  }

  async findByAttachment(id: string, ifname: string): Promise<string[]> {
    return this.held(id, ifname);
  }

  async release(ip: string): Promise<void> {
    rmSync(join(this.dir, ip), { force: true });
    for (const e of this.pending.values()) e.ips = e.ips.filter((x) => x !== ip);
  }

  // --- whole-attachment operations (DEL, CHECK, GC) -------------------------------------------------------------

  /**
   * The addresses (id, ifname) holds, verified against the files themselves. Like the reference, legacy
   * ID-only files count only when the attachment holds no file in the current format.
   */
  held(id: string, ifname: string): string[] {
    const exact = this.entry(id, ifname).ips.filter((ip) => this.owner(ip)?.id === id && this.owner(ip)?.ifname === ifname);
    if (exact.length > 0) return exact;
    return this.entry(id, "").ips.filter((ip) => this.owner(ip)?.id === id && this.owner(ip)?.ifname === undefined);
  }

  /** Release everything (id, ifname) holds; returns the released addresses. */
  releaseAttachment(id: string, ifname: string): string[] {
    const exact = this.entry(id, ifname);
    const fromExact = exact.ips.some((ip) => this.owner(ip)?.id === id && this.owner(ip)?.ifname === ifname);
    const ips = this.held(id, ifname);
    for (const ip of ips) rmSync(join(this.dir, ip), { force: true });
    // The exact entry is now empty either way (what it listed was released or belonged to someone else by now).
    exact.ips = [];
    if (!fromExact) this.entry(id, "").ips = [];
    return ips;
  }

  /** Who owns the reservation of ip (undefined when there is none). */
  owner(ip: string): { id: string; ifname: string | undefined } | undefined {
    try {
      return parseContent(readFileSync(join(this.dir, ip), "utf8"));
    } catch {
      return undefined;
    }
  }

  /**
   * Every reservation of the network: one pass over the directory (GC's and the rebuild's cost, never ADD's).
   * Files that are not named by an address (lock, last_reserved_ip.*, anything else) are never touched.
   * Empty files are leftovers of an interrupted reference ADD: removed here, under the lock.
   */
  scan(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of readdirSync(this.dir)) {
      const ip = parseIP(name);
      if (!ip || formatIP(ip) !== name) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), "utf8");
      } catch {
        continue;
      }
      const owner = parseContent(text);
      if (!owner) {
        log.warn(`host-local: removing empty reservation file ${join(this.dir, name)} (left by an interrupted ADD)`);
        rmSync(join(this.dir, name), { force: true });
        continue;
      }
      out.push({ ip: name, ...owner });
    }
    return out;
  }

  /** Replace the index by what `reservations` says, and forget leftovers of killed processes in tmp/. */
  rebuildIndex(reservations: readonly Reservation[]): void {
    rmSync(join(this.meta, "attachments"), { recursive: true, force: true });
    mkdirSync(join(this.meta, "attachments"), { mode: 0o755 });
    for (const f of readdirSync(join(this.meta, "tmp"))) rmSync(join(this.meta, "tmp", f), { force: true });
    this.pending.clear();
    for (const r of reservations) this.entry(r.id, r.ifname ?? "").ips.push(r.ip);
  }

  // --- internals ------------------------------------------------------------------------------------------------

  /** The index entry of an attachment, loaded once per operation and written back by flushIndex. */
  private entry(id: string, ifname: string): IndexEntry {
    const key = attachmentKey(id, ifname);
    let e = this.pending.get(key);
    if (!e) {
      e = { id, ifname, ips: [] };
      try {
        const saved = JSON.parse(readFileSync(join(this.meta, "attachments", key), "utf8")) as IndexEntry;
        if (saved.id === id && saved.ifname === ifname && Array.isArray(saved.ips)) e.ips = saved.ips.filter((x) => typeof x === "string");
      } catch {
        // no entry yet
      }
      this.pending.set(key, e);
    }
    return e;
  }

  private flushIndex(): void {
    for (const [key, e] of this.pending) {
      const file = join(this.meta, "attachments", key);
      if (e.ips.length === 0) rmSync(file, { force: true });
      else this.writeAtomic(file, JSON.stringify({ id: e.id, ifname: e.ifname, ips: [...new Set(e.ips)] }));
    }
    this.pending.clear();
  }

  private dirStamp(): string {
    const st = statSync(this.dir, { bigint: true });
    return `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  }

  private indexIsCurrent(): boolean {
    try {
      return readFileSync(join(this.meta, "synced"), "utf8") === this.dirStamp();
    } catch {
      return false;
    }
  }

  private markSynced(): void {
    this.writeAtomic(join(this.meta, "synced"), this.dirStamp());
  }

  private writeTmp(content: string): string {
    const tmp = join(this.meta, "tmp", `${process.pid}.${++this.tmpCounter}`);
    writeFileSync(tmp, content, { mode: 0o600, flag: "w" });
    return tmp;
  }

  /** Write then rename: readers see the old content or the new, never a torn one. */
  private writeAtomic(file: string, content: string): void {
    const tmp = this.writeTmp(content);
    try {
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new CniError(ErrorCode.IOFailure, `cannot write ${file}: ${errno(e) ?? String(e)}`);
    }
  }

  /** link(2) is the atomic "create with this content unless it exists". An empty file in the way is a leftover. */
  private linkOrRepair(tmp: string, target: string): boolean {
    try {
      linkSync(tmp, target);
      return true;
    } catch (e) {
      if (errno(e) !== "EEXIST") throw new CniError(ErrorCode.IOFailure, `cannot create ${target}: ${errno(e) ?? String(e)}`);
    }
    let size: number;
    try {
      size = statSync(target).size;
    } catch {
      return this.linkOrRepair(tmp, target);
    }
    if (size > 0) return false;
    log.warn(`host-local: replacing empty reservation file ${target} (left by an interrupted ADD)`);
    unlinkSync(target);
    linkSync(tmp, target);
    return true;
  }
}
