/**
 * Reading kernel state inside one of the run's namespaces, never changing it: links, addresses, routes and sysctls
 * (`ip -json`), the nft ruleset and iptables-save text cleaned of what changes between runs (counters, comments).
 * Synchronous readers for tests; `kernel-async.ts` reads the same through nsenter, concurrently, for the harness.
 */
import { nsRun } from "./exec.js";

export interface Link {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address: string;
  master?: string;
  link_index?: number;
  promiscuity?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, any>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, any>;
  };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string; tentative?: boolean }>;
}

export interface RouteRow {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  table?: string;
}

/** Parse the output of `ip -json …` (empty output is an empty list). */
export function parseIpJson<T>(out: string): T {
  const t = out.trim();
  return (t === "" ? [] : JSON.parse(t)) as T;
}

/** `ip -json ARGS` in a namespace. */
export function ipj<T = any>(nsName: string, ...args: string[]): T {
  return parseIpJson<T>(nsRun(nsName, "ip", ["-json", ...args]).stdout);
}

/** Global (non link-local) addresses of `dev` as "addr/prefix", sorted. */
export function addrsOf(nsName: string, dev: string): string[] {
  const links = ipj<Link[]>(nsName, "addr", "show", "dev", dev);
  return (links[0]?.addr_info ?? [])
    .filter((a) => a.scope !== "link")
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

/** Link with details (`ip -d -json link show dev`), or undefined. */
export function linkOf(nsName: string, dev: string): Link | undefined {
  const r = nsRun(nsName, "ip", ["-d", "-json", "link", "show", "dev", dev], true);
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as Link[])[0];
}

export function linkNames(nsName: string): string[] {
  return ipj<Link[]>(nsName, "link", "show")
    .map((l) => l.ifname)
    .sort();
}

/** Main-table routes of a family. */
export function routesOf(nsName: string, family: 4 | 6): RouteRow[] {
  return ipj<RouteRow[]>(nsName, `-${family}`, "route", "show");
}

/** The default route's gateway of a family, or undefined. */
export function defaultGw(nsName: string, family: 4 | 6): string | undefined {
  return routesOf(nsName, family).find((r) => r.dst === "default")?.gateway;
}

/** "net.ipv4.ip_forward" -> "/proc/sys/net/ipv4/ip_forward". */
export function sysctlFile(key: string): string {
  return `/proc/sys/${key.replace(/\./g, "/")}`;
}

export function sysctl(nsName: string, key: string): string {
  return nsRun(nsName, "cat", [sysctlFile(key)]).stdout.trim();
}

/** `nft list ruleset` text without counter values. */
export function withoutNftCounters(ruleset: string): string {
  return ruleset.replace(/counter packets \d+ bytes \d+/g, "counter");
}

/** `nft list ruleset` without counters. */
export function nftRuleset(nsName: string): string {
  return withoutNftCounters(nsRun(nsName, "nft", ["list", "ruleset"]).stdout);
}

/** iptables-save text without comments, empty lines and chain counters. */
export function cleanIptablesSave(s: string): string {
  return s
    .split("\n")
    .filter((l) => !l.startsWith("#") && l.trim() !== "")
    .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
    .join("\n");
}

/** iptables-save and ip6tables-save (of one table, or all), cleaned, the IPv6 part after a "--- ip6" line. */
export function iptablesSave(nsName: string, table?: string): string {
  const args = table === undefined ? [] : ["-t", table];
  return `${cleanIptablesSave(nsRun(nsName, "iptables-save", args).stdout)}\n--- ip6\n${cleanIptablesSave(nsRun(nsName, "ip6tables-save", args).stdout)}`;
}

/** iptables-save and ip6tables-save of nat, without comments and counters. */
export function iptNat(nsName: string): string {
  return iptablesSave(nsName, "nat");
}

/** The `table FAMILY NAME` headers of an `nft list ruleset` text. */
export function nftTables(ruleset: string): string[] {
  return ruleset
    .split("\n")
    .filter((l) => l.startsWith("table "))
    .map((l) => l.replace(/ \{$/, ""));
}
