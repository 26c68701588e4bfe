/**
 * Reading kernel state inside one of the run's namespaces, concurrently and never changing it: links with their
 * bridge-port flags, addresses, routes, sysctls, the nat table / nft ruleset, ping with its RTT, and a connection
 * through a port to the python listener of traffic.ts. Everything goes through `ip -n NS -json ...` or
 * `nsenter --net=PATH`, so the reading process itself never leaves the root namespace.
 */
import { run } from "../lib/exec.js";
import { SYSTEM_PATH } from "./exec.js";
import { parseIpJson, sysctlFile } from "./kernel.js";
import {
  clientArgv,
  NSENTER,
  parseRtt,
  type PingResult,
  pingArgv,
  type Proto,
  startListener,
  stopListener,
} from "./traffic.js";

export interface KLink {
  name: string;
  kind: string;
  up: boolean;
  mtu: number;
  master?: string;
  mac: string;
  hairpin?: boolean;
  isolated?: boolean;
  promisc: boolean;
  addresses: string[];
}

export interface KRoute {
  dst: string;
  gw?: string;
  dev?: string;
  mtu?: number;
  advmss?: number;
  metric?: number;
  table: number;
  family: 4 | 6;
}

type J = Record<string, unknown>;

async function ipJson(ns: string, args: string[]): Promise<J[]> {
  const r = await run("ip", ["-n", ns, "-json", ...args], { env: { PATH: SYSTEM_PATH }, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip -n ${ns} ${args.join(" ")}: ${r.stderr.trim()}`);
  return parseIpJson<J[]>(r.stdout);
}

/** Run a command inside the namespace at `path` (read-only uses only). */
export async function inNs(
  path: string,
  cmd: string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(NSENTER, [`--net=${path}`, "--", ...cmd], { env: { PATH: SYSTEM_PATH }, timeoutMs });
}

/** Links of a namespace, with addresses (link-local IPv6 left out) and bridge-port flags. */
export async function links(ns: string): Promise<KLink[]> {
  const [ls, addrs] = await Promise.all([ipJson(ns, ["-d", "link", "show"]), ipJson(ns, ["addr", "show"])]);
  const byName = new Map<string, string[]>();
  for (const a of addrs) {
    const list: string[] = [];
    for (const ai of (a.addr_info as J[] | undefined) ?? []) {
      if (ai.scope === "link" && ai.family === "inet6") continue;
      list.push(`${String(ai.local)}/${String(ai.prefixlen)}`);
    }
    byName.set(String(a.ifname), list);
  }
  return ls.map((l) => {
    const info = (l.linkinfo as J | undefined) ?? {};
    const slave = (info.info_slave_data as J | undefined) ?? {};
    const flags = (l.flags as string[] | undefined) ?? [];
    const k: KLink = {
      name: String(l.ifname),
      kind: typeof info.info_kind === "string" ? info.info_kind : String(l.link_type ?? ""),
      up: flags.includes("UP"),
      mtu: Number(l.mtu),
      mac: String(l.address ?? ""),
      promisc: flags.includes("PROMISC") || Number(l.promiscuity ?? 0) > 0,
      addresses: byName.get(String(l.ifname)) ?? [],
    };
    if (typeof l.master === "string") k.master = l.master;
    if (info.info_slave_kind === "bridge") {
      k.hairpin = slave.hairpin === true;
      k.isolated = slave.isolated === true;
    }
    return k;
  });
}

function metricValue(m: unknown, key: string): number | undefined {
  if (!Array.isArray(m)) return undefined;
  for (const e of m) if (e && typeof e === "object" && key in e) return Number((e as J)[key]);
  return undefined;
}

/** Unicast routes of every table (local/broadcast entries left out), both families. */
export async function routes(ns: string): Promise<KRoute[]> {
  const out: KRoute[] = [];
  for (const family of [4, 6] as const) {
    let list: J[];
    try {
      list = await ipJson(ns, [`-${family}`, "route", "show", "table", "all"]);
    } catch {
      continue;
    }
    for (const r of list) {
      if (r.type !== undefined && r.type !== "unicast") continue;
      const table = r.table === undefined || r.table === "main" ? 254 : r.table === "local" ? 255 : Number(r.table);
      if (table === 255) continue;
      const dst = String(r.dst);
      const kr: KRoute = {
        dst:
          dst === "default"
            ? family === 4
              ? "0.0.0.0/0"
              : "::/0"
            : dst.includes("/")
              ? dst
              : `${dst}/${family === 4 ? 32 : 128}`,
        table,
        family,
      };
      if (typeof r.gateway === "string") kr.gw = r.gateway;
      if (typeof r.dev === "string") kr.dev = r.dev;
      if (r.metric !== undefined) kr.metric = Number(r.metric);
      const mtu = metricValue(r.metrics, "mtu");
      if (mtu !== undefined) kr.mtu = mtu;
      const advmss = metricValue(r.metrics, "advmss");
      if (advmss !== undefined) kr.advmss = advmss;
      if (family === 6 && kr.dst.startsWith("fe80::")) continue;
      out.push(kr);
    }
  }
  return out;
}

/** sysctl values ("net.ipv4.ip_forward" -> "1") read inside the namespace; missing keys are "<absent>". */
export async function sysctls(path: string, keys: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(
    keys.map(async (k) => {
      const r = await inNs(path, ["cat", sysctlFile(k)]);
      out[k] = r.code === 0 ? r.stdout.trim() : "<absent>";
    }),
  );
  return out;
}

/** The node's nat state as text: `iptables-save -t nat`, `ip6tables-save -t nat` and `nft list ruleset`. */
export async function natText(path: string): Promise<string> {
  const parts = await Promise.all(
    [
      ["iptables-save", "-t", "nat"],
      ["ip6tables-save", "-t", "nat"],
      ["nft", "list", "ruleset"],
    ].map((c) =>
      inNs(path, c)
        .then((r) => (r.code === 0 ? r.stdout : ""))
        .catch(() => ""),
    ),
  );
  // iptables-save headers carry a timestamp; drop comments so the text compares across runs.
  return parts
    .join("\n")
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n");
}

/** Number of nat rules and nft set/map elements that mention `ip` (as a /32 or /128 or a bare address). */
export function natMentions(text: string, ip: string): number {
  const re = new RegExp(`(^|[^0-9a-fA-F:.])${ip.replace(/[.]/g, "\\.")}(/(32|128))?(?![0-9a-fA-F:.]|/\\d)`, "m");
  return text.split("\n").filter((l) => re.test(l)).length;
}

/**
 * ping from inside a pod namespace. An expected success is retried (IPv6 gateways may still be tentative and
 * the first packet may wait for ARP); an expected failure is tried once with a 1 s deadline.
 */
export async function ping(fromPath: string, to: string, expectOk = true): Promise<PingResult> {
  const attempts = expectOk ? 5 : 1;
  let last = "";
  for (let i = 0; i < attempts; i++) {
    const r = await inNs(fromPath, pingArgv(to), 5_000);
    last = (r.stdout + r.stderr).trim();
    if (r.code === 0) {
      const rtt = parseRtt(r.stdout);
      return { ok: true, ...(rtt === undefined ? {} : { rttMs: rtt }), output: last };
    }
    if (expectOk) await new Promise((res) => setTimeout(res, 300));
  }
  return { ok: false, output: last };
}

export interface ConnectResult {
  ok: boolean;
  output: string;
}

/**
 * The listener of traffic.ts on `port` in the namespace at `listenPath`, for the duration of one check: a client in
 * `fromPath` sends a token to host:hostPort and must get it back ("TOKEN PROTO"). An expected answer is tried up to
 * 3 times, an expected silence once. The listener is killed before this returns.
 */
export async function connect(
  listenPath: string,
  port: number,
  fromPath: string,
  host: string,
  hostPort: number,
  proto: Proto,
  expectOk = true,
): Promise<ConnectResult> {
  const child = await startListener(listenPath, port);
  try {
    const token = `ctc-${Math.random().toString(36).slice(2, 10)}`;
    let last = "";
    for (let i = 0; i < (expectOk ? 3 : 1); i++) {
      const r = await inNs(fromPath, clientArgv(host, hostPort, proto, token), 10_000);
      const out = r.stdout.trim();
      last = `${out} ${r.stderr.trim().split("\n").slice(-1)[0]}`.trim();
      if (r.code === 0 && out.startsWith(`${token} ${proto} from `)) return { ok: true, output: `${token} ${proto}` };
      if (expectOk) await new Promise((res) => setTimeout(res, 300));
    }
    return { ok: false, output: last };
  } finally {
    stopListener(child);
  }
}
