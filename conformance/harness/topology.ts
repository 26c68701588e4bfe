/**
 * Building a case's topology in the run's sandbox, and removing it: a namespace per node (with its config
 * directory, host-local data directory, result cache and a CniRuntime that runs plugins inside it), with an
 * underlay bridge between the nodes and an outside host when the case needs them, the nodes' routes to each
 * other's pod subnets, and a namespace per pod. Every name carries the run's id and the case number.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { plug, switchIn } from "../../sandbox/topology.js";
import { CniRuntime } from "../runner/index.js";
import type { Attachment, CaseEnv, NodeEnv, PodEnv, RunContext } from "./context.js";
import { NSENTER } from "./kernel.js";
import { ipSync } from "./sandbox.js";
import type { topologyOf } from "./schema.js";

type J = Record<string, unknown>;
type Topology = ReturnType<typeof topologyOf>;

/** The PATH plugins run with (the tools they may start: ip, iptables, nft, ...). */
export const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
/** Node i's addresses on the underlay (uplink0). */
export const UNDERLAY4 = (i: number) => `198.51.100.${10 + i}`;
export const UNDERLAY6 = (i: number) => `2001:db8:100::${(10 + i).toString(16)}`;
/** The outside host's addresses on the underlay. */
export const OUTSIDE4 = "198.51.100.200";
export const OUTSIDE6 = "2001:db8:100::c8";

/** `ip` inside the sandbox's own namespaces only (every call names one with -n). */
export function ipq(args: string[]): void {
  if (args[0] !== "-n") throw new Error("refusing an ip command outside the run's namespaces");
  ipSync(args);
}

/** Write the node's config directory: ${DATA_DIR} substituted, host-local given the run's dataDir if it has none. */
export function prepareConfDir(src: string, dst: string, dataDir: string): void {
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src)) {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${DATA_DIR} is the placeholder written in the case's config files
    let text = readFileSync(join(src, f), "utf8").replaceAll("${DATA_DIR}", dataDir);
    try {
      const raw = JSON.parse(text) as J;
      const plugins = Array.isArray(raw.plugins) ? (raw.plugins as J[]) : [raw];
      let changed = false;
      for (const p of plugins) {
        const ipam = p?.ipam as J | undefined;
        if (ipam && ipam.type === "host-local" && ipam.dataDir === undefined) {
          ipam.dataDir = dataDir;
          changed = true;
        }
      }
      if (changed) text = `${JSON.stringify(raw, null, 2)}\n`;
    } catch {
      // not JSON (a bad-config case): copied as written
    }
    writeFileSync(join(dst, f), text);
  }
}

/** An empty environment for case number `ctx.index`; nothing is created yet. */
export function newCaseEnv(ctx: RunContext): CaseEnv {
  return {
    tmp: join(ctx.sandbox.tmp, `c${ctx.index}`),
    created: [],
    nodes: new Map<string, NodeEnv>(),
    pods: new Map<string, PodEnv>(),
    attachments: new Map<string, Attachment>(),
  };
}

/** A namespace of the case (`<run id>-c<N>-<label>`), recorded for teardown. */
function caseNetns(env: CaseEnv, ctx: RunContext, label: string): { name: string; path: string } {
  const ns = ctx.sandbox.netns(`c${ctx.index}-${label}`);
  env.created.push(ns.name);
  return ns;
}

/** Node namespaces with their files and runtimes; `caseDir` holds each node's source config directory. */
function buildNodes(env: CaseEnv, ctx: RunContext, caseDir: string, topo: Topology): void {
  for (const n of topo.nodes) {
    const ns = caseNetns(env, ctx, `n${n.name}`);
    const base = join(env.tmp, n.name);
    const [confDir, dataDir, cacheDir] = [join(base, "net.d"), join(base, "data"), join(base, "cache")];
    const wrapper = [NSENTER, `--net=${ns.path}`, "--"];
    prepareConfDir(join(caseDir, n.confDir ?? "net.d"), confDir, dataDir);
    const runtime = new CniRuntime({
      cniPath: [ctx.plugins.dir],
      cacheDir,
      wrapper,
      env: { PATH },
      timeoutMs: ctx.timeoutMs ?? 60_000,
    });
    env.nodes.set(n.name, { def: n, ns: ns.name, path: ns.path, confDir, dataDir, cacheDir, runtime, wrapper });
  }
}

/**
 * The underlay: a bridge in its own namespace, every node attached by a veth (uplink0, UNDERLAY4/6(i)), the
 * outside host attached the same way (eth0, OUTSIDE4/6) when the topology has one, then each node's routes to
 * the other nodes' pod subnets via their underlay address.
 */
function buildUnderlay(env: CaseEnv, ctx: RunContext, topo: Topology): void {
  const ul = caseNetns(env, ctx, "ul");
  switchIn(ul.name, "ul0");
  const attach = (port: string, ns: string, ifname: string, v4: string, v6: string) =>
    plug(ul.name, "ul0", port, ns, ifname, [`${v4}/24`, ...(ctx.machine.ipv6 ? [`${v6}/64`] : [])]);
  [...env.nodes.values()].forEach((n, i) => {
    n.underlay4 = UNDERLAY4(i);
    n.underlay6 = UNDERLAY6(i);
    attach(`u${i}`, n.ns, "uplink0", n.underlay4, n.underlay6);
  });
  if (topo.outside) {
    const ext = caseNetns(env, ctx, "ext");
    attach("uext", ext.name, "eth0", OUTSIDE4, OUTSIDE6);
    env.outsidePath = ext.path;
  }
  for (const n of env.nodes.values()) {
    for (const r of n.def.routes ?? []) {
      const via = env.nodes.get(r.via)!;
      const gw = r.dst.includes(":") ? via.underlay6 : via.underlay4;
      ipq(["-n", n.ns, "route", "add", r.dst, "via", gw!]);
    }
  }
}

/**
 * Create the case's namespaces into `env` (nodes, the underlay when there is an outside host or more than one
 * node, then pods). Throws on the first failure; what was created so far is in `env.created` for teardownCase.
 */
export function buildTopology(env: CaseEnv, ctx: RunContext, caseDir: string, topo: Topology): void {
  buildNodes(env, ctx, caseDir, topo);
  if (topo.outside || topo.nodes.length > 1) buildUnderlay(env, ctx, topo);
  for (const p of topo.pods) {
    const ns = caseNetns(env, ctx, `p${p.name}`);
    env.pods.set(p.name, {
      name: p.name,
      node: env.nodes.get(p.node!)!,
      ns: ns.name,
      path: ns.path,
      containerID: `${ctx.sandbox.id}-c${ctx.index}-${p.name}`,
      deleted: false,
    });
  }
}

/** Remove everything the case created: its namespaces (newest first) and its directory. */
export function teardownCase(env: CaseEnv, ctx: RunContext): void {
  for (const n of [...env.created].reverse()) ctx.sandbox.delNetns(n);
  rmSync(env.tmp, { recursive: true, force: true });
}
