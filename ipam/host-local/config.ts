/**
 * host-local configuration: the whole plugin config (IPAM plugins get the caller's full config) plus CNI_ARGS IP,
 * validated once into a HostLocalConfig that the verbs use without re-parsing.
 *
 * Semantics follow the reference `backend/allocator/config.go`: runtime `ipRanges` are prepended to `ipam.ranges`,
 * the deprecated top-level `ipam.subnet` form becomes its own set in front, requested IPs come from CNI_ARGS `IP`,
 * `args.cni.ips` and `runtimeConfig.ips`. Every failure is a CniError with code 7 (invalid network configuration).
 *
 * @example
 *   const conf = loadHostLocalConfig(
 *     { cniVersion: "1.0.0", name: "net1", ipam: { type: "host-local", ranges: [[{ subnet: "10.1.2.0/24" }]] } },
 *     undefined,
 *   );
 *   conf.dataDir; // "/var/lib/cni/networks"
 */
import type { IPAddr } from "../../lib/cidr.js";
import { formatCidr, formatIP, parseCidr } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import type { Route } from "../../lib/types.js";
import { GO_ANY, goExtend, goList, goStruct } from "../../lib/gojson.js";
import { CAPABILITY_SHAPES, PLUGIN_CONF_SHAPE, RANGE_SHAPE, ROUTE_SHAPE } from "../../lib/types.js";
import { validateNetworkName } from "../../lib/validate.js";
import {
  type RangeSet,
  type RawRange,
  canonicalizeRangeSet,
  parseConfigCidr,
  parseConfigIP,
  rangeSetsOverlap,
} from "./range.js";

/**
 * The reference's `allocator.Net` with its `IPAMConfig` (the embedded `Range` puts the deprecated `subnet`,
 * `rangeStart`, `rangeEnd`, `gateway` at the top of `ipam`): keys match case-insensitively, as Go reads them.
 */
export const HOST_LOCAL_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  ipam: goStruct({
    ...RANGE_SHAPE.fields,
    type: GO_ANY,
    routes: goList(ROUTE_SHAPE),
    dataDir: GO_ANY,
    resolvConf: GO_ANY,
    ranges: goList(goList(RANGE_SHAPE)),
  }),
  runtimeConfig: goStruct({ ipRanges: CAPABILITY_SHAPES.ipRanges, ips: CAPABILITY_SHAPES.ips }),
  args: goStruct({ cni: goStruct({ ips: goList(GO_ANY) }) }),
});

/** Where reservations live when `ipam.dataDir` is not set (the reference's default). */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

/** The validated host-local configuration. */
export interface HostLocalConfig {
  /** The network name, path-safe: it is the directory `<dataDir>/<name>`. */
  name: string;
  /** Absolute, without ".." components. */
  dataDir: string;
  /** Runtime ipRanges first, then the deprecated top-level range, then ipam.ranges. */
  rangeSets: RangeSet[];
  /** ipam.routes, copied into the result. */
  routes: Route[];
  /** Path of a resolv.conf to turn into the result's dns. */
  resolvConf?: string;
  /** Requested addresses (prefixes dropped), deduplicated, in the order CNI_ARGS, args.cni.ips, runtimeConfig.ips. */
  requestedIPs: IPAddr[];
}

type JsonObject = Record<string, unknown>;

function invalid(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// Go's encoding/json reads null as "not set", so every reader below does too.

function optString(obj: JsonObject, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(`${where}.${key} must be a string`);
  return v;
}

/** A string where "" means "not set", as Go's net.IP unmarshalling treats it. */
function optAddressText(obj: JsonObject, key: string, where: string): string | undefined {
  const v = optString(obj, key, where);
  return v === "" ? undefined : v;
}

function optObject(obj: JsonObject, key: string, where: string): JsonObject | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid(`${where}.${key} must be an object`);
  return v;
}

function optArray(obj: JsonObject, key: string, where: string): unknown[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(`${where}.${key} must be an array`);
  return v;
}

function optInteger(obj: JsonObject, key: string, where: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalid(`${where}.${key} must be an integer`);
  return v;
}

