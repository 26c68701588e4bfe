/**
 * The routes plugin's configuration: route-override's keys (also under `args.cni`, which wins), every spec 1.1
 * route field, an explicit target interface and routes for the node. Parsed once and fully validated before
 * anything is read from or written to the kernel, so a bad config changes nothing.
 *
 * @example
 *   const conf = loadRoutesConfig(ctx.config); // conf.addroutes[0].dst === "10.96.0.0/12", conf.flushgateway === false
 */
import { bigIntToIP, formatIP, isNetworkAddress, parseCidr, parseIP, type Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend, goList, goStruct, type GoType } from "../../lib/gojson.js";
import { PLUGIN_CONF_SHAPE, ROUTE_SHAPE, type NetConf, type Route } from "../../lib/types.js";
import { quoteInput, validateIfname } from "../../lib/validate.js";

/**
 * The route protocol number (`proto 207`, 0xcf) that marks routes installed by cni-ts routes. Ownership lives in
 * the kernel rather than a state file, so a crash between writing a route and recording it cannot orphan the route,
 * and `ip route` shows whose a route is. 207 is unassigned: not in the kernel's rtnetlink.h, not iproute2's
 * rt_protos, not FRR's 186-198 nor Calico's 80.
 */
export const ROUTES_PROTO = 207;

/**
 * The protocol number (`proto 208`, 0xd0) of node routes written by `routes sync`. Not 207: sync deletes every route
 * of its own protocol that the node list no longer asks for, and must not take the conflist's `hostRoutes` with it
 * (the next pod ADD would put them back, and the two would flap). Each mechanism owns exactly its own routes and
 * sees the other's as foreign.
 */
export const SYNC_PROTO = 208;

/** A route in the node's namespace; `dev` is optional because the kernel can derive it from `gw`. */
export interface HostRoute extends Route {
  dev?: string;
}

/** Everything the verbs need, validated and canonical (dst as its network address, addresses as Go prints them). */
export interface RoutesConfig {
  addroutes: Route[];
  delroutes: Route[];
  flushroutes: boolean;
  flushgateway: boolean;
  skipcheck: boolean;
  /** The pod interface the routes go on; undefined = CNI_IFNAME. */
  interface: string | undefined;
  hostRoutes: HostRoute[];
}

/** Kernel scopes a route can usefully have; 255 (nowhere) would make the route unusable. */
const SCOPES: Readonly<Record<number, string>> = { 0: "global", 200: "site", 253: "link", 254: "host" };
const ROUTE_KEYS = ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"] as const;
const MAX_U32 = 4294967295;

/** Keys a pod's own args may set. hostRoutes is left out on purpose: args.cni can come from a pod annotation
 * (Multus `cni-args`), and a pod must not be able to rewrite its node's routing table. */
const ARGS_KEYS = ["addroutes", "delroutes", "flushroutes", "flushgateway", "skipcheck", "interface"] as const;

const HOST_ROUTE_SHAPE = goStruct({ ...ROUTE_SHAPE.fields, dev: GO_ANY });
const ROUTE_KEYS_SHAPE: Record<(typeof ARGS_KEYS)[number] | "hostRoutes", GoType> = {
  addroutes: goList(ROUTE_SHAPE),
  delroutes: goList(ROUTE_SHAPE),
  flushroutes: GO_ANY,
  flushgateway: GO_ANY,
  skipcheck: GO_ANY,
  interface: GO_ANY,
  // Also under args.cni, where it is refused: a differently-cased spelling must be refused too.
  hostRoutes: goList(HOST_ROUTE_SHAPE),
};

/** route-override's `RouteOverrideConfig` (keys also under `args.cni`) and ours: keys match as Go reads them. */
export const ROUTES_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  ...ROUTE_KEYS_SHAPE,
  args: goStruct({ cni: goStruct(ROUTE_KEYS_SHAPE) }),
});

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
const unsupported = (msg: string, details = "") => new CniError(ErrorCode.UnsupportedField, msg, details);

/** A JSON value as a message may show it: strings quoted and bounded, containers named. */
function shown(v: unknown): string {
  if (typeof v === "string") return quoteInput(v);
  if (Array.isArray(v)) return "an array";
  if (v !== null && typeof v === "object") return "an object";
  return String(v);
}

/** The default route of a family, in the canonical form every comparison uses. */
export function defaultDst(family: Family): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}

