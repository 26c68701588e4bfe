/**
 * Shared machinery of the reliability suite (test/reliability): the mode (short for `npm test`, full for
 * `npm run soak`), a seeded random source, the figures each test reports, plugin processes that can be killed at a
 * chosen moment and whose memory is sampled while they run, and an exact picture of a "node" (its namespace and its
 * host-local data dir) to compare before and after.
 *
 * Everything runs in namespaces of a BridgeLab (test/integration/bridge-lab.ts): the plugins run inside the lab's
 * node namespace, never in the machine's root namespace.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { nsRun } from "../../sandbox/exec.js";
import { ipj, iptablesSave, nftRuleset } from "../../sandbox/kernel.js";
import {
  type CallOpts,
  type Conf,
  type ProcResult,
  type SpawnOpts as RunOpts,
  spawnInNode,
} from "../../sandbox/plugin.js";
import { afterAll, beforeAll } from "vitest";
import type { BridgeLab } from "../integration/bridge-lab.js";
import { requireBuilt, Sandbox, toolPath } from "../integration/helpers.js";
import { SOAK } from "./report.js";

export { netnsExists } from "../../sandbox/netns.js";
export type { ProcResult } from "../../sandbox/plugin.js";

export { rng } from "./gen.js";
export { report, SEED, SOAK } from "./report.js";

// --- mode, counts, seed ---------------------------------------------------------------------------------------------

function count(name: string, short: number, soak: number): number {
  const v = process.env[`CNI_TS_SOAK_${name}`];
  if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  return SOAK ? soak : short;
}

/** How many of each thing a run does; every one can be overridden with CNI_TS_SOAK_<NAME>=N. */
export const COUNTS = {
  churnCycles: count("CHURN", 60, 1000),
  concurrentPods: count("PODS", 24, 64),
  gcRaceRounds: count("GC_ROUNDS", 2, 6),
  crashAdd: count("CRASH_ADD", 40, 240),
  crashDel: count("CRASH_DEL", 16, 100),
};

/** Per-test timeouts: the soak runs for a long time on purpose. */
export const LONG_TIMEOUT = SOAK ? 4 * 3_600_000 : 150_000;

// --- figures ----------------------------------------------------------------------------------------------------------

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// --- plugin processes ---------------------------------------------------------------------------------------------------

export interface SpawnOpts extends CallOpts, RunOpts {
  /** Which executable of the lab's CNI_PATH (default bridge). */
  plugin?: string;
}

/** The environment a runtime gives `cmd` (the lab's conventions), with overrides. */
export function cniEnv(lab: BridgeLab, cmd: string, o: SpawnOpts): Record<string, string> {
  return lab.env(cmd, o);
}

/**
 * Run one plugin of the lab inside its node namespace (`ip netns exec NODE env -i … PLUGIN`, which execs, so the
 * child's pid is the plugin's), with stdin `input` (a config object, or raw text/bytes), and resolve when it exits.
 */
export function runIn(
  lab: BridgeLab,
  cmd: string,
  input: Conf | string | Buffer,
  o: SpawnOpts = {},
): Promise<ProcResult> {
  const stdin = typeof input === "string" || Buffer.isBuffer(input) ? input : JSON.stringify(input);
  return spawnInNode(lab.node.name, join(lab.bin, o.plugin ?? "bridge"), cniEnv(lab, cmd, o), stdin, o);
}

/** A success that must print nothing (DEL, GC, CHECK). */
export function quietOk(r: ProcResult): boolean {
  return r.status === 0 && r.stdout === "";
}

/** Processes still running in a namespace (`ip netns pids`), with their command lines. */
export function pidsIn(nsName: string): string[] {
  const r = spawnSync("ip", ["netns", "pids", nsName], { encoding: "utf8" });
  return (r.stdout ?? "")
    .split("\n")
    .filter((l) => /^\d+$/.test(l.trim()))
    .map((pid) => {
      try {
        return `${pid.trim()} ${readFileSync(`/proc/${pid.trim()}/cmdline`, "utf8").replace(/\0/g, " ").trim()}`;
      } catch {
        return `${pid.trim()} (gone)`;
      }
    });
}

