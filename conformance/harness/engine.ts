/**
 * Running one case: build its namespaces (nodes, pods, underlay, outside host), run each step the way a runtime on
 * that node would (CniRuntime, plugins executed inside the node namespace), and compare what the plugins answered
 * and what the kernel shows with the case's expectations. Everything the case created is removed in `finally`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { CniError } from "../../lib/errors.js";
import { parseIP } from "../../lib/cidr.js";
import {
  buildRequest,
  cachePath,
  CniRuntime,
  decodeVersionInfo,
  execPlugin,
  findInPath,
  listCache,
  loadConfDir,
  loadConfFile,
  PluginError,
  pluginEnv,
  type NetworkConfigList,
  type RuntimeConf,
  type Verb,
} from "../runner/index.js";
import { caseTypes, unmet, type MachineFeatures, type PluginSet } from "./features.js";
import { connect, links, natMentions, natText, NSENTER, ping, routes, sysctls, type KLink, type KRoute } from "./kernel.js";
import { knownFailure, listedFailure, type KnownDifferences, type KnownFailure } from "./known.js";
import { addressMatches, matchLink, matchResult, matchRoutes, partialMatch, resultAddresses, resultGateway, resultHostVeth, resultMac, showRoute } from "./match.js";
import { ipSync, type RunSandbox } from "./sandbox.js";
import { CONNECT_TO, expectFor, stepLabel, topologyOf, validateCase, type CaseDef, type Expect, type NodeDef, type NsExpect, type StepDef } from "./schema.js";

type J = Record<string, unknown>;

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
export const UNDERLAY4 = (i: number) => `198.51.100.${10 + i}`;
export const UNDERLAY6 = (i: number) => `2001:db8:100::${(10 + i).toString(16)}`;
export const OUTSIDE4 = "198.51.100.200";
export const OUTSIDE6 = "2001:db8:100::c8";

export interface LoadedCase {
  name: string;
  dir: string;
  def: CaseDef;
}

/** The files of each node's config directory (node name -> file names), for validation. */
function confFilesOf(dir: string, def: CaseDef): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const n of topologyOf(def).nodes) {
    try {
      out[n.name] = readdirSync(join(dir, n.confDir ?? "net.d"));
    } catch {
      out[n.name] = [];
    }
  }
  return out;
}

/** Read and validate conformance/cases/NAME; throws with every problem found. */
export function loadCase(dir: string): LoadedCase {
  const file = join(dir, "case.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const def = raw as CaseDef;
  const files = confFilesOf(dir, def);
  const problems = validateCase(raw, files);
  for (const [node, list] of Object.entries(files)) if (list.length === 0) problems.push(`node ${node}: its config directory is empty or missing`);
  if (problems.length > 0) throw new Error(`${file}:\n  ${problems.join("\n  ")}`);
  return { name: basename(dir), dir, def };
}

/** Case directories (those with a case.json) under `casesDir`, sorted. */
export function listCases(casesDir: string): string[] {
  return readdirSync(casesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(casesDir, e.name, "case.json")))
    .map((e) => e.name)
    .sort();
}

export interface Observation {
  ok: boolean;
  code?: number;
  msg?: string;
  runtimeError?: boolean;
  /** The plugin type that failed, when a plugin failed. */
  plugin?: string;
  result?: J;
  version?: { cniVersion?: string; supportedVersions: string[] };
  /** Normalized kernel state after the step (differential mode). */
  kernel?: J;
}

export interface ConnectOutcome {
  listen: string;
  from: string;
  to: string;
  proto: string;
  ok: boolean;
}

export interface PingOutcome {
  from: string;
  to: string;
  address: string;
  ok: boolean;
  rttMs?: number;
}

export type Status = "PASS" | "FAIL" | "SKIP" | "XFAIL";

export interface StepOutcome {
  case: string;
  /** The step label: its name or 1-based number. */
  step: string;
  /** "ADD a", "CHECK a (direct)", ... */
  title: string;
  status: Status;
  reasons: string[];
  ms: number;
  observation?: Observation;
  pings?: PingOutcome[];
  connects?: ConnectOutcome[];
  knownBug?: string;
  known?: KnownFailure;
}

export interface RunContext {
  sandbox: RunSandbox;
  plugins: PluginSet;
  machine: MachineFeatures;
  known: KnownDifferences;
  /** Case number in this run, for unique names. */
  index: number;
  /** Capture normalized kernel state after each step (differential mode). */
  snapshot?: boolean;
  timeoutMs?: number;
  onStep?: (o: StepOutcome) => void;
}