/** Family of a canonical CIDR or address. */
export function familyOf(text: string): Family {
  return text.includes(":") ? 6 : 4;
}

/** The metric the kernel gives a route without one: 0 for IPv4, 1024 for IPv6. */
export function effectiveMetric(r: Route): number {
  return r.priority ?? (familyOf(r.dst) === 6 ? 1024 : 0);
}

/** The table a route lands in: unset and 0 (unspec) both mean main (254), as they do to the kernel. */
export function effectiveTable(r: Route): number {
  return r.table === undefined || r.table === 0 ? 254 : r.table;
}

function bool(v: unknown, where: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  // Hand-written conflists and annotations say "true" often enough; the two spellings are unambiguous.
  if (v === "true" || v === "false") return v === "true";
  throw invalid(`${where} must be a boolean, got ${shown(v)}`);
}

/** An optional unsigned integer field; 0 means "not set" where Go's types.Route has a plain int (mtu, advmss, priority). */
function uint(v: unknown, where: string, min: number, max: number, zeroIsUnset: boolean): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalid(`${where} must be an integer, got ${shown(v)}`);
  if (v === 0 && zeroIsUnset) return undefined;
  if (v < min || v > max) throw invalid(`${where} must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** An interface name from the config, with the key in the message (validateIfname names it only in details). */
function ifname(v: string, where: string): string {
  try {
    return validateIfname(v, where, ErrorCode.InvalidNetworkConfig);
  } catch (e) {
    if (e instanceof CniError) throw invalid(`${where}: ${e.message}`, e.details);
    throw e;
  }
}

/** One route object with every spec 1.1 field; `dev` only where the caller allows it (node routes). */
export function parseRoute(v: unknown, where: string, allowDev = false): HostRoute {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw invalid(`${where} must be an object {dst, gw?, ...}, got ${shown(v)}`);
  const o = v as Record<string, unknown>;
  const known: readonly string[] = allowDev ? [...ROUTE_KEYS, "dev"] : ROUTE_KEYS;
  // A misspelt key ("via", "metric") would otherwise give a route quietly different from the one meant.
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw invalid(`${where}: unknown key ${quoteInput(unknown[0]!)}`, `route keys are ${known.join(", ")}`);

  if (typeof o.dst !== "string" || o.dst === "")
    throw invalid(`${where}.dst is required and must be a CIDR string, got ${shown(o.dst)}`);
  const dst = parseCidr(o.dst);
  if (!dst) throw invalid(`${where}.dst: ${quoteInput(o.dst)} is not a CIDR (address/prefix, e.g. 10.96.0.0/12)`);
  const network = `${bigIntToIP(dst.family, dst.network)}/${dst.prefix}`;
  if (!isNetworkAddress(dst))
    throw invalid(
      `${where}.dst: ${quoteInput(o.dst)} is not a network address`,
      `host bits are set: did you mean ${network}?`,
    );
  const route: HostRoute = { dst: network };

  if (o.gw !== undefined && o.gw !== null && o.gw !== "") {
    if (typeof o.gw !== "string") throw invalid(`${where}.gw must be an IP address string, got ${shown(o.gw)}`);
    const gw = parseIP(o.gw);
    if (!gw) throw invalid(`${where}.gw: ${quoteInput(o.gw)} is not an IP address`);
    if (gw.family !== dst.family)
      throw invalid(`${where}.gw ${formatIP(gw)} is IPv${gw.family} but dst ${network} is IPv${dst.family}`);
    route.gw = formatIP(gw);
  }
  const mtu = uint(o.mtu, `${where}.mtu`, dst.family === 4 ? 68 : 1280, 65535, true);
  if (mtu !== undefined) route.mtu = mtu;
  const advmss = uint(o.advmss, `${where}.advmss`, 1, 65535, true);
  if (advmss !== undefined) route.advmss = advmss;
  const priority = uint(o.priority, `${where}.priority`, 0, MAX_U32, true);
  if (priority !== undefined) route.priority = priority;
  const table = uint(o.table, `${where}.table`, 0, MAX_U32, false);
  if (table !== undefined) route.table = table;
  const scope = uint(o.scope, `${where}.scope`, 0, 255, false);
  if (scope !== undefined) {
    if (!(scope in SCOPES))
      throw unsupported(
        `${where}.scope ${scope} is not supported`,
        "use 0 (global), 200 (site), 253 (link) or 254 (host)",
      );
    // Linux keeps no scope on IPv6 routes: accepting one would promise something CHECK could never see.
    if (dst.family === 6 && scope !== 0)
      throw unsupported(
        `${where}.scope ${scope} is not supported for IPv6 routes`,
        "Linux IPv6 routes have no scope; leave it out",
      );
    if (route.gw !== undefined && scope >= 253)
      throw invalid(`${where}: a route via a gateway cannot have ${SCOPES[scope]} scope (${scope})`);
    route.scope = scope;
  }
  if (allowDev && o.dev !== undefined && o.dev !== null && o.dev !== "") {
    if (typeof o.dev !== "string") throw invalid(`${where}.dev must be an interface name, got ${shown(o.dev)}`);
    route.dev = ifname(o.dev, `${where}.dev`);
  }
  return route;
}

/** The kernel's identity of a route: two routes with the same key cannot both exist. */
export function routeKey(r: Route): string {
  return `${r.dst} table ${effectiveTable(r)} metric ${effectiveMetric(r)}`;
}

function routeList(v: unknown, where: string, allowDev = false): HostRoute[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${where} must be an array of routes, got ${shown(v)}`);
  return v.map((r, i) => parseRoute(r, `${where}[${i}]`, allowDev));
}