/** Wait until no process runs in the given namespaces any more (orphans of a killed plugin), at most `ms`. */
export async function waitNoPids(nsNames: readonly string[], ms = 5000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const left = nsNames.flatMap(pidsIn);
    if (left.length === 0 || Date.now() > end) return left;
    await new Promise((r) => setTimeout(r, 10));
  }
}

// --- the state of a node ----------------------------------------------------------------------------------------------

export interface NodeState {
  /** name kind master mtu mac up? per link. */
  links: string[];
  /** "dev addr/prefix" for every address except IPv6 link-local ones (they follow the carrier). */
  addrs: string[];
  /** Every route of every table and both families, except IPv6 link-local and per-device multicast routes. */
  routes: string[];
  /** `nft list ruleset`, counters removed. */
  nft: string;
  /** iptables-save and ip6tables-save of every table, counters and comments removed. */
  ipt: string;
  /** Node sysctls the bridge plugin writes. */
  sysctls: string[];
  /** Files and directories of the data dir, with the content of reservation files (see dataTree). */
  data: string[];
  /** cni-ts's attachment index entries (`<sha> <state>`): tombstones stay until GC (docs/host-local.md). */
  index: string[];
  /** Temporary files of killed writers under `.cni-ts/<net>/tmp`: swept by GC after 60 s. */
  tmp: string[];
}

function links(nsName: string): string[] {
  return ipj<Array<Record<string, any>>>(nsName, "-d", "link", "show")
    .map(
      (l) =>
        `${l.ifname} ${l.linkinfo?.info_kind ?? "-"} master=${l.master ?? "-"} mtu=${l.mtu} mac=${l.address ?? "-"} ${(l.flags as string[]).includes("UP") ? "up" : "down"}`,
    )
    .sort();
}