interface NodeEnv {
  def: NodeDef;
  ns: string;
  path: string;
  confDir: string;
  dataDir: string;
  cacheDir: string;
  runtime: CniRuntime;
  wrapper: string[];
  underlay4?: string;
  underlay6?: string;
}

interface PodEnv {
  name: string;
  node: NodeEnv;
  ns: string;
  path: string;
  containerID: string;
  deleted: boolean;
}

interface Attachment {
  pod: PodEnv;
  ifname: string;
  network: string;
  result?: J;
  hostVeth?: string;
}

class SkipCase extends Error {}

/** Write the node's config directory: ${DATA_DIR} substituted, host-local given the run's dataDir if it has none. */
function prepareConfDir(src: string, dst: string, dataDir: string): void {
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src)) {
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
      if (changed) text = JSON.stringify(raw, null, 2) + "\n";
    } catch {
      // not JSON (a bad-config case): copied as written
    }
    writeFileSync(join(dst, f), text);
  }
}

/**
 * The kernel destroys a deleted namespace's devices asynchronously (and with them the host end of the pod's veth):
 * wait until the node no longer shows it, 3 s at most, so that what the step asserts is the settled state.
 */
async function vethGone(nodeNs: string, veth: string | undefined): Promise<void> {
  if (!veth) return;
  for (const deadline = Date.now() + 3000; Date.now() < deadline; ) {
    if (spawnSync("ip", ["-n", nodeNs, "link", "show", "dev", veth], { stdio: "ignore" }).status !== 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `ip` inside the sandbox's own namespaces only (every call names one with -n). */
function ipq(args: string[]): void {
  if (args[0] !== "-n") throw new Error("refusing an ip command outside the run's namespaces");
  ipSync(args);
}

function errorObservation(e: unknown): Observation {
  if (e instanceof PluginError) return { ok: false, code: e.code, msg: e.details ? `${e.msg}; ${e.details}` : e.msg, plugin: e.plugin };
  if (e instanceof CniError) return { ok: false, code: e.code, msg: e.details ? `${e.message}; ${e.details}` : e.message, runtimeError: true };
  if (e instanceof AggregateError) {
    const first = e.errors.map((x) => (x instanceof Error && x.cause instanceof PluginError ? x.cause : x)).find((x) => x instanceof PluginError) as PluginError | undefined;
    return { ok: false, msg: e.message, ...(first ? { code: first.code, plugin: first.plugin } : { runtimeError: true }) };
  }
  return { ok: false, msg: e instanceof Error ? e.message : String(e), runtimeError: true };
}

/** Run one case; one outcome per step, in order. */
export async function runCase(c: LoadedCase, ctx: RunContext): Promise<StepOutcome[]> {
  const { def } = c;
  const topo = topologyOf(def);
  const outcomes: StepOutcome[] = [];
  const impl = ctx.plugins.impl;
  const emit = (o: StepOutcome) => {
    outcomes.push(o);
    ctx.onStep?.(o);
  };
  const titleOf = (s: StepDef) => [s.verb, s.verb === "VERSION" ? `${s.plugin}@${s.cniVersion ?? "1.1.0"}` : s.pod, s.verb === "EXEC" ? `ip ${s.ip!.join(" ")}` : undefined, s.verb === "AGE" ? `${s.seconds} s` : undefined, s.ifname && s.ifname !== "eth0" ? s.ifname : undefined, s.network ? `[${s.network}]` : undefined, s.via === "plugin" ? "(direct)" : undefined].filter(Boolean).join(" ");
  const skipRest = (from: number, reason: string) => {
    def.steps.slice(from).forEach((s, j) => emit({ case: c.name, step: stepLabel(s, from + j), title: titleOf(s), status: "SKIP", reasons: [reason], ms: 0 }));
  };

  const used = caseTypes(topo.nodes.map((n) => join(c.dir, n.confDir ?? "net.d")));
  const caseUnmet = unmet(def.requires ?? [], used, ctx.plugins, ctx.machine);
  if (caseUnmet) {
    skipRest(0, caseUnmet);
    return outcomes;
  }

  const caseTmp = join(ctx.sandbox.tmp, `c${ctx.index}`);
  const created: string[] = [];
  const mk = (label: string) => {
    const ns = ctx.sandbox.netns(`c${ctx.index}-${label}`);
    created.push(ns.name);
    return ns;
  };
  const nodes = new Map<string, NodeEnv>();
  const pods = new Map<string, PodEnv>();
  const attachments = new Map<string, Attachment>();
  let outside = false;
  let outsidePath: string | undefined;

  try {
    // ---- topology
    try {
      topo.nodes.forEach((n) => {
        const ns = mk(`n${n.name}`);
        const base = join(caseTmp, n.name);
        const env: NodeEnv = {
          def: n,
          ns: ns.name,
          path: ns.path,
          confDir: join(base, "net.d"),
          dataDir: join(base, "data"),
          cacheDir: join(base, "cache"),
          wrapper: [NSENTER, `--net=${ns.path}`, "--"],
          runtime: undefined as unknown as CniRuntime,
        };
        prepareConfDir(join(c.dir, n.confDir ?? "net.d"), env.confDir, env.dataDir);
        env.runtime = new CniRuntime({ cniPath: [ctx.plugins.dir], cacheDir: env.cacheDir, wrapper: env.wrapper, env: { PATH }, timeoutMs: ctx.timeoutMs ?? 60_000 });
        nodes.set(n.name, env);
      });
      if (topo.outside || topo.nodes.length > 1) {
        const ul = mk("ul");
        ipq(["-n", ul.name, "link", "add", "ul0", "type", "bridge"]);
        ipq(["-n", ul.name, "link", "set", "ul0", "up"]);
        const attach = (port: string, ns: string, ifname: string, v4: string, v6: string) => {
          ipq(["-n", ul.name, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns]);
          ipq(["-n", ul.name, "link", "set", port, "master", "ul0", "up"]);
          ipq(["-n", ns, "addr", "add", `${v4}/24`, "dev", ifname]);
          if (ctx.machine.ipv6) ipq(["-n", ns, "addr", "add", `${v6}/64`, "dev", ifname, "nodad"]);
          ipq(["-n", ns, "link", "set", ifname, "up"]);
        };
        [...nodes.values()].forEach((n, i) => {
          n.underlay4 = UNDERLAY4(i);
          n.underlay6 = UNDERLAY6(i);
          attach(`u${i}`, n.ns, "uplink0", n.underlay4, n.underlay6);
        });
        if (topo.outside) {
          const ext = mk("ext");
          attach("uext", ext.name, "eth0", OUTSIDE4, OUTSIDE6);
          outside = true;
          outsidePath = ext.path;
        }
        for (const n of nodes.values()) {
          for (const r of n.def.routes ?? []) {
            const via = nodes.get(r.via)!;
            const gw = r.dst.includes(":") ? via.underlay6 : via.underlay4;
            ipq(["-n", n.ns, "route", "add", r.dst, "via", gw!]);
          }
        }
      }
      for (const p of topo.pods) {
        const ns = mk(`p${p.name}`);
        pods.set(p.name, { name: p.name, node: nodes.get(p.node!)!, ns: ns.name, path: ns.path, containerID: `${ctx.sandbox.id}-c${ctx.index}-${p.name}`, deleted: false });
      }
    } catch (e) {
      def.steps.forEach((s, j) => emit({ case: c.name, step: stepLabel(s, j), title: titleOf(s), status: "FAIL", reasons: [`sandbox setup failed: ${(e as Error).message}`], ms: 0 }));
      return outcomes;
    }

    const firstNode = nodes.values().next().value as NodeEnv;
    const loadNet = (node: NodeEnv, network?: string): NetworkConfigList => (network ? loadConfFile(join(node.confDir, network)) : loadConfDir(node.confDir));

    for (let i = 0; i < def.steps.length; i++) {
      const s = def.steps[i]!;
      const label = stepLabel(s, i);
      const title = titleOf(s);
      const stepUnmet = unmet(s.requires ?? [], used, ctx.plugins, ctx.machine);
      if (stepUnmet) {
        emit({ case: c.name, step: label, title, status: "SKIP", reasons: [stepUnmet], ms: 0 });
        continue;
      }
      const t0 = performance.now();
      const expect: Expect = expectFor(s.expect, impl);
      const pod = s.pod ? pods.get(s.pod) : undefined;
      const node = pod?.node ?? (s.node ? nodes.get(s.node)! : firstNode);
      const ifname = s.ifname ?? "eth0";
      const key = pod ? `${pod.name}/${ifname}` : "";
      let obs: Observation = { ok: true };
      let list: NetworkConfigList | undefined;
      const reasons: string[] = [];
      const pings: PingOutcome[] = [];
      const connects: ConnectOutcome[] = [];
      try {
        // ---- the action
        try {
          if (s.verb === "NETNS-DEL") {
            ctx.sandbox.delNetns(pod!.ns);
            pod!.deleted = true;
            await vethGone(node.ns, attachments.get(key)?.hostVeth);
          } else if (s.verb === "CACHE-DROP") {
            list = loadNet(node, s.network);
            rmSync(cachePath(node.cacheDir, list.name, pod!.containerID, ifname), { force: true });
          } else if (s.verb === "AGE") {
            ageTree(node.dataDir, s.seconds! * 1000);
          } else if (s.verb === "EXEC") {
            const veth = attachments.get(key)?.hostVeth;
            const argv = s.ip!.map((a) => (a === "$veth" ? (veth ?? "$veth") : a));
            ipq(["-n", pod && !s.node ? pod.ns : node.ns, ...argv]);
          } else if (s.verb === "ASSERT") {
            try {
              list = loadNet(node, s.network);
            } catch {
              list = undefined;
            }
          } else if (s.verb === "VERSION") {
            const file = findInPath(s.plugin!, [ctx.plugins.dir]);
            const out = await execPlugin(file, Buffer.from(JSON.stringify({ cniVersion: s.cniVersion ?? "1.1.0" })), pluginEnv({ PATH }, { command: "VERSION", path: ctx.plugins.dir }), { plugin: s.plugin!, verb: "VERSION", wrapper: node.wrapper, timeoutMs: 20_000 });
            const info = decodeVersionInfo(out);
            obs = { ok: true, version: { supportedVersions: info.supportedVersions, ...(info.cniVersion ? { cniVersion: info.cniVersion } : {}) } };
          } else {
            list = loadNet(node, s.network);
            if (s.via === "plugin") obs = await direct(s, list, node, pod, ifname, attachments.get(key));
            else obs = await viaRuntime(s, list, node, pod, ifname, pods);
          }
        } catch (e) {
          obs = errorObservation(e);
        }
        if (s.verb === "ADD" && pod && list) {
          const prev = attachments.get(key);
          const a: Attachment = { pod, ifname, network: list.name };
          if (obs.ok && obs.result) {
            a.result = obs.result;
            const hv = resultHostVeth(obs.result);
            if (hv) a.hostVeth = hv;
          } else if (prev) {
            // A failed second ADD keeps what the first one created.
            Object.assign(a, { result: prev.result, hostVeth: prev.hostVeth });
          }
          attachments.set(key, a);
        }
        // "not implemented in this build": the plugin exists but its verbs have not landed.
        if (!obs.ok && obs.plugin && /not implemented/i.test(obs.msg ?? "") && (def.requires ?? []).includes(`plugin:${obs.plugin}`)) {
          throw new SkipCase(`plugin ${obs.plugin} in ${ctx.plugins.dir}: ${obs.msg}`);
        }

        // ---- expectations on the answer
        const wantOk = expect.ok ?? true;
        if (obs.ok !== wantOk) {
          reasons.push(wantOk ? `expected success, got ${obs.runtimeError ? "runtime error" : "error"}${obs.code !== undefined ? ` code ${obs.code}` : ""}: ${obs.msg}` : `expected failure${expect.code !== undefined ? ` code ${expect.code}` : ""}, got success`);
        } else if (!obs.ok) {
          if (expect.code !== undefined && obs.code !== expect.code) reasons.push(`expected code ${expect.code}, got ${obs.code ?? "none"}: ${obs.msg}`);
          if (expect.msg !== undefined && !new RegExp(expect.msg).test(obs.msg ?? "")) reasons.push(`expected message /${expect.msg}/, got: ${obs.msg}`);
          if (expect.runtimeError !== undefined && (obs.runtimeError ?? false) !== expect.runtimeError) reasons.push(expect.runtimeError ? `expected the runtime to refuse before any plugin ran, but plugin ${obs.plugin} failed: ${obs.msg}` : `expected a plugin error, got a runtime error: ${obs.msg}`);
        }
        if (expect.result) {
          if (!obs.result) reasons.push("expected a result, got none");
          else reasons.push(...matchResult(expect.result, obs.result, ifname, pod?.path ?? ""));
        }
        if (expect.version) {
          const v = obs.version;
          if (!v) reasons.push("expected a VERSION answer, got none");
          else {
            if (expect.version.cniVersion !== undefined && v.cniVersion !== expect.version.cniVersion) reasons.push(`VERSION cniVersion: expected ${expect.version.cniVersion}, got ${v.cniVersion}`);
            for (const x of expect.version.supports ?? []) if (!v.supportedVersions.includes(x)) reasons.push(`VERSION supportedVersions lacks ${x}: ${v.supportedVersions.join(", ")}`);
            for (const x of expect.version.lacks ?? []) if (v.supportedVersions.includes(x)) reasons.push(`VERSION supportedVersions has ${x}`);
          }
        }

        // ---- kernel state
        const k = new KernelCache();
        const vethOf = (name: string): string | undefined => {
          const m = /^\$veth(?:\((\w+)\))?$/.exec(name);
          if (!m) return name;
          const p = m[1] ?? s.pod;
          return attachments.get(`${p}/${m[1] ? "eth0" : ifname}`)?.hostVeth;
        };
        const nsCheck = async (want: NsExpect | undefined, ns: string, path: string, where: string, a: Attachment | undefined) => {
          if (!want) return;
          if (want.links || want.absent || want.addresses || want.veths !== undefined) {
            const ls = await k.links(ns);
            for (const l of want.links ?? []) {
              const name = vethOf(l.name);
              if (!name) reasons.push(`${where}: ${l.name} unknown (no ADD result with a host veth)`);
              else reasons.push(...matchLink(l, name, ls, where, resultMac(a?.result, name) ?? (l.name.startsWith("$veth") ? resultMac(attachments.get(`${(/\((\w+)\)/.exec(l.name) ?? [])[1] ?? s.pod}/eth0`)?.result, name) : undefined)));
            }
            for (const n of want.absent ?? []) {
              const name = vethOf(n);
              if (name && ls.some((x) => x.name === name)) reasons.push(`${where}: link ${name} present, expected absent`);
            }
            for (const a2 of want.addresses ?? []) if (!ls.some((l) => l.addresses.some((x) => addressMatches(a2, x)))) reasons.push(`${where}: no address ${a2}`);
            if (want.veths !== undefined) {
              const n = ls.filter((l) => l.kind === "veth" && l.name !== "uplink0").length;
              if (n !== want.veths) reasons.push(`${where}: ${n} veth links, expected ${want.veths} (${ls.filter((l) => l.kind === "veth").map((l) => l.name).join(", ")})`);
            }
          }
          if (want.routes || want.noRoutes) reasons.push(...matchRoutes(want.routes, want.noRoutes, await k.routes(ns), `${where} routes`));
          if (want.sysctls) {
            const got = await sysctls(path, Object.keys(want.sysctls));
            for (const [key2, v] of Object.entries(want.sysctls)) if (got[key2] !== v) reasons.push(`${where}: sysctl ${key2} = ${got[key2]}, expected ${v}`);
          }
        };
        const att = attachments.get(key);
        if (expect.pod) {
          if (!pod) reasons.push("expect.pod needs a step pod");
          else if (pod.deleted) reasons.push(`expect.pod: the namespace of ${pod.name} was deleted`);
          else await nsCheck(expect.pod, pod.ns, pod.path, `pod ${pod.name}`, att);
        }
        for (const [pn, want] of Object.entries(expect.pods ?? {})) {
          const p = pods.get(pn)!;
          if (p.deleted) reasons.push(`expect.pods.${pn}: namespace deleted`);
          else await nsCheck(want, p.ns, p.path, `pod ${pn}`, attachments.get(`${pn}/eth0`));
        }
        if (expect.node) {
          await nsCheck(expect.node, node.ns, node.path, `node ${node.def.name}`, att);
          if (expect.node.nat !== undefined) {
            const ips = resultAddresses(att?.result).map((x) => x.split("/")[0]!);
            if (ips.length === 0) reasons.push(`node nat: no addresses known for ${s.pod ?? "(no pod)"}`);
            const text = await k.nat(node.path);
            for (const ip of ips) {
              const n = natMentions(text, ip);
              if (expect.node.nat && n === 0) reasons.push(`node nat: no rule or element for ${ip}`);
              if (!expect.node.nat && n > 0) reasons.push(`node nat: ${n} rule(s) still mention ${ip}`);
            }
          }
        }
        for (const p of expect.ping ?? []) {
          const from = pods.get(p.from)!;
          const fam = p.family ?? 4;
          const fromAtt = attachments.get(`${p.from}/eth0`);
          let addr: string | undefined;
          if (pods.has(p.to)) addr = resultAddresses(attachments.get(`${p.to}/eth0`)?.result).map((x) => x.split("/")[0]!).find((x) => (x.includes(":") ? 6 : 4) === fam);
          else if (p.to === "gateway") addr = resultGateway(fromAtt?.result, fam);
          else if (p.to === "outside") addr = outside ? (fam === 4 ? OUTSIDE4 : OUTSIDE6) : undefined;
          else if (p.to === "node") addr = fam === 4 ? from.node.underlay4 : from.node.underlay6;
          else if (parseIP(p.to)) addr = p.to;
          if (!addr) {
            reasons.push(`ping ${p.from} -> ${p.to}: no IPv${fam} address known for ${p.to}`);
            continue;
          }
          const wantOk2 = p.ok ?? true;
          const r = await ping(from.path, addr, wantOk2);
          pings.push({ from: p.from, to: p.to, address: addr, ok: r.ok, ...(r.rttMs !== undefined ? { rttMs: r.rttMs } : {}) });
          if (r.ok !== wantOk2) reasons.push(`ping ${p.from} -> ${p.to} (${addr}): ${r.ok ? "answered, expected no answer" : `no answer (${r.output.split("\n").slice(-2).join(" / ")})`}`);
        }
        for (const cx of expect.connect ?? []) {
          const lp = pods.get(cx.listen)!;
          const what = `connect ${cx.proto} ${cx.from} -> ${cx.to} (listener in ${cx.listen}:${cx.port})`;
          if (lp.deleted) {
            reasons.push(`${what}: the namespace of ${cx.listen} was deleted`);
            continue;
          }
          const fromPath = cx.from === "outside" ? outsidePath : cx.from === "node" ? lp.node.path : pods.get(cx.from)?.path;
          const m = CONNECT_TO.exec(cx.to)!;
          const host = m[1] === "node" ? ((cx.family ?? 4) === 4 ? lp.node.underlay4 : lp.node.underlay6) : m[1]!.replace(/^\[|\]$/g, "");
          if (!fromPath || !host) {
            reasons.push(`${what}: ${!fromPath ? `no namespace for ${cx.from} (outside needs topology.outside)` : "the node has no underlay address (needs topology.outside or two nodes)"}`);
            continue;
          }
          const wantOk3 = cx.ok ?? true;
          const r = await connect(lp.path, cx.port, fromPath, host, Number(m[2]), cx.proto, wantOk3);
          connects.push({ listen: cx.listen, from: cx.from, to: `${host.includes(":") ? `[${host}]` : host}:${m[2]}`, proto: cx.proto, ok: r.ok });
          if (r.ok !== wantOk3) reasons.push(`${what} [${host}]: ${r.ok ? "answered, expected no answer" : `no answer (${r.output || "nothing"})`}`);
        }
        for (const pn of expect.gone ? (expect.goneFor ?? (s.pod ? [s.pod] : [])) : []) {
          const g = expect.gone!;
          const a = attachments.get(`${pn}/${pn === s.pod ? ifname : "eth0"}`);
          const p = pods.get(pn)!;
          if (!a) {
            reasons.push(`gone: ${pn} was never ADDed`);
            continue;
          }
          if (g.veth) {
            if (!a.hostVeth) reasons.push(`gone.veth: no host veth known for ${pn} (use node.veths)`);
            else if ((await k.links(p.node.ns)).some((l) => l.name === a.hostVeth)) reasons.push(`gone.veth: ${a.hostVeth} of ${pn} still on node ${p.node.def.name}`);
          }
          if (g.podIf && !p.deleted && (await k.links(p.ns)).some((l) => l.name === a.ifname)) reasons.push(`gone.podIf: ${a.ifname} still in pod ${pn}`);
          if (g.reservations) {
            const held = reservations(p.node.dataDir, a.network).filter((r) => r.owner === p.containerID);
            if (held.length > 0) reasons.push(`gone.reservations: ${held.map((r) => r.ip).join(", ")} still reserved for ${pn}`);
          }
          if (g.cache && existsSync(cachePath(p.node.cacheDir, a.network, p.containerID, a.ifname))) reasons.push(`gone.cache: result cache of ${pn} still present`);
          if (g.nat) {
            const text = await k.nat(p.node.path);
            for (const ip of resultAddresses(a.result).map((x) => x.split("/")[0]!)) {
              const n = natMentions(text, ip);
              if (n > 0) reasons.push(`gone.nat: ${n} nat rule(s)/element(s) still mention ${ip} of ${pn}`);
            }
          }
        }
        if (expect.reservations !== undefined) {
          const name = list?.name ?? att?.network;
          const n = name ? reservations(node.dataDir, name).length : 0;
          if (n !== expect.reservations) reasons.push(`reservations: ${n} in ${node.dataDir}/${name}, expected ${expect.reservations}`);
        }
        if (expect.cacheEntries !== undefined) {
          const n = listCache(node.cacheDir).length;
          if (n !== expect.cacheEntries) reasons.push(`cache: ${n} entries, expected ${expect.cacheEntries}`);
        }
        if (ctx.snapshot && s.verb !== "VERSION") obs.kernel = await snapshotState(k, node, pod);
      } catch (e) {
        if (e instanceof SkipCase) {
          skipRest(i, e.message);
          return outcomes;
        }
        reasons.push(`harness error: ${(e as Error).stack ?? String(e)}`);
      }
      const ms = Math.round(performance.now() - t0);
      const knownBug = s.knownBug ?? def.knownBug;
      const o: StepOutcome = { case: c.name, step: label, title, status: reasons.length === 0 ? "PASS" : "FAIL", reasons, ms, observation: obs, ...(pings.length ? { pings } : {}), ...(connects.length ? { connects } : {}), ...(knownBug && reasons.length ? { knownBug } : {}) };
      if (o.status === "FAIL") {
        const kf = knownFailure(ctx.known, impl, c.name, label, reasons.join("\n"));
        if (kf) Object.assign(o, { status: "XFAIL", known: kf });
      } else {
        const listed = listedFailure(ctx.known, impl, c.name, label);
        if (listed) {
          o.status = "FAIL";
          o.reasons = [`known-differences.json lists this step as failing for ${impl} ("${listed.reason}"), but it passed: remove the entry`];
        }
      }
      emit(o);
    }
    return outcomes;
  } finally {
    for (const n of created.reverse()) ctx.sandbox.delNetns(n);
    rmSync(caseTmp, { recursive: true, force: true });
  }

  // ---- verbs through the runtime, as libcni would run them
  async function viaRuntime(s: StepDef, list: NetworkConfigList, node: NodeEnv, pod: PodEnv | undefined, ifname: string, allPods: Map<string, PodEnv>): Promise<Observation> {
    const rt = (): RuntimeConf => ({ containerID: pod!.containerID, netns: s.netns ?? pod!.path, ifname, ...(s.args ? { args: s.args } : {}), ...(s.capabilityArgs ? { capabilityArgs: s.capabilityArgs } : {}) });
    switch (s.verb) {
      case "ADD":
        return { ok: true, result: await node.runtime.addNetworkList(list, rt()) };
      case "CHECK":
        await node.runtime.checkNetworkList(list, rt());
        return { ok: true };
      case "DEL":
        await node.runtime.delNetworkList(list, rt());
        return { ok: true };
      case "GC": {
        const valid = s.valid?.map((v) => {
          const name = typeof v === "string" ? v : v.pod;
          return { containerID: allPods.get(name)!.containerID, ifname: typeof v === "string" ? "eth0" : (v.ifname ?? "eth0") };
        });
        await node.runtime.gcNetworkList(list, valid);
        return { ok: true };
      }
      case "STATUS":
        await node.runtime.getStatusNetworkList(list);
        return { ok: true };
      default:
        throw new Error(`verb ${s.verb} cannot go through the runtime`);
    }
  }

  // ---- one plugin executed directly with the request libcni would build (no runtime gates)
  async function direct(s: StepDef, list: NetworkConfigList, node: NodeEnv, pod: PodEnv | undefined, ifname: string, a: Attachment | undefined): Promise<Observation> {
    const plugin = (s.plugin ? list.plugins.find((p) => p.type === s.plugin) : list.plugins[0]) ?? list.plugins[0]!;
    const type = String(plugin.type ?? "");
    const verb = s.verb as Verb;
    const inject: J = { name: list.name, cniVersion: s.cniVersion ?? list.cniVersion };
    if ((verb === "CHECK" || verb === "DEL") && a?.result) inject.prevResult = a.result;
    if (verb === "GC") {
      const valid = (s.valid ?? []).map((v) => ({ containerID: pods.get(typeof v === "string" ? v : v.pod)!.containerID, ifname: typeof v === "string" ? "eth0" : (v.ifname ?? "eth0") }));
      inject["cni.dev/valid-attachments"] = valid;
      inject["cni.dev/attachments"] = valid;
    }
    const stdin = buildRequest(plugin, inject, verb === "GC" || verb === "STATUS" ? undefined : (s.capabilityArgs ?? {}));
    const file = findInPath(type, [ctx.plugins.dir]);
    const params = pod && verb !== "GC" && verb !== "STATUS" ? { containerID: pod.containerID, netns: s.netns ?? pod.path, ifname, args: s.args ?? [] } : {};
    const out = await execPlugin(file, stdin, pluginEnv({ PATH }, { command: verb, path: ctx.plugins.dir, ...params }), { plugin: type, verb, wrapper: node.wrapper, timeoutMs: ctx.timeoutMs ?? 60_000 });
    if (verb === "ADD") return { ok: true, result: JSON.parse(out) as J };
    return { ok: true };
  }
}

/** Per-step memo of kernel reads (a step's checks read each namespace once). */
class KernelCache {
  private readonly l = new Map<string, Promise<KLink[]>>();
  private readonly r = new Map<string, Promise<KRoute[]>>();
  private readonly n = new Map<string, Promise<string>>();
  links(ns: string): Promise<KLink[]> {
    if (!this.l.has(ns)) this.l.set(ns, links(ns));
    return this.l.get(ns)!;
  }
  routes(ns: string): Promise<KRoute[]> {
    if (!this.r.has(ns)) this.r.set(ns, routes(ns));
    return this.r.get(ns)!;
  }
  nat(path: string): Promise<string> {
    if (!this.n.has(path)) this.n.set(path, natText(path));
    return this.n.get(path)!;
  }
}

/** The AGE action: every file and directory under `dir` (symlinks untouched) changed `ms` earlier than it says. */
function ageTree(dir: string, ms: number): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) ageTree(p, ms);
    utimesSync(p, new Date(st.atimeMs - ms), new Date(st.mtimeMs - ms));
  }
}