/** Routes that would occupy the same kernel slot: the second `ip route add` would fail with "File exists". */
function rejectDuplicates(routes: readonly Route[], where: string): void {
  const seen = new Map<string, number>();
  routes.forEach((r, i) => {
    const key = routeKey(r);
    const first = seen.get(key);
    if (first !== undefined)
      throw invalid(`${where}[${i}] has the same dst, table and priority as ${where}[${first}] (${key})`);
    seen.set(key, i);
  });
}

/**
 * Read and validate the plugin's keys. Keys under `args.cni` win over top-level ones (route-override's rule);
 * every error names the key (code 7; code 2 for a value of a known field that is not supported).
 */
export function loadRoutesConfig(conf: NetConf): RoutesConfig {
  const top = conf as Record<string, unknown>;
  const rawArgs = conf.args;
  if (rawArgs !== undefined && rawArgs !== null && (typeof rawArgs !== "object" || Array.isArray(rawArgs)))
    throw invalid("args must be an object");
  const rawCni = rawArgs?.cni;
  if (rawCni !== undefined && rawCni !== null && (typeof rawCni !== "object" || Array.isArray(rawCni)))
    throw invalid("args.cni must be an object");
  const cni = (rawCni ?? {}) as Record<string, unknown>;
  if (cni.hostRoutes !== undefined)
    throw unsupported(
      "args.cni.hostRoutes is not accepted",
      "node routes come from the network configuration only, never from per-pod args",
    );

  const pick = (key: (typeof ARGS_KEYS)[number]): { value: unknown; where: string } =>
    cni[key] !== undefined ? { value: cni[key], where: `args.cni.${key}` } : { value: top[key], where: key };

  const add = pick("addroutes");
  const del = pick("delroutes");
  const iface = pick("interface");
  const flag = (key: "flushroutes" | "flushgateway" | "skipcheck") => {
    const p = pick(key);
    return bool(p.value, p.where);
  };
  const out: RoutesConfig = {
    addroutes: routeList(add.value, add.where),
    delroutes: routeList(del.value, del.where),
    flushroutes: flag("flushroutes"),
    flushgateway: flag("flushgateway"),
    skipcheck: flag("skipcheck"),
    interface: undefined,
    hostRoutes: routeList(top.hostRoutes, "hostRoutes", true),
  };
  rejectDuplicates(out.addroutes, add.where);
  rejectDuplicates(out.hostRoutes, "hostRoutes");
  if (iface.value !== undefined && iface.value !== null && iface.value !== "") {
    if (typeof iface.value !== "string")
      throw invalid(`${iface.where} must be an interface name, got ${shown(iface.value)}`);
    out.interface = ifname(iface.value, iface.where);
  }
  for (const [i, r] of out.hostRoutes.entries()) {
    // Without either the kernel has nowhere to send the packets.
    if (r.gw === undefined && r.dev === undefined) throw invalid(`hostRoutes[${i}] needs gw or dev`, `route ${r.dst}`);
  }
  return out;
}
