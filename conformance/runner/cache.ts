/**
 * libcni's result cache (`<cacheDir>/results/<network>-<containerID>-<ifname>`, format "cniCacheV1"): written
 * after a successful ADD, read for CHECK and DEL, listed for GC. Same file, same JSON, so a runtime built on libcni
 * and this runner can read each other's caches.
 *
 * @example
 *   writeCache("/var/lib/cni", { containerId: "c1", ifName: "eth0", networkName: "net", config, result });
 *   const hit = readCache("/var/lib/cni", "net", "c1", "eth0"); // { entry, legacy: false } | undefined
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isObject, sortKeysDeep } from "./json.js";

/** libcni's default cache directory. */
export const DEFAULT_CACHE_DIR = "/var/lib/cni";

/** The `kind` of the current format. */
export const CACHE_KIND = "cniCacheV1";

/** One cache file's content (Go `cachedInfo`); `config` is decoded from its base64. */
export interface CacheEntry {
  containerId: string;
  ifName: string;
  networkName: string;
  /** The list bytes the ADD ran with. */
  config: Buffer;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

/** The cache file of one attachment. */
export function cachePath(cacheDir: string, network: string, containerID: string, ifname: string): string {
  return join(cacheDir, "results", `${network}-${containerID}-${ifname}`);
}

/** The file's JSON, in Go's field order with its `omitempty` rules. */
export function encodeCache(e: CacheEntry): string {
  const out: Record<string, unknown> = {
    kind: CACHE_KIND,
    containerId: e.containerId,
    config: e.config.toString("base64"),
    ifName: e.ifName,
    networkName: e.networkName,
  };
  if (e.netns) out.netns = e.netns;
  if (e.cniArgs?.length) out.cniArgs = e.cniArgs;
  if (e.capabilityArgs && Object.keys(e.capabilityArgs).length > 0) out.capabilityArgs = sortKeysDeep(e.capabilityArgs);
  if (e.result && Object.keys(e.result).length > 0) out.result = sortKeysDeep(e.result);
  return JSON.stringify(out);
}

/**
 * Write the entry: directory 0700, file 0600 (results can name addresses and namespaces). Written to a dot-file
 * and renamed, so a crash cannot leave a torn cache that would cost the next DEL its prevResult; listCache skips
 * dot-files, so an orphaned one is never taken for an attachment.
 */
export function writeCache(cacheDir: string, e: CacheEntry): string {
  const file = cachePath(cacheDir, e.networkName, e.containerId, e.ifName);
  const dir = join(cacheDir, "results");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.tmp-${process.pid}-${e.networkName}-${e.containerId}-${e.ifName}`);
  writeFileSync(tmp, encodeCache(e), { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** Remove the entry; an absent one is fine (DEL may repeat). */
export function deleteCache(cacheDir: string, network: string, containerID: string, ifname: string): void {
  rmSync(cachePath(cacheDir, network, containerID, ifname), { force: true });
}

function asPairs(v: unknown): Array<[string, string]> | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter(
    (p): p is [string, string] =>
      Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && typeof p[1] === "string",
  );
}

/** A cniCacheV1 document as an entry, or undefined when the JSON is not one. */
export function decodeCache(text: string): CacheEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(raw) || raw.kind !== CACHE_KIND) return undefined;
  const str = (k: string) => (typeof raw[k] === "string" ? (raw[k] as string) : "");
  const e: CacheEntry = {
    containerId: str("containerId"),
    ifName: str("ifName"),
    networkName: str("networkName"),
    config: Buffer.from(str("config"), "base64"),
  };
  if (str("netns")) e.netns = str("netns");
  const pairs = asPairs(raw.cniArgs);
  if (pairs?.length) e.cniArgs = pairs;
  if (isObject(raw.capabilityArgs)) e.capabilityArgs = raw.capabilityArgs;
  if (isObject(raw.result)) e.result = raw.result;
  return e;
}

/** What a cache file held: a v1 entry, or (legacy) a bare result as raw text for the caller to decode. */
export type CacheHit = { legacy: false; entry: CacheEntry } | { legacy: true; text: string };

/** Read one attachment's cache; undefined when there is no file (libcni ignores read errors the same way). */
export function readCache(
  cacheDir: string,
  network: string,
  containerID: string,
  ifname: string,
): CacheHit | undefined {
  let text: string;
  try {
    text = readFileSync(cachePath(cacheDir, network, containerID, ifname), "utf8");
  } catch {
    return undefined;
  }
  const entry = decodeCache(text);
  return entry ? { legacy: false, entry } : { legacy: true, text };
}

/**
 * libcni `GetCachedAttachments`: every readable v1 entry in filename order, optionally only one network's,
 * skipping entries without ifName or networkName. A missing directory is no attachments.
 */
export function listCache(cacheDir: string, network?: string): CacheEntry[] {
  const dir = join(cacheDir, "results");
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  const out: CacheEntry[] = [];
  for (const name of names) {
    if (name.startsWith(".")) continue; // our in-flight (or crash-orphaned) temporary files
    let text: string;
    try {
      text = readFileSync(join(dir, name), "utf8");
    } catch {
      continue;
    }
    const e = decodeCache(text);
    if (!e?.ifName || !e.networkName) continue;
    if (network !== undefined && e.networkName !== network) continue;
    out.push(e);
  }
  return out;
}