function addrs(nsName: string): string[] {
  return ipj<Array<Record<string, any>>>(nsName, "addr", "show")
    .flatMap((l) =>
      ((l.addr_info ?? []) as Array<Record<string, any>>)
        .filter((a) => !String(a.local).startsWith("fe80:"))
        .map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`),
    )
    .sort();
}

function routes(nsName: string): string[] {
  const out: string[] = [];
  for (const f of ["-4", "-6"]) {
    for (const r of ipj<Array<Record<string, any>>>(nsName, f, "route", "show", "table", "all")) {
      const dst = String(r.dst);
      if (dst.startsWith("fe80:") || dst === "ff00::/8" || (r.type === "multicast" && f === "-6")) continue;
      out.push(
        `${f} ${r.type ?? "unicast"} ${dst} gw=${r.gateway ?? "-"} dev=${r.dev ?? "-"} table=${r.table ?? "main"} proto=${r.protocol ?? "-"} scope=${r.scope ?? "-"} src=${r.prefsrc ?? "-"}`,
      );
    }
  }
  return out.sort();
}

const SYSCTLS = [
  "net/ipv4/ip_forward",
  "net/ipv6/conf/all/forwarding",
  "net/ipv6/conf/default/accept_ra",
  "net/ipv4/conf/all/rp_filter",
];

function sysctls(nsName: string): string[] {
  const r = nsRun(nsName, "sh", ["-c", SYSCTLS.map((k) => `echo ${k}=$(cat /proc/sys/${k})`).join("; ")]);
  return r.stdout.trim().split("\n");
}

/**
 * The data dir as a list: every directory ("d path/"), every symlink ("l path -> target"), every file with its
 * content ("f path = content") except for files whose content changes by design and carries no ownership:
 * `last_reserved_ip.*` and `.cni-ts/<net>/imported` (listed by name). The `lock` file, which GC creates on first use,
 * is left out. Index entries and tmp files go to their own lists.
 */
export function dataTree(dataDir: string): { data: string[]; index: string[]; tmp: string[] } {
  const data: string[] = [];
  const index: string[] = [];
  const tmp: string[] = [];
  const walk = (rel: string) => {
    const abs = join(dataDir, rel);
    if (!existsSync(abs)) return;
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const full = join(dataDir, p);
      if (e.isSymbolicLink()) data.push(`l ${p} -> ${readlinkSync(full)}`);
      else if (e.isDirectory()) {
        data.push(`d ${p}/`);
        walk(p);
      } else if (/^\.cni-ts\/[^/]+\/attachments\//.test(p)) {
        let state = "unreadable";
        try {
          const j = JSON.parse(readFileSync(full, "utf8")) as {
            state?: string;
            id?: string;
            ifname?: string;
            ips?: string[];
          };
          state = `${j.state} ${j.id}/${j.ifname} [${(j.ips ?? []).join(" ")}]`;
        } catch {
          // listed as unreadable
        }
        index.push(`${e.name.slice(0, 12)} ${state}`);
      } else if (/^\.cni-ts\/[^/]+\/tmp\//.test(p)) tmp.push(p);
      else if (/\/lock$/.test(p) && lstatSync(full).size === 0) continue;
      else if (/\/last_reserved_ip\.\d+$/.test(p) || /^\.cni-ts\/[^/]+\/imported$/.test(p)) data.push(`f ${p}`);
      else data.push(`f ${p} = ${JSON.stringify(readFileSync(full, "utf8"))}`);
    }
  };
  walk("");
  return { data: data.sort(), index: index.sort(), tmp: tmp.sort() };
}

/** Everything of the lab's node that a plugin may change. */
export function nodeState(lab: BridgeLab): NodeState {
  const n = lab.node.name;
  return {
    links: links(n),
    addrs: addrs(n),
    routes: routes(n),
    nft: nftRuleset(n),
    ipt: iptablesSave(n),
    sysctls: sysctls(n),
    ...dataTree(lab.dataDir),
  };
}

/** The differences between two states, one line each ("" when equal). `ignore` names fields left out. */
export function diffState(before: NodeState, after: NodeState, ignore: ReadonlyArray<keyof NodeState> = []): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before) as Array<keyof NodeState>) {
    if (ignore.includes(key)) continue;
    const a = before[key];
    const b = after[key];
    if (typeof a === "string" || typeof b === "string") {
      if (a !== b) {
        const la = String(a).split("\n");
        const lb = String(b).split("\n");
        out.push(
          ...lb.filter((l) => !la.includes(l)).map((l) => `${key} +${l}`),
          ...la.filter((l) => !lb.includes(l)).map((l) => `${key} -${l}`),
        );
        if (out.length === 0) out.push(`${key}: reordered`);
      }
      continue;
    }
    out.push(
      ...b.filter((l) => !a.includes(l)).map((l) => `${key} +${l}`),
      ...a.filter((l) => !b.includes(l)).map((l) => `${key} -${l}`),
    );
  }
  return out;
}

/** Links of a pod namespace other than lo. */
export function podLinks(nsName: string): string[] {
  return ipj<Array<{ ifname: string }>>(nsName, "link", "show")
    .map((l) => l.ifname)
    .filter((n) => n !== "lo");
}

/**
 * The Sandbox of one reliability file, with its hooks: the build must exist before the first test; after the last,
 * the sandbox and the node-tools directory go (helpers.toolPath() makes one per worker, and this file's worker is
 * its only user).
 */
export function fileSandbox(): Sandbox {
  const sb = new Sandbox();
  beforeAll(() => requireBuilt());
  afterAll(() => {
    sb.cleanup();
    rmSync(toolPath(), { recursive: true, force: true });
  });
  return sb;
}
