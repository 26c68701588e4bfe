/**
 * CNI spec versions, and the one crossing between the internal result model (spec 1.1) and each version's JSON.
 *
 * Plugins build a `Result` in the 1.1 model and print `formatResult(result, config.cniVersion)`; anything that
 * arrives as JSON (a prevResult, a delegate's stdout) comes in through `parseResult`. The JSON matches what the Go
 * reference prints (containernetworking/cni v1.2+, `pkg/types/020`, `040`, `100`): same fields, same omissions,
 * same key order, same address spelling.
 *
 * @example
 *   const prev = parseResult(config.prevResult, config.cniVersion);   // CniError code 6 on a malformed result
 *   const json = formatResult(prev, config.cniVersion);                // CniError code 1 if the version cannot say it
 *   process.stdout.write(JSON.stringify(json, null, 4));
 */
import { formatCidr, formatIP, parseCidr, parseIP, type Family } from "./cidr.js";
import { CniError, ErrorCode } from "./errors.js";
import { decodeGo } from "./gojson.js";
import { RESULT_SHAPE, type DNS, type IPConfig, type Interface, type Result, type Route } from "./types.js";
import { quoteInput } from "./validate.js";

/** Every spec version we accept and can answer in, oldest first (skel compares by exact string, as Go's does). */
export const SUPPORTED_VERSIONS: readonly string[] = Object.freeze([
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
]);

/** The version VERSION reports as ours and the one the internal model is shaped after. */
export const LATEST_VERSION = "1.1.0";

/** Exact-string membership: "1.1" or "v1.1.0" is not 1.1.0 to a runtime either. */
export function isSupportedVersion(v: string): boolean {
  return SUPPORTED_VERSIONS.includes(v);
}

const VERSION_PATTERN = /^(\d+)\.(\d+)\.(\d+)$/;

function versionParts(v: string): [number, number, number] {
  const m = VERSION_PATTERN.exec(v);
  if (!m)
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `invalid version ${quoteInput(v)}`,
      "a CNI version has the form MAJOR.MINOR.PATCH, e.g. 1.1.0",
    );
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * Numeric order of two x.y.z versions (negative, 0, positive), for feature gates such as "CHECK needs 0.4.0".
 * Throws CniError code 1 on anything that is not x.y.z.
 *
 * @example compareVersions("0.10.0", "0.4.0") // > 0
 */
