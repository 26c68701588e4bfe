/**
 * The backup of the interface attributes ADD changed, read by DEL to put them back: the reference's file, byte for
 * byte (`<dataDir>/<containerID>_<ifname>.json`, Go's `json.MarshalIndent(configToRestore, "", " ")`, mode 0600), so
 * a node can switch between the reference and cni-ts with pods running and DEL still restores.
 *
 * Unlike the reference, the file appears atomically: ADD opens a temporary file before the pod is touched (a data
 * directory that cannot take it fails the ADD with nothing changed), fills it once the change succeeded, and renames
 * it into place; a failed ADD leaves no file.
 *
 * @example
 *   formatBackup({ mac: "0a:58:0a:01:00:05", mtu: 1500 }) // '{\n "mac": "0a:58:0a:01:00:05",\n "mtu": 1500\n}'
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, decodeGo, goStruct } from "../../lib/gojson.js";
import { TXQLEN_MAX, parseMac } from "./config.js";

/** What DEL restores; a key is present only for an attribute ADD changed (Go's `omitempty`). */
export interface Backup {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
}

/** The reference's `configToRestore`, for Go's key rule when a file is read back. */
const BACKUP_SHAPE = goStruct({ mac: GO_ANY, promisc: GO_ANY, mtu: GO_ANY, allmulti: GO_ANY, txQLen: GO_ANY });

/** `<dataDir>/<containerID>_<ifname>.json`; both names were validated by skel (no `/`, no `..`). */
export function backupPath(dataDir: string, containerID: string, ifname: string): string {
  return join(dataDir, `${containerID}_${ifname}.json`);
}

/** The file's text, as Go writes it: fields in struct order, one-space indent, empty ones left out. */
export function formatBackup(b: Backup): string {
  const out: Backup = {};
  if (b.mac) out.mac = b.mac;
  if (b.promisc !== undefined) out.promisc = b.promisc;
  if (b.mtu) out.mtu = b.mtu;
  if (b.allmulti !== undefined) out.allmulti = b.allmulti;
  if (b.txQLen !== undefined) out.txQLen = b.txQLen;
  return JSON.stringify(out, null, 1);
}

/**
 * Read a backup's text. Every value is checked, because DEL hands them to `ip link set`: an unreadable or
 * malformed file yields undefined (the reference ignores such a file too).
 */
export function parseBackup(text: string): Backup | undefined {
  let raw: unknown;
  try {
    raw = decodeGo(JSON.parse(text), BACKUP_SHAPE);
  } catch {
    return undefined;
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  const out: Backup = {};
  const int = (v: unknown, max: number) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
  try {
    if (typeof o.mac === "string" && o.mac !== "") out.mac = parseMac(o.mac);
    else if (o.mac !== undefined && o.mac !== null && o.mac !== "") return undefined;
  } catch {
    return undefined;
  }
  for (const k of ["promisc", "allmulti"] as const) {
    if (typeof o[k] === "boolean") out[k] = o[k] as boolean;
    else if (o[k] !== undefined && o[k] !== null) return undefined;
  }
  if (int(o.mtu, 0x7fff_ffff)) {
    if (o.mtu !== 0) out.mtu = o.mtu as number;
  } else if (o.mtu !== undefined && o.mtu !== null) return undefined;
  if (int(o.txQLen, TXQLEN_MAX)) out.txQLen = o.txQLen as number;
  else if (o.txQLen !== undefined && o.txQLen !== null) return undefined;
  return out;
}

/** A backup being written: opened before the pod changes, committed after. */
export class PendingBackup {
  private fd: number | undefined;
  private readonly tmp: string;

  /** Create the data directory and the temporary file; code 5 when the node cannot hold the backup. */
  constructor(
    private readonly path: string,
    dataDir: string,
  ) {
    this.tmp = `${path}.${process.pid}.tmp`;
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      this.fd = openSync(this.tmp, "wx", 0o600);
    } catch (e) {
      throw new CniError(
        ErrorCode.IOFailure,
        `failed to create backup file in ${dataDir}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      );
    }
  }

  /** Write the attributes and move the file into place. */
  commit(b: Backup): void {
    try {
      writeSync(this.fd!, formatBackup(b));
      closeSync(this.fd!);
      this.fd = undefined;
      renameSync(this.tmp, this.path);
    } catch (e) {
      this.abandon();
      throw new CniError(ErrorCode.IOFailure, `failed to save ${this.path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }

  /** Drop the temporary file (ADD failed: nothing to restore). */
  abandon(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    try {
      unlinkSync(this.tmp);
    } catch {
      // already gone
    }
  }
}

/** The backup of an attachment: undefined when there is none (nothing to restore) or it cannot be used. */
export function readBackup(path: string): Backup | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  return parseBackup(text);
}

/** Remove a backup once restored (or once its namespace is gone); absent is fine. */
export function removeBackup(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new CniError(ErrorCode.IOFailure, `failed to remove ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}