/** host-local reservation files (named by an IP) in `<dataDir>/<network>`, with their owner container ID. */
export function reservations(dataDir: string, network: string): Array<{ ip: string; owner: string }> {
  const dir = join(dataDir, network);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ ip: string; owner: string }> = [];
  for (const n of names) {
    if (!parseIP(n.replaceAll("_", ":"))) continue;
    let owner = "";
    try {
      owner = readFileSync(join(dir, n), "utf8").split(/\r?\n/)[0]!.trim();
    } catch {
      // vanished meanwhile
    }
    out.push({ ip: n, owner });
  }
  return out;
}

/**
 * Normalized kernel state for differential comparison: links keyed by name (veths, whose names are random per
 * run, grouped under "veth*"), each link one compact string, routes as sorted text.
 */
async function snapshotState(k: KernelCache, node: NodeEnv, pod: PodEnv | undefined): Promise<J> {
  const show = (l: KLink) => [l.kind, l.up ? "up" : "down", `mtu ${l.mtu}`, l.master ? `master ${l.master}` : "", l.hairpin ? "hairpin" : "", l.promisc ? "promisc" : "", l.addresses.length ? `addr ${[...l.addresses].sort().join(",")}` : ""].filter(Boolean).join(" ");
  const norm = (ls: KLink[]) => {
    const out: J = {};
    const veths: string[] = [];
    for (const l of ls) {
      if (l.name === "lo" || l.name === "uplink0") continue;
      if (l.name.startsWith("veth")) veths.push(show(l));
      else out[l.name] = show(l);
    }
    if (veths.length) out["veth*"] = veths.sort().join(" | ");
    return out;
  };
  const rts = (rs: KRoute[]) => rs.map((r) => showRoute({ ...r, dev: r.dev?.startsWith("veth") ? "veth*" : r.dev } as KRoute)).sort().join(" | ");
  const out: J = { node: { links: norm(await k.links(node.ns)), routes: rts(await k.routes(node.ns)) } };
  if (pod && !pod.deleted) out.pod = { links: norm(await k.links(pod.ns)), routes: rts(await k.routes(pod.ns)) };
  return out;
}

export { partialMatch };