function rawRange(v: unknown, where: string): RawRange {
  if (!isObject(v)) throw invalid(`${where} must be an object with a "subnet"`);
  return {
    where,
    // Unlike the address keys, an empty subnet is an error in Go (its CIDR parser runs), so "" stays.
    subnet: optString(v, "subnet", where),
    rangeStart: optAddressText(v, "rangeStart", where),
    rangeEnd: optAddressText(v, "rangeEnd", where),
    gateway: optAddressText(v, "gateway", where),
  };
}

function rawRangeSets(list: unknown[], where: string): RawRange[][] {
  return list.map((set, i) => {
    if (!Array.isArray(set)) throw invalid(`${where}[${i}] must be an array of ranges`);
    return set.map((r, j) => rawRange(r, `${where}[${i}][${j}]`));
  });
}

/** All range sets in the reference's order: runtime ipRanges, then the deprecated single range, then ipam.ranges. */
function collectRawSets(conf: JsonObject, ipam: JsonObject): RawRange[][] {
  const runtime = optObject(conf, "runtimeConfig", "config") ?? {};
  const fromRuntime = rawRangeSets(optArray(runtime, "ipRanges", "runtimeConfig") ?? [], "runtimeConfig.ipRanges");
  const fromRanges = rawRangeSets(optArray(ipam, "ranges", "ipam") ?? [], "ipam.ranges");
  // Go keys the old form on the subnet alone: a rangeStart without a subnet is silently ignored.
  const legacy = ipam.subnet === undefined || ipam.subnet === null ? [] : [[rawRange(ipam, "ipam")]];
  return [...fromRuntime, ...legacy, ...fromRanges];
}

/** Go's version.ParseVersion: "" is 0.1.0, up to three integer parts; undefined when unparsable. */
function parseVersion(v: string): [number, number, number] | undefined {
  if (v === "") return [0, 1, 0];
  const parts = v.split(".");
  if (parts.length > 3 || !parts.every((p) => /^[+-]?[0-9]+$/.test(p))) return undefined;
  const [major = 0, minor = 0, micro = 0] = parts.map(Number);
  return [major, minor, micro];
}

/** cniVersion >= 0.3.0; an unparsable version counts as older, as in the reference. */
function supportsMultipleAddresses(cniVersion: string): boolean {
  const v = parseVersion(cniVersion);
  if (v === undefined) return false;
  const [major, minor] = v;
  return major > 0 || minor >= 3;
}

function checkFamilies(sets: readonly RangeSet[], cniVersion: string): void {
  const v4 = sets.filter((s) => s[0]?.subnet.family === 4).length;
  const v6 = sets.length - v4;
  if ((v4 > 1 || v6 > 1) && !supportsMultipleAddresses(cniVersion)) {
    throw invalid(`CNI version ${cniVersion} does not support more than 1 address per family`);
  }
}

function checkSetOverlaps(sets: readonly RangeSet[]): void {
  sets.forEach((a, i) => {
    sets.slice(i + 1).forEach((b, k) => {
      if (rangeSetsOverlap(a, b)) throw invalid(`range set ${i} overlaps with ${i + k + 1}`);
    });
  });
}

/** Validate and canonicalize every range set (defaults filled, no overlaps, version limits). */
function loadRangeSets(conf: JsonObject, ipam: JsonObject, cniVersion: string): RangeSet[] {
  const raws = collectRawSets(conf, ipam);
  if (raws.length === 0) throw invalid("no IP ranges specified");
  const sets = raws.map((raw, i) => canonicalizeRangeSet(raw, i));
  checkFamilies(sets, cniVersion);
  checkSetOverlaps(sets);
  return sets;
}

/** A requested IP as `ip.IP` reads it: "a.b.c.d" or "a.b.c.d/nn" (the prefix is dropped; the range's mask is used). */
function parseRequestedIP(v: unknown, where: string): IPAddr {
  if (typeof v !== "string") throw invalid(`${where} must be a string`);
  if (!v.includes("/")) return parseConfigIP(v, where);
  const cidr = parseCidr(v);
  if (cidr === undefined) throw invalid(`invalid IP address: ${v} (${where})`);
  return { family: cidr.family, value: cidr.ip };
}

function requestedList(obj: JsonObject | undefined, key: string, where: string): IPAddr[] {
  if (obj === undefined) return [];
  return (optArray(obj, key, where) ?? []).map((v, i) => parseRequestedIP(v, `${where}.${key}[${i}]`));
}

