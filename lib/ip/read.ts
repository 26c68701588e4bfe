/**
 * Typed readers over `ip -json`: what the kernel really holds, in the plugin's namespace or a pod's.
 *
 * @example
 *   const eth0 = await getLink("eth0", "/var/run/netns/pod"); // undefined when absent
 */
import { CniError, ErrorCode } from "../errors.js";
import { runOk } from "../exec.js";
import { inNetns } from "../netns.js";

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  promiscuity?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
}

export interface AddrInfo {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope: string;
  tentative?: boolean;
  dadfailed?: boolean;
}

export interface LinkAddrs {
  ifindex: number;
  ifname: string;
  addr_info: AddrInfo[];
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  type?: string;
  prefsrc?: string;
  metrics?: Array<Record<string, number>>;
  flags?: string[];
}

/** Run `ip -json ARGS` (in `netns` when given) and parse its output; a failure is a ToolError (`not-found`: no such link). */
export async function ipJson<T>(args: readonly string[], netns?: string): Promise<T> {
  const [file, argv] = inNetns(netns, "ip", ["-json", ...args]);
  const text = (await runOk(file, argv, { timeoutMs: 10_000, what: `ip ${args.join(" ")}` })).trim();
  if (text === "") return [] as unknown as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `ip ${args.join(" ")}: unparsable JSON output`, text.slice(0, 200));
  }
}

export function listLinks(netns?: string): Promise<LinkInfo[]> {
  return ipJson<LinkInfo[]>(["-details", "link", "show"], netns);
}

/** The link named `name`, or undefined when it does not exist. */
export async function getLink(name: string, netns?: string): Promise<LinkInfo | undefined> {
  const links = await listLinks(netns);
  return links.find((l) => l.ifname === name);
}

export function listAddrs(netns?: string, dev?: string): Promise<LinkAddrs[]> {
  return ipJson<LinkAddrs[]>(dev ? ["addr", "show", "dev", dev] : ["addr", "show"], netns);
}

/** Routes of one family; `table` defaults to main, "all" lists every table. */
export function listRoutes(family: 4 | 6, netns?: string, table: string | number = "main"): Promise<RouteInfo[]> {
  return ipJson<RouteInfo[]>([`-${family}`, "route", "show", "table", String(table)], netns);
}
