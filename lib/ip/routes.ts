/**
 * Routes as the kernel holds them (`ip -json -N -d route show table all`), normalised so that they compare with
 * configured routes field by field: numbers where iproute2 may print names, canonical destinations and addresses.
 *
 * Reading every table and comparing in code is what keeps a CHECK honest: `ip route get DST` answers with whatever
 * route would carry the packet (the default route, usually), never whether the route asked about exists.
 *
 * @example
 *   const routes = await readRoutes("/var/run/netns/pod");
 *   routes.filter((k) => k.dev === "eth0" && k.dst === "0.0.0.0/0"); // the IPv4 default routes on eth0
 */
import { bigIntToIP, parseCidr, parseIP, type Family } from "../cidr.js";
import { rejectedOption } from "../tool-error.js";
import { ipJson } from "./read.js";

/** One kernel route with numbers where iproute2 may print names (table, protocol, scope, type). */
export interface KernelRoute {
  family: Family;
  /** 1 unicast, 2 local, 3 broadcast, 6 blackhole, ... (rtnetlink RTN_*). */
  type: number;
  /** Canonical CIDR: "default" becomes 0.0.0.0/0 or ::/0, a host route gets /32 or /128. */
  dst: string;
  gateway?: string;
  dev?: string;
  table: number;
  protocol: number;
  /** Always 0 for IPv6 (Linux keeps no scope there). */
  scope: number;
  metric: number;
  prefsrc?: string;
  /** Route metrics (mtu, advmss, ...); locked ones included. */
  metrics: Record<string, number>;
  onlink: boolean;
  /** An ECMP route: its next hops are in `nexthops`, and it is never one of ours to touch. */
  multipath: boolean;
}

interface RawRoute {
  type?: string;
  dst?: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
  metrics?: Array<Record<string, unknown>>;
  flags?: string[];
  nexthops?: unknown[];
}

// iproute2 prints names when it knows them and -N is missing (older versions) or ignored for a field.
const TABLES: Record<string, number> = { unspec: 0, default: 253, main: 254, local: 255 };
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
const PROTOCOLS: Record<string, number> = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 };
/** rtnetlink route types (RTN_*) by number, as `ip route` names them. */
export const ROUTE_TYPE_NAMES: readonly string[] = [
  "unspec",
  "unicast",
  "local",
  "broadcast",
  "anycast",
  "multicast",
  "blackhole",
  "unreachable",
  "prohibit",
  "throw",
  "nat",
];

function num(text: string | undefined, names: Record<string, number>, fallback: number): number {
  if (text === undefined) return fallback;
  if (/^\d+$/.test(text)) return Number(text);
  return names[text] ?? (/^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : fallback);
}

function canonicalDst(dst: string | undefined, family: Family): string {
  if (dst === undefined || dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  const c = parseCidr(dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return c ? `${bigIntToIP(c.family, c.network)}/${c.prefix}` : dst;
}

function canonicalIP(ip: string | undefined): string | undefined {
  if (ip === undefined) return undefined;
  const p = parseIP(ip);
  return p ? bigIntToIP(p.family, p.value) : ip;
}

/** One row of `ip -json -N -d route show` as a KernelRoute. */
export function normalizeRoute(raw: RawRoute, family: Family): KernelRoute {
  const metrics: Record<string, number> = {};
  for (const m of raw.metrics ?? []) {
    for (const [k, v] of Object.entries(m)) {
      if (typeof v === "number") metrics[k] = v;
      // A locked metric prints as ["lock", value].
      else if (Array.isArray(v) && typeof v[v.length - 1] === "number") metrics[k] = v[v.length - 1] as number;
    }
  }
  const type = num(raw.type, Object.fromEntries(ROUTE_TYPE_NAMES.map((n, i) => [n, i])), 1);
  const out: KernelRoute = {
    family,
    type,
    dst: canonicalDst(raw.dst, family),
    table: num(raw.table, TABLES, 254),
    protocol: num(raw.protocol, PROTOCOLS, 0),
    scope: family === 6 ? 0 : num(raw.scope, SCOPES, 0),
    metric: raw.metric ?? 0,
    metrics,
    onlink: (raw.flags ?? []).includes("onlink"),
    multipath: Array.isArray(raw.nexthops),
  };
  const gateway = canonicalIP(raw.gateway);
  if (gateway !== undefined) out.gateway = gateway;
  if (raw.dev !== undefined) out.dev = raw.dev;
  const prefsrc = canonicalIP(raw.prefsrc);
  if (prefsrc !== undefined) out.prefsrc = prefsrc;
  return out;
}

let numeric = true;

async function readFamily(f: Family, netns: string | undefined): Promise<KernelRoute[]> {
  const args = ["-d", `-${f}`, "route", "show", "table", "all"];
  try {
    // -N: numbers even where /etc/iproute2 names them, so a local rt_protos entry cannot hide our protocol.
    const rows = await ipJson<RawRoute[]>(numeric ? ["-N", ...args] : args, netns);
    return rows.map((r) => normalizeRoute(r, f));
  } catch (e) {
    // iproute2 before -N (5.x) refuses the option; names are understood too (normalizeRoute).
    if (!numeric || !rejectedOption(e, "-N")) throw e;
    numeric = false;
    return readFamily(f, netns);
  }
}

/** Every route of both families in every table of a namespace (ours when undefined). */
export async function readRoutes(netns?: string): Promise<KernelRoute[]> {
  const [r4, r6] = await Promise.all([readFamily(4, netns), readFamily(6, netns)]);
  return [...r4, ...r6];
}