/** Requested IPs from all three sources, deduplicated as the reference's map keyed by the address text does. */
function loadRequestedIPs(conf: JsonObject, cniArgsIP: string | undefined): IPAddr[] {
  const args = optObject(conf, "args", "config");
  const all = [
    // CNI_ARGS "IP=" (empty) is ignored by the reference rather than refused.
    ...(cniArgsIP === undefined || cniArgsIP === "" ? [] : [parseRequestedIP(cniArgsIP, "CNI_ARGS IP")]),
    ...requestedList(args && optObject(args, "cni", "args"), "ips", "args.cni"),
    ...requestedList(optObject(conf, "runtimeConfig", "config"), "ips", "runtimeConfig"),
  ];
  const seen = new Set<string>();
  return all.filter((ip) => {
    const key = formatIP(ip);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function loadRoute(v: unknown, where: string): Route {
  if (!isObject(v)) throw invalid(`${where} must be an object`);
  const dst = optString(v, "dst", where);
  if (dst === undefined) throw invalid(`${where}.dst is required`);
  const route: Route = { dst: formatCidr(parseConfigCidr(dst, `${where}.dst`)) };
  const gw = optAddressText(v, "gw", where);
  if (gw !== undefined) route.gw = formatIP(parseConfigIP(gw, `${where}.gw`));
  // Go's route type omits zero mtu/advmss/priority on output but keeps table and scope when present.
  for (const key of ["mtu", "advmss", "priority"] as const) {
    const n = optInteger(v, key, where);
    if (n !== undefined && n !== 0) route[key] = n;
  }
  for (const key of ["table", "scope"] as const) {
    const n = optInteger(v, key, where);
    if (n !== undefined) route[key] = n;
  }
  return route;
}

/** Absolute, NUL-free, no ".." component: it is joined with the network name and handed to mkdir/open. */
function loadDataDir(ipam: JsonObject): string {
  const dir = optString(ipam, "dataDir", "ipam");
  if (dir === undefined || dir === "") return DEFAULT_DATA_DIR;
  if (dir.includes("\0")) throw invalid("ipam.dataDir must not contain a NUL byte");
  if (!dir.startsWith("/")) throw invalid(`ipam.dataDir must be an absolute path, got ${JSON.stringify(dir)}`);
  if (dir.split("/").includes("..")) throw invalid(`ipam.dataDir must not contain "..", got ${JSON.stringify(dir)}`);
  return dir;
}

function loadIpam(conf: JsonObject): JsonObject {
  const ipam = optObject(conf, "ipam", "config");
  if (ipam === undefined) throw invalid("IPAM config missing 'ipam' key");
  optString(ipam, "type", "ipam");
  return ipam;
}

/**
 * Parse and validate the host-local configuration.
 *
 * @param conf the whole plugin configuration object, already JSON-parsed
 * @param cniArgsIP the `IP` value from CNI_ARGS, if any ("" counts as unset)
 * @throws CniError code 7 on any invalid key, type or value; the message names the key
 */
export function loadHostLocalConfig(conf: unknown, cniArgsIP: string | undefined): HostLocalConfig {
  if (!isObject(conf)) throw invalid("network configuration must be a JSON object");
  const name = validateNetworkName(conf.name);
  const cniVersion = optString(conf, "cniVersion", "config") ?? "";
  const ipam = loadIpam(conf);
  const requestedIPs = loadRequestedIPs(conf, cniArgsIP);
  const rangeSets = loadRangeSets(conf, ipam, cniVersion);
  const routes = (optArray(ipam, "routes", "ipam") ?? []).map((r, i) => loadRoute(r, `ipam.routes[${i}]`));
  const resolvConf = optString(ipam, "resolvConf", "ipam");
  const out: HostLocalConfig = { name, dataDir: loadDataDir(ipam), rangeSets, routes, requestedIPs };
  if (resolvConf !== undefined && resolvConf !== "") out.resolvConf = resolvConf;
  return out;
}

/**
 * Where this network's reservations live: all that DEL and GC need. Read on its own so that a config broken
 * elsewhere (a range the reference would reject on DEL, say) still releases what it holds.
 */
export function loadStoreLocation(conf: unknown): { name: string; dataDir: string } {
  if (!isObject(conf)) throw invalid("network configuration must be a JSON object");
  return { name: validateNetworkName(conf.name), dataDir: loadDataDir(loadIpam(conf)) };
}