export function compareVersions(a: string, b: string): number {
  const pa = versionParts(a);
  const pb = versionParts(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** True when v is min or newer: the question every version gate asks. */
export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * Address family of an address or CIDR, as Go decides it (`IP.To4() != nil`), for the 0.x `version` field and the
 * ip4/ip6 split. Throws CniError code 999: callers hand it addresses that were validated already.
 *
 * @example ipFamily("fd00::1/64") // 6
 */
export function ipFamily(addrOrCidr: string): 4 | 6 {
  const parsed = addrOrCidr.includes("/") ? parseCidr(addrOrCidr) : parseIP(addrOrCidr);
  if (!parsed) throw new CniError(ErrorCode.Internal, `not an IP address or CIDR: ${quoteInput(addrOrCidr)}`);
  return parsed.family;
}

/** The three JSON layouts the seven versions share (Go has one package per layout). */
type Layout = "020" | "040" | "100";

function layoutOf(version: string, action: string): Layout {
  switch (version) {
    case "0.1.0":
    case "0.2.0":
      return "020";
    case "0.3.0":
    case "0.3.1":
    case "0.4.0":
      return "040";
    case "1.0.0":
    case "1.1.0":
      return "100";
  }
  throw new CniError(
    ErrorCode.IncompatibleVersion,
    "incompatible CNI versions",
    `cannot ${action} at version ${quoteInput(version)}, supported versions are ${JSON.stringify(SUPPORTED_VERSIONS)}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Output

type Json = Record<string, unknown>;

/** Canonical spelling of a model address; a bad one here is a plugin bug, not bad input, hence code 999. */
function outCidr(text: string, field: string): string {
  const c = parseCidr(text);
  if (!c) throw new CniError(ErrorCode.Internal, `result ${field} is not a valid CIDR: ${quoteInput(text)}`);
  return formatCidr(c);
}

function outIP(text: string, field: string): string {
  const ip = parseIP(text);
  if (!ip) throw new CniError(ErrorCode.Internal, `result ${field} is not a valid IP address: ${quoteInput(text)}`);
  return formatIP(ip);
}

/** Go's shared `types.Route`: mtu/advmss/priority are plain ints (0 is not printed), table/scope are pointers
 * (0 is a real value: the unspec table, the global scope). All layouts from 0.3.0 on print every field. */
function routeJson(r: Route, field: string): Json {
  const out: Json = { dst: outCidr(r.dst, `${field}.dst`) };
  if (r.gw) out.gw = outIP(r.gw, `${field}.gw`);
  if (r.mtu) out.mtu = r.mtu;
  if (r.advmss) out.advmss = r.advmss;
  if (r.priority) out.priority = r.priority;
  if (r.table !== undefined) out.table = r.table;
  if (r.scope !== undefined) out.scope = r.scope;
  return out;
}

function dnsJson(d: DNS | undefined): Json {
  const out: Json = {};
  if (!d) return out;
  if (d.nameservers?.length) out.nameservers = [...d.nameservers];
  if (d.domain) out.domain = d.domain;
  if (d.search?.length) out.search = [...d.search];
  if (d.options?.length) out.options = [...d.options];
  return out;
}

function ipJson(ip: IPConfig, field: string, withVersion: boolean): Json {
  const address = outCidr(ip.address, `${field}.address`);
  const out: Json = withVersion ? { version: String(ipFamily(address)) } : {};
  if (ip.interface !== undefined) out.interface = ip.interface;
  out.address = address;
  if (ip.gateway) out.gateway = outIP(ip.gateway, `${field}.gateway`);
  return out;
}

/**
 * Go's 1.x `Result.MarshalJSON` drops an empty dns by round-tripping through `map[string]interface{}`, and Go prints
 * maps with sorted keys: so every object of a 1.x result, at every depth, comes out in alphabetical key order.
 */
function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === "object") {
    const src = value as Json;
    const out: Json = {};
    for (const key of Object.keys(src).sort()) out[key] = sortKeysDeep(src[key]);
    return out;
  }
  return value;
}

function format100(result: Result, version: string): Json {
  const out: Json = { cniVersion: version };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((intf) => {
      const o: Json = { name: intf.name };
      if (intf.mac) o.mac = intf.mac;
      if (intf.mtu) o.mtu = intf.mtu;
      if (intf.sandbox) o.sandbox = intf.sandbox;
      if (intf.socketPath) o.socketPath = intf.socketPath;
      if (intf.pciID) o.pciID = intf.pciID;
      return o;
    });
  }
  if (result.ips?.length) out.ips = result.ips.map((ip, i) => ipJson(ip, `ips[${i}]`, false));
  if (result.routes?.length) out.routes = result.routes.map((r, i) => routeJson(r, `routes[${i}]`));
  const dns = dnsJson(result.dns);
  if (Object.keys(dns).length > 0) out.dns = dns;
  return sortKeysDeep(out) as Json;
}

function format040(result: Result, version: string): Json {
  const out: Json = { cniVersion: version };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((intf) => {
      const o: Json = { name: intf.name };
      if (intf.mac) o.mac = intf.mac;
      if (intf.sandbox) o.sandbox = intf.sandbox;
      return o;
    });
  }
  if (result.ips?.length) out.ips = result.ips.map((ip, i) => ipJson(ip, `ips[${i}]`, true));
  if (result.routes?.length) out.routes = result.routes.map((r, i) => routeJson(r, `routes[${i}]`));
  out.dns = dnsJson(result.dns); // a Go struct field: printed even when empty
  return out;
}

function format020(result: Result, version: string): Json {
  const slots = new Map<Family, { ipc: Json; routes: Json[] }>();
  (result.ips ?? []).forEach((ip, i) => {
    const address = outCidr(ip.address, `ips[${i}].address`);
    const family = ipFamily(address);
    if (slots.has(family)) return; // the layout has room for one address per family: the first one wins
    const ipc: Json = { ip: address };
    if (ip.gateway) ipc.gateway = outIP(ip.gateway, `ips[${i}].gateway`);
    slots.set(family, { ipc, routes: [] });
  });
  if (slots.size === 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "cannot convert: no valid IP addresses",
      `a result without IP addresses (an L2-only attachment) cannot be expressed at CNI version ${version}; use 0.3.0 or newer`,
    );
  }
  (result.routes ?? []).forEach((r, i) => {
    const dst = outCidr(r.dst, `routes[${i}].dst`);
    const slot = slots.get(ipFamily(dst));
    if (!slot) return;
    const route: Json = { dst };
    if (r.gw) route.gw = outIP(r.gw, `routes[${i}].gw`);
    slot.routes.push(route);
  });
  const out: Json = { cniVersion: version };
  for (const [key, family] of [
    ["ip4", 4],
    ["ip6", 6],
  ] as const) {
    const slot = slots.get(family);
    if (!slot) continue;
    if (slot.routes.length > 0) slot.ipc.routes = slot.routes;
    out[key] = slot.ipc;
  }
  out.dns = dnsJson(result.dns);
  return out;
}

/**
 * The JSON object to print for a result at a given spec version, as the Go reference prints it (`types.PrintResult`).
 * Serialise it with `JSON.stringify(obj, null, 4)` for byte-identical output. Throws CniError code 1 for an
 * unsupported version, or for 0.1.0/0.2.0 when the result has no IP address to put in ip4/ip6.
 *
 * @example formatResult({ ips: [{ address: "10.1.0.5/24" }] }, "0.4.0")
 *   // { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.5/24" }], dns: {} }
 */
export function formatResult(result: Result, version: string): Record<string, unknown> {
  switch (layoutOf(version, "print a result")) {
    case "100":
      return format100(result, version);
    case "040":
      return format040(result, version);
    case "020":
      return format020(result, version);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Input

type Raw = Record<string, unknown>;

/** A received value as an error message may show it: strings bounded and quoted, containers named, not dumped. */
function describe(v: unknown): string {
  if (typeof v === "string") return quoteInput(v);
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "an array";
  if (v !== null && typeof v === "object") return "an object";
  return String(v);
}

/** Reads one received result; every complaint names the field and the version it was read at (code 6). */
class ResultReader {
  constructor(private readonly version: string) {}

  fail(path: string, problem: string, got: unknown): never {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `invalid result: ${path} ${problem}, got ${describe(got)}`,
      `while reading a CNI ${this.version} result`,
    );
  }

  record(v: unknown, path: string): Raw {
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail(path, "must be an object", v);
    return v as Raw;
  }

  /** Absent and null both mean "not set", as they do to Go's decoder. */
  optRecord(v: unknown, path: string): Raw | undefined {
    return v === undefined || v === null ? undefined : this.record(v, path);
  }

  optArray(v: unknown, path: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(path, "must be an array", v);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== "string") this.fail(path, "must be a string", v);
    return v;
  }

  /** An empty string is "not set" too: Go prints these fields with omitempty, so "" never survives a round trip. */
  optString(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    const s = this.string(v, path);
    return s === "" ? undefined : s;
  }

  optUint(v: unknown, path: string): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
      this.fail(path, "must be a non-negative integer", v);
    return v;
  }

  optStrings(v: unknown, path: string): string[] | undefined {
    const arr = this.optArray(v, path);
    return arr?.map((s, i) => this.string(s, `${path}[${i}]`));
  }

  cidr(v: unknown, path: string): { text: string; family: Family } {
    const s = this.string(v, path);
    const c = parseCidr(s);
    if (!c) this.fail(path, "must be an address with a prefix length (CIDR, e.g. 10.1.2.3/24)", s);
    return { text: formatCidr(c), family: c.family };
  }

  /** Go's net.IP reads "" as no address; anything else must parse. */
  optIP(v: unknown, path: string): string | undefined {
    const s = this.optString(v, path);
    if (s === undefined) return undefined;
    const ip = parseIP(s);
    if (!ip) this.fail(path, "must be an IP address", s);
    return formatIP(ip);
  }

  route(v: unknown, path: string): Route {
    const r = this.record(v, path);
    const out: Route = { dst: this.cidr(r.dst, `${path}.dst`).text };
    const gw = this.optIP(r.gw, `${path}.gw`);
    if (gw !== undefined) out.gw = gw;
    for (const key of ["mtu", "advmss", "priority", "table", "scope"] as const) {
      const n = this.optUint(r[key], `${path}.${key}`);
      if (n !== undefined) out[key] = n;
    }
    return out;
  }

  routes(v: unknown, path: string): Route[] | undefined {
    return this.optArray(v, path)?.map((r, i) => this.route(r, `${path}[${i}]`));
  }

  /** 0.3.0 to 0.4.0 interfaces carry name/mac/sandbox only; Go's 040 decoder ignores anything else. */
  iface(v: unknown, path: string, full: boolean): Interface {
    const raw = this.record(v, path);
    const out: Interface = { name: this.string(raw.name, `${path}.name`) };
    const mac = this.optString(raw.mac, `${path}.mac`);
    if (mac !== undefined) out.mac = mac;
    if (full) {
      const mtu = this.optUint(raw.mtu, `${path}.mtu`);
      if (mtu !== undefined) out.mtu = mtu;
    }
    const sandbox = this.optString(raw.sandbox, `${path}.sandbox`);
    if (sandbox !== undefined) out.sandbox = sandbox;
    if (full) {
      const socketPath = this.optString(raw.socketPath, `${path}.socketPath`);
      if (socketPath !== undefined) out.socketPath = socketPath;
      const pciID = this.optString(raw.pciID, `${path}.pciID`);
      if (pciID !== undefined) out.pciID = pciID;
    }
    return out;
  }

  /** withVersion: a 0.3.x/0.4.0 entry, whose `version` is checked against the address and then dropped. */
  ip(v: unknown, path: string, withVersion: boolean): IPConfig {
    const raw = this.record(v, path);
    const address = this.cidr(raw.address, `${path}.address`);
    if (withVersion && raw.version !== undefined && raw.version !== null) {
      const declared = this.string(raw.version, `${path}.version`);
      if (declared !== String(address.family)) {
        this.fail(`${path}.version`, `must be "${address.family}" for address ${address.text}`, declared);
      }
    }
    const out: IPConfig = { address: address.text };
    const gateway = this.optIP(raw.gateway, `${path}.gateway`);
    if (gateway !== undefined) out.gateway = gateway;
    const index = this.optUint(raw.interface, `${path}.interface`);
    if (index !== undefined) out.interface = index;
    return out;
  }

  dns(v: unknown, path: string): DNS | undefined {
    const raw = this.optRecord(v, path);
    if (!raw) return undefined;
    const out: DNS = {};
    const nameservers = this.optStrings(raw.nameservers, `${path}.nameservers`);
    if (nameservers?.length) out.nameservers = nameservers;
    const domain = this.optString(raw.domain, `${path}.domain`);
    if (domain !== undefined) out.domain = domain;
    const search = this.optStrings(raw.search, `${path}.search`);
    if (search?.length) out.search = search;
    const options = this.optStrings(raw.options, `${path}.options`);
    if (options?.length) out.options = options;
    return Object.keys(out).length > 0 ? out : undefined;
  }
}

function parse020(obj: Raw, rd: ResultReader): Result {
  const ips: IPConfig[] = [];
  const routes: Route[] = [];
  for (const [key, family] of [
    ["ip4", 4],
    ["ip6", 6],
  ] as const) {
    const ipc = rd.optRecord(obj[key], key);
    if (!ipc) continue;
    const address = rd.cidr(ipc.ip, `${key}.ip`);
    if (address.family !== family) rd.fail(`${key}.ip`, `must be an IPv${family} CIDR`, address.text);
    const ip: IPConfig = { address: address.text };
    const gateway = rd.optIP(ipc.gateway, `${key}.gateway`);
    if (gateway !== undefined) ip.gateway = gateway;
    ips.push(ip);
    routes.push(...(rd.routes(ipc.routes, `${key}.routes`) ?? []));
  }
  const result: Result = {};
  if (ips.length > 0) result.ips = ips;
  if (routes.length > 0) result.routes = routes;
  const dns = rd.dns(obj.dns, "dns");
  if (dns) result.dns = dns;
  return result;
}

function parseCurrent(obj: Raw, rd: ResultReader, layout: "040" | "100"): Result {
  const result: Result = {};
  const interfaces = rd.optArray(obj.interfaces, "interfaces");
  if (interfaces) result.interfaces = interfaces.map((v, i) => rd.iface(v, `interfaces[${i}]`, layout === "100"));
  const ips = rd.optArray(obj.ips, "ips");
  if (ips) result.ips = ips.map((v, i) => rd.ip(v, `ips[${i}]`, layout === "040"));
  const routes = rd.routes(obj.routes, "routes");
  if (routes) result.routes = routes;
  const dns = rd.dns(obj.dns, "dns");
  if (dns) result.dns = dns;
  return result;
}

/**
 * Read a result received as JSON (a prevResult, a delegate's stdout) into the internal model.
 *
 * The result's own non-empty `cniVersion` decides the layout; without one it is read at `version` (the config's,
 * as Go's ParsePrevResult and libcni's fixupResultVersion do). null/undefined is an empty result. Unknown keys are
 * ignored (keys match fields as Go matches them, lib/gojson.ts); a field of the wrong type or a malformed address throws CniError code 6 naming the field; an
 * unsupported version throws code 1. Addresses come back in Go's canonical spelling ("FD00::0001/64" -> "fd00::1/64").
 *
 * @example parseResult({ cniVersion: "0.2.0", ip4: { ip: "10.1.0.5/24" } }, "1.1.0") // { ips: [{ address: "10.1.0.5/24" }] }
 */
/**
 * A chained plugin's prevResult, parsed: a config without one (absent or null) is code 7 with the plugin's own
 * message (the reference's words differ by plugin and verb) and `details` saying what it must run after.
 */
export function requirePrevResult(
  config: { prevResult?: unknown },
  version: string,
  msg: string,
  details: string,
): Result {
  const raw = config.prevResult;
  if (raw === undefined || raw === null) throw new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
  return parseResult(raw, version);
}

export function parseResult(received: unknown, version: string): Result {
  if (received === null || received === undefined) return {};
  // Go reads a result into its versioned struct, so "IPs" or "Address" is a field as well as "ips" or "address".
  const raw = decodeGo(received, RESULT_SHAPE);
  const own = typeof raw === "object" && !Array.isArray(raw) ? (raw as Raw).cniVersion : undefined;
  if (own !== undefined && own !== null && typeof own !== "string")
    new ResultReader(version).fail("cniVersion", "must be a string", own);
  const effective = typeof own === "string" && own !== "" ? own : version;
  const layout = layoutOf(effective, "read a result");
  const rd = new ResultReader(effective);
  const obj = rd.record(raw, "result");
  return layout === "020" ? parse020(obj, rd) : parseCurrent(obj, rd, layout);
}

/**
 * Re-express a result received at one version in another, the way libcni converts a cached result before CHECK/DEL.
 * Errors as parseResult and formatResult.
 */
export function convertResult(raw: unknown, fromVersion: string, toVersion: string): Record<string, unknown> {
  return formatResult(parseResult(raw, fromVersion), toVersion);
}
