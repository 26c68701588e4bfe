/**
 * Loading network configurations the way the runtimes do: libcni's parsing rules and error wording
 * (libcni/conf.go) and go-cni's choice of the default network in a config directory.
 *
 * @example
 *   const list = loadConfDir("/etc/cni/net.d");            // the lexicographically first .conf/.conflist/.json
 *   const named = loadConfDir("/etc/cni/net.d", "podnet");  // libcni's LoadNetworkConf(dir, name)
 */
import { type Dirent, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { errorText } from "./errors.js";
import { isObject } from "./json.js";
import { normalizeVersion, negotiateVersion } from "./version.js";

/** A conflist as the runner uses it; a single-plugin .conf/.json arrives up-converted to a one-element list. */
export interface NetworkConfigList {
  name: string;
  /** The negotiated list version: what every plugin is sent. */
  cniVersion: string;
  /** The cniVersions array as written, when present. */
  cniVersions?: string[];
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  /** Plugin objects as written (inlined first, then the sibling directory's), before any injection. */
  plugins: Array<Record<string, unknown>>;
  /** The bytes the result cache records (base64) as `config`: the list file, not the aggregated plugins. */
  bytes: Buffer;
  /** The file it came from, when it came from one. */
  source?: string;
}

type Json = Record<string, unknown>;

/** Go's `filepath.Ext`: unlike node's extname, a dot-file such as ".conf" has the extension ".conf". */
function goExt(file: string): string {
  const base = basename(file);
  const i = base.lastIndexOf(".");
  return i < 0 ? "" : base.slice(i);
}

/** libcni `ConfFiles`: regular entries (not directories) with one of the extensions, sorted; a missing dir is empty. */
export function confFiles(dir: string, extensions: readonly string[]): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  return entries
    .filter((e) => !e.isDirectory() && extensions.includes(goExt(e.name)))
    .map((e) => e.name)
    .sort()
    .map((n) => join(dir, n));
}

function parseJson(bytes: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(bytes.toString());
  } catch (e) {
    throw new Error(`error parsing ${what}: ${errorText(e)}`);
  }
}

/**
 * One plugin configuration object (libcni `NetworkPluginConfFromBytes`): an object with a non-empty `type`, and
 * the typed fields Go would refuse to decode checked for type.
 */
export function parsePluginConf(raw: unknown): Json {
  if (!isObject(raw)) throw new Error("error parsing configuration: not a JSON object");
  for (const key of ["type", "name", "cniVersion"]) {
    if (raw[key] !== undefined && raw[key] !== null && typeof raw[key] !== "string") {
      throw new Error(`error parsing configuration: ${key} must be a string`);
    }
  }
  if (!raw.type) throw new Error("error parsing configuration: missing 'type'");
  const caps = raw.capabilities;
  if (
    caps !== undefined &&
    caps !== null &&
    (!isObject(caps) || Object.values(caps).some((v) => typeof v !== "boolean"))
  ) {
    throw new Error("error parsing configuration: capabilities must map names to booleans");
  }
  return raw;
}

function readBool(raw: Json, key: string): boolean {
  const v = raw[key];
  if (v === undefined) return false;
  if (typeof v === "boolean") return v;
  if (typeof v !== "string") throw new Error(`error parsing configuration list: invalid type ${typeof v} for ${key}`);
  const s = v.toLowerCase();
  if (s === "true") return true;
  if (s === "false") return false;
  throw new Error(`error parsing configuration list: invalid value ${JSON.stringify(s)} for ${key}`);
}

/** libcni `NetworkConfFromBytes`: the list alone, without the sibling directory. May have zero plugins. */
function parseList(bytes: Buffer, source?: string): NetworkConfigList {
  const raw = parseJson(bytes, "configuration list");
  if (!isObject(raw)) throw new Error("error parsing configuration list: not a JSON object");
  if (!("name" in raw)) throw new Error("error parsing configuration list: no name");
  if (typeof raw.name !== "string")
    throw new Error(`error parsing configuration list: invalid name type ${typeof raw.name}`);
  let cniVersion = "";
  if ("cniVersion" in raw) {
    if (typeof raw.cniVersion !== "string")
      throw new Error(`error parsing configuration list: invalid cniVersion type ${typeof raw.cniVersion}`);
    cniVersion = raw.cniVersion;
  }
  let cniVersions: string[] | undefined;
  if ("cniVersions" in raw) {
    if (!Array.isArray(raw.cniVersions))
      throw new Error("error parsing configuration list: invalid type for cniVersions");
    cniVersions = raw.cniVersions.map((v: unknown, i: number) => {
      if (typeof v !== "string")
        throw new Error(`error parsing configuration list: invalid type for cniVersions index ${i}`);
      try {
        normalizeVersion(v);
      } catch (e) {
        throw new Error(
          `error parsing configuration list: invalid cniVersions entry ${v} at index ${i}: ${errorText(e)}`,
        );
      }
      return v;
    });
  }
  const list: NetworkConfigList = {
    name: raw.name,
    cniVersion: negotiateVersion(cniVersion, cniVersions),
    disableCheck: readBool(raw, "disableCheck"),
    disableGC: readBool(raw, "disableGC"),
    loadOnlyInlinedPlugins: readBool(raw, "loadOnlyInlinedPlugins"),
    plugins: [],
    bytes,
  };
  if (cniVersions) list.cniVersions = cniVersions;
  if (source !== undefined) list.source = source;
  if (!("plugins" in raw)) {
    // The sibling directory may still supply every plugin; only a list that forbids that is broken here.
    if (list.loadOnlyInlinedPlugins)
      throw new Error("error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key");
    return list;
  }
  if (!Array.isArray(raw.plugins)) throw new Error("error parsing configuration list: invalid 'plugins' type");
  if (raw.plugins.length === 0) throw new Error("error parsing configuration list: no plugins in list");
  list.plugins = raw.plugins.map((p: unknown, i: number) => {
    try {
      return parsePluginConf(p);
    } catch (e) {
      throw new Error(`failed to parse plugin config ${i}: ${errorText(e)}`);
    }
  });
  return list;
}

/**
 * libcni `ConfListFromConf`: a deprecated single-plugin file becomes a one-element list named and versioned by
 * the plugin object. The list bytes are rebuilt (Go marshals a map, hence sorted keys), and those are cached.
 */
function upconvert(bytes: Buffer, source?: string): NetworkConfigList {
  const plugin = parsePluginConf(parseJson(bytes, "configuration"));
  const listJson = { cniVersion: plugin.cniVersion ?? "", name: plugin.name ?? "", plugins: [plugin] };
  return parseList(Buffer.from(JSON.stringify(listJson)), source);
}

function looksLikeList(bytes: Buffer): boolean {
  const raw = parseJson(bytes, "configuration list");
  return !isObject(raw) || "plugins" in raw || !("type" in raw);
}

/**
 * Parse configuration bytes into a list, without touching the filesystem (no sibling-directory plugins).
 * `source` decides the format by extension as go-cni does (.conflist is a list, anything else a single plugin);
 * without it, an object with `plugins` (or without `type`) is a list. Errors are plain Errors in libcni's words;
 * a list with no plugin at all is "no plugin configs found".
 */
export function loadConfList(bytes: Buffer, source?: string): NetworkConfigList {
  const isList = source !== undefined ? goExt(source) === ".conflist" : looksLikeList(bytes);
  const list = isList ? parseList(bytes, source) : upconvert(bytes, source);
  if (list.plugins.length === 0) throw new Error("no plugin configs found");
  return list;
}

/** libcni `NetworkPluginConfsFromFiles`: `<dir>/<network>/*.conf`, each one plugin object, in filename order. */
function siblingPlugins(confDir: string, network: string): Json[] {
  const dir = join(confDir, network);
  let files: string[];
  try {
    files = confFiles(dir, [".conf"]);
  } catch (e) {
    throw new Error(`failed to read plugin config files in ${dir}: ${errorText(e)}`);
  }
  return files.map((file) => parsePluginConf(parseJson(readFile(file), "configuration")));
}

function readFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`error reading ${file}: ${errorText(e)}`);
  }
}

/**
 * One configuration file: a .conflist (libcni `NetworkConfFromFile`, with the sibling-directory plugins appended
 * unless loadOnlyInlinedPlugins) or a single-plugin .conf/.json up-converted.
 */
export function loadConfFile(file: string): NetworkConfigList {
  const bytes = readFile(file);
  if (goExt(file) !== ".conflist") return loadConfList(bytes, file);
  const list = parseList(bytes, file);
  if (!list.loadOnlyInlinedPlugins) list.plugins.push(...siblingPlugins(dirname(file), list.name));
  if (list.plugins.length === 0) throw new Error("no plugin configs found");
  return list;
}

/**
 * A configuration directory as a runtime reads it.
 * - Without `name` (go-cni): the lexicographically first of *.conf, *.conflist, *.json is the network.
 * - With `name` (libcni `LoadNetworkConf`): the first .conflist of that name in filename order, else the first
 *   .conf/.json of that name; every file read before the match must parse.
 */
export function loadConfDir(dir: string, name?: string): NetworkConfigList {
  if (name === undefined) {
    const first = confFiles(dir, [".conf", ".conflist", ".json"])[0];
    if (first === undefined) throw new Error(`no network config found in ${dir}`);
    return loadConfFile(first);
  }
  const lists = confFiles(dir, [".conflist"]);
  for (const file of lists) {
    const list = loadConfFile(file);
    if (list.name === name) return list;
  }
  const singles = confFiles(dir, [".conf", ".json"]);
  if (singles.length === 0) {
    throw new Error(lists.length > 0 ? notFound(dir, name) : `no net configurations found in ${dir}`);
  }
  for (const file of singles) {
    const list = loadConfFile(file);
    if (list.name === name) return list;
  }
  throw new Error(notFound(dir, name));
}

function notFound(dir: string, name: string): string {
  return `no net configuration with name "${name}" in ${dir}`;
}
