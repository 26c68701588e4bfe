/**
 * The conformance case format: one directory per case under conformance/cases/NAME/ with
 *   - `net.d/`     the network configuration directory of the (default) node, read like a runtime reads
 *                  /etc/cni/net.d (go-cni: the lexicographically first .conf/.conflist/.json is the network);
 *   - `case.json`  what to run and what must be observed, validated by `validateCase` below.
 * The full description with examples is docs/conformance.md; this module is the schema and needs no root.
 */
import type { KRoute } from "../../sandbox/kernel-async.js";

/** The CNI verbs a step can send. */
export const VERBS = ["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"] as const;
/** Harness actions: not CNI calls, things the environment does between them. */
export const ACTIONS = ["NETNS-DEL", "CACHE-DROP", "EXEC", "AGE", "ASSERT"] as const;
export type StepVerb = (typeof VERBS)[number] | (typeof ACTIONS)[number];

/** Requirement words a case or step may list; anything else is a schema error. */
export const REQUIREMENT =
  /^(spec:(0\.1\.0|0\.2\.0|0\.3\.0|0\.3\.1|0\.4\.0|1\.0\.0|1\.1\.0)|verb:(GC|STATUS)|plugin:[a-z0-9][a-z0-9._-]*|tool:(nft|iptables|python3)|ipv6|impl:[a-z0-9-]+)$/;

/** An address expectation: "10.1.0.2/24" exactly, or "in 10.1.0.0/24" (inside that subnet, with that prefix). */
export type AddressPattern = string;

export interface IpExpect {
  address: AddressPattern;
  gateway?: string;
  interface?: number;
  /** "4"/"6" (0.3.x/0.4.0 results), or "none": the field must be absent (1.0.0+). */
  version?: "4" | "6" | "none";
}

export interface RouteExpect {
  dst: string;
  /** null: the route must have no gw. Absent: not compared. */
  gw?: string | null;
}

export interface ResultExpect {
  cniVersion?: string;
  /** Number of interfaces, or one regex per interface name, in order. */
  interfaces?: number | string[];
  /** Exactly these ips, in order. */
  ips?: IpExpect[];
  /** Exactly these routes, in any order. */
  routes?: RouteExpect[];
  /** Top-level keys that must be present / absent. */
  has?: string[];
  lacks?: string[];
  /** Deep partial match against the result JSON (arrays compared element-wise, extra keys allowed). */
  json?: Record<string, unknown>;
  /** The interface named CNI_IFNAME has `sandbox` equal to the pod's netns path. */
  sandbox?: boolean;
}

export interface LinkExpect {
  /** A link name, "$veth" (host veth of the step's pod, from its ADD result) or "$veth(pod)". */
  name: string;
  kind?: string;
  up?: boolean;
  mtu?: number;
  master?: string;
  hairpin?: boolean;
  isolated?: boolean;
  promisc?: boolean;
  /** Address patterns that must all be on the link ("10.1.0.1/24", "in 10.1.0.0/24"). */
  addresses?: AddressPattern[];
  /** The link's MAC equals the one the ADD result gave it. */
  macFromResult?: boolean;
  /** The link's MAC, exactly (lower case). */
  mac?: string;
}

/** A route the kernel must hold: the fields of a read route (sandbox/kernel-async.ts) that are given must match. */
export interface KernelRouteExpect extends Partial<Pick<KRoute, "gw" | "dev" | "mtu" | "advmss" | "metric" | "table">> {
  /** "default", "::/0" is also "default", or a CIDR. */
  dst: string;
}

export interface NsExpect {
  links?: LinkExpect[];
  /** Link names that must not exist ("$veth" allowed). */
  absent?: string[];
  /** Address patterns that must be present on some link. */
  addresses?: AddressPattern[];
  routes?: KernelRouteExpect[];
  noRoutes?: KernelRouteExpect[];
  sysctls?: Record<string, string>;
  /** Exact number of veth links in the namespace. */
  veths?: number;
}

export interface NodeExpect extends NsExpect {
  /** nat: the pod's addresses appear (true) / do not appear (false) in the node's iptables nat table or nft ruleset. */
  nat?: boolean;
}

export interface PingExpect {
  from: string;
  /** A pod name, "gateway", "outside", "node" (the pod's node on the underlay), or an address. */
  to: string;
  family?: 4 | 6;
  /** Default true. */
  ok?: boolean;
}

/** `to` of a connect check: "node:PORT" (the listener pod's node on the underlay), "A.B.C.D:PORT" or "[V6]:PORT". */
export const CONNECT_TO = /^(node|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/;

export interface ConnectExpect {
  /** The pod whose namespace runs a python3 listener (TCP and UDP, dual-stack) for the duration of the check. */
  listen: string;
  /** The port the listener binds in the pod (a mapping's containerPort). */
  port: number;
  /** Where the client runs: a pod name, "outside" (the outside host) or "node" (the listener pod's node). */
  from: string;
  /** "node:PORT" (the listener pod's node address on the underlay, of `family`), "A.B.C.D:PORT" or "[V6]:PORT". */
  to: string;
  proto: "tcp" | "udp";
  /** The family of "node:PORT" (default 4). */
  family?: 4 | 6;
  /** The client gets its token back from the listener (default true). */
  ok?: boolean;
}

export interface GoneExpect {
  /** The host veth of the step's pod (from its last ADD result) is gone from the node. */
  veth?: boolean;
  /** The pod interface is gone from the pod namespace (if that namespace still exists). */
  podIf?: boolean;
  /** No reservation file of the attachment's container ID is left in the host-local dataDir. */
  reservations?: boolean;
  /** The runtime's result cache file of the attachment is gone. */
  cache?: boolean;
  /** No nat rule/element mentions the attachment's addresses. */
  nat?: boolean;
}

export interface Expect {
  /** The call succeeds (default true). */
  ok?: boolean;
  /** The error code the plugin reported. */
  code?: number;
  /** Regex the error message (msg; details) must match. */
  msg?: string;
  /** The failure comes from the runtime before any plugin ran (no plugin error object). */
  runtimeError?: boolean;
  result?: ResultExpect;
  /** VERSION answers. */
  version?: { cniVersion?: string; supports?: string[]; lacks?: string[] };
  /** State in the step's pod namespace. */
  pod?: NsExpect;
  /** State in named pods' namespaces. */
  pods?: Record<string, NsExpect>;
  /** State in the step's node namespace. */
  node?: NodeExpect;
  ping?: PingExpect[];
  /** Connections through a port (a hostPort) to a listener in a pod; needs `tool:python3`. */
  connect?: ConnectExpect[];
  /** What must be gone (after DEL / GC) for the step's pod, or for each listed pod. */
  gone?: GoneExpect;
  goneFor?: string[];
  /** Number of host-local reservation files (IP-named files) in the dataDir of the step's network. */
  reservations?: number;
  /** Number of result cache files of the node's runtime. */
  cacheEntries?: number;
  /** Per-implementation overrides ("reference", "cni-ts"), merged key by key over this object. */
  byImpl?: Record<string, Omit<Expect, "byImpl">>;
}

export interface StepDef {
  verb: StepVerb;
  /** Optional label used in output and in known-differences.json (default: the 1-based step number). */
  name?: string;
  pod?: string;
  ifname?: string;
  /** A file in the node's net.d to load instead of the default network (the first file). */
  network?: string;
  /** Node for GC/STATUS/VERSION steps without a pod (default: the first node). */
  node?: string;
  /** runtime (default): through CniRuntime as libcni would. plugin: exec one plugin directly, no runtime checks. */
  via?: "runtime" | "plugin";
  /** VERSION and via=plugin: the plugin type (default: the first plugin of the network). */
  plugin?: string;
  /** VERSION: the cniVersion sent on stdin. via=plugin: the request's cniVersion is replaced by this. */
  cniVersion?: string;
  /** CNI_NETNS sent instead of the pod's namespace path ("" = none, as nerdctl/ctr send on DEL). */
  netns?: string;
  /** CNI_ARGS pairs. */
  args?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  /** GC: the valid attachments, as pod names or {pod, ifname}. Absent: GC with no list (libcni: DEL all cached). */
  valid?: Array<string | { pod: string; ifname?: string }>;
  /**
   * EXEC: an `ip` command run inside the step's pod namespace, or the node's when `node` is given (or there is no
   * pod); the word "$veth" is replaced by the pod's host veth. Used to break what CHECK must notice.
   */
  ip?: string[];
  /**
   * AGE: time passes for what the plugins keep on disk: every file and directory under the node's data dir gets its
   * mtime moved back this many seconds (a GC after it sees attachments that old, without the case waiting).
   */
  seconds?: number;
  /** Requirements for this step only. */
  requires?: string[];
  expect?: Expect;
  /** A bug in cni-ts this step exposes: the step still fails, and the text is printed with the failure. */
  knownBug?: string;
}

export interface NodeDef {
  name: string;
  /** net.d directory of this node, relative to the case directory (default "net.d"). */
  confDir?: string;
  /** Routes on the node to other nodes' pod subnets via their underlay address: {dst, via: nodeName}. */
  routes?: Array<{ dst: string; via: string }>;
}

export interface PodDef {
  name: string;
  node?: string;
}

export interface CaseDef {
  description: string;
  requires?: string[];
  topology?: {
    nodes?: Array<string | NodeDef>;
    pods?: Array<string | PodDef>;
    /** An "outside" host on the underlay (198.51.100.200, 2001:db8:100::200), reached through the node. */
    outside?: boolean;
  };
  steps: StepDef[];
  /** A bug in cni-ts this case exposes (see StepDef.knownBug). */
  knownBug?: string;
}

/* ---------------------------------------------------------------- validation ---------------------------------- */

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

class Checker {
  readonly errors: string[] = [];
  err(path: string, msg: string): void {
    this.errors.push(`${path}: ${msg}`);
  }
  keys(path: string, o: Json, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.err(`${path}.${k}`, "unknown key");
  }
  str(path: string, v: unknown, opt = true): void {
    if (v === undefined ? !opt : typeof v !== "string") this.err(path, "must be a string");
  }
  bool(path: string, v: unknown): void {
    if (v !== undefined && typeof v !== "boolean") this.err(path, "must be a boolean");
  }
  num(path: string, v: unknown): void {
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v))) this.err(path, "must be an integer");
  }
  strs(path: string, v: unknown): void {
    if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== "string")))
      this.err(path, "must be an array of strings");
  }
  regex(path: string, v: unknown): void {
    if (v === undefined) return;
    if (typeof v !== "string") {
      this.err(path, "must be a regex string");
      return;
    }
    try {
      new RegExp(v);
    } catch (e) {
      this.err(path, `bad regex: ${(e as Error).message}`);
    }
  }
  address(path: string, v: unknown): void {
    if (typeof v !== "string" || !/^(in )?[0-9a-fA-F.:]+\/\d{1,3}$/.test(v))
      this.err(path, 'must be "A/N" or "in NET/N"');
  }
  requires(path: string, v: unknown): void {
    this.strs(path, v);
    if (Array.isArray(v))
      v.forEach((r, i) => {
        if (typeof r === "string" && !REQUIREMENT.test(r))
          this.err(`${path}[${i}]`, `unknown requirement ${JSON.stringify(r)}`);
      });
  }
}

function checkNs(c: Checker, path: string, v: unknown, node: boolean): void {
  if (v === undefined) return;
  if (!isObj(v)) {
    c.err(path, "must be an object");
    return;
  }
  c.keys(path, v, ["links", "absent", "addresses", "routes", "noRoutes", "sysctls", "veths", ...(node ? ["nat"] : [])]);
  if (v.links !== undefined) {
    if (!Array.isArray(v.links)) c.err(`${path}.links`, "must be an array");
    else
      v.links.forEach((l, i) => {
        const p = `${path}.links[${i}]`;
        if (!isObj(l)) {
          c.err(p, "must be an object");
          return;
        }
        c.keys(p, l, [
          "name",
          "kind",
          "up",
          "mtu",
          "master",
          "hairpin",
          "isolated",
          "promisc",
          "addresses",
          "macFromResult",
          "mac",
        ]);
        c.str(`${p}.mac`, l.mac);
        c.str(`${p}.name`, l.name, false);
        c.str(`${p}.kind`, l.kind);
        c.str(`${p}.master`, l.master);
        for (const b of ["up", "hairpin", "isolated", "promisc", "macFromResult"]) c.bool(`${p}.${b}`, l[b]);
        c.num(`${p}.mtu`, l.mtu);
        if (l.addresses !== undefined) {
          if (!Array.isArray(l.addresses)) c.err(`${p}.addresses`, "must be an array");
          else
            l.addresses.forEach((a, j) => {
              c.address(`${p}.addresses[${j}]`, a);
            });
        }
      });
  }
  c.strs(`${path}.absent`, v.absent);
  if (v.addresses !== undefined) {
    if (!Array.isArray(v.addresses)) c.err(`${path}.addresses`, "must be an array");
    else
      v.addresses.forEach((a, j) => {
        c.address(`${path}.addresses[${j}]`, a);
      });
  }
  for (const key of ["routes", "noRoutes"]) {
    const rs = v[key];
    if (rs === undefined) continue;
    if (!Array.isArray(rs)) {
      c.err(`${path}.${key}`, "must be an array");
      continue;
    }
    rs.forEach((r, i) => {
      const p = `${path}.${key}[${i}]`;
      if (!isObj(r)) {
        c.err(p, "must be an object");
        return;
      }
      c.keys(p, r, ["dst", "gw", "dev", "mtu", "advmss", "metric", "table"]);
      c.str(`${p}.dst`, r.dst, false);
      c.str(`${p}.gw`, r.gw);
      c.str(`${p}.dev`, r.dev);
      for (const n of ["mtu", "advmss", "metric", "table"]) c.num(`${p}.${n}`, r[n]);
    });
  }
  if (v.sysctls !== undefined && (!isObj(v.sysctls) || Object.values(v.sysctls).some((x) => typeof x !== "string")))
    c.err(`${path}.sysctls`, "must map names to strings");
  c.num(`${path}.veths`, v.veths);
  if (node) c.bool(`${path}.nat`, v.nat);
}

function checkResult(c: Checker, path: string, v: unknown): void {
  if (v === undefined) return;
  if (!isObj(v)) {
    c.err(path, "must be an object");
    return;
  }
  c.keys(path, v, ["cniVersion", "interfaces", "ips", "routes", "has", "lacks", "json", "sandbox"]);
  c.str(`${path}.cniVersion`, v.cniVersion);
  if (v.interfaces !== undefined && typeof v.interfaces !== "number") {
    c.strs(`${path}.interfaces`, v.interfaces);
    if (Array.isArray(v.interfaces))
      v.interfaces.forEach((r, i) => {
        c.regex(`${path}.interfaces[${i}]`, r);
      });
  }
  if (v.ips !== undefined) {
    if (!Array.isArray(v.ips)) c.err(`${path}.ips`, "must be an array");
    else
      v.ips.forEach((ip, i) => {
        const p = `${path}.ips[${i}]`;
        if (!isObj(ip)) {
          c.err(p, "must be an object");
          return;
        }
        c.keys(p, ip, ["address", "gateway", "interface", "version"]);
        c.address(`${p}.address`, ip.address);
        c.str(`${p}.gateway`, ip.gateway);
        c.num(`${p}.interface`, ip.interface);
        if (ip.version !== undefined && ip.version !== "4" && ip.version !== "6" && ip.version !== "none")
          c.err(`${p}.version`, 'must be "4", "6" or "none"');
      });
  }
  if (v.routes !== undefined) {
    if (!Array.isArray(v.routes)) c.err(`${path}.routes`, "must be an array");
    else
      v.routes.forEach((r, i) => {
        const p = `${path}.routes[${i}]`;
        if (!isObj(r)) {
          c.err(p, "must be an object");
          return;
        }
        c.keys(p, r, ["dst", "gw"]);
        c.str(`${p}.dst`, r.dst, false);
        if (r.gw !== undefined && r.gw !== null && typeof r.gw !== "string")
          c.err(`${p}.gw`, "must be a string or null");
      });
  }
  c.strs(`${path}.has`, v.has);
  c.strs(`${path}.lacks`, v.lacks);
  if (v.json !== undefined && !isObj(v.json)) c.err(`${path}.json`, "must be an object");
  c.bool(`${path}.sandbox`, v.sandbox);
}

const EXPECT_KEYS = [
  "ok",
  "code",
  "msg",
  "runtimeError",
  "result",
  "version",
  "pod",
  "pods",
  "node",
  "ping",
  "connect",
  "gone",
  "goneFor",
  "reservations",
  "cacheEntries",
  "byImpl",
];

function checkExpect(c: Checker, path: string, v: unknown, pods: Set<string>, top = true): void {
  if (v === undefined) return;
  if (!isObj(v)) {
    c.err(path, "must be an object");
    return;
  }
  c.keys(path, v, top ? EXPECT_KEYS : EXPECT_KEYS.filter((k) => k !== "byImpl"));
  c.bool(`${path}.ok`, v.ok);
  c.num(`${path}.code`, v.code);
  c.regex(`${path}.msg`, v.msg);
  c.bool(`${path}.runtimeError`, v.runtimeError);
  checkResult(c, `${path}.result`, v.result);
  if (v.version !== undefined) {
    if (!isObj(v.version)) c.err(`${path}.version`, "must be an object");
    else {
      c.keys(`${path}.version`, v.version, ["cniVersion", "supports", "lacks"]);
      c.str(`${path}.version.cniVersion`, v.version.cniVersion);
      c.strs(`${path}.version.supports`, v.version.supports);
      c.strs(`${path}.version.lacks`, v.version.lacks);
    }
  }
  checkNs(c, `${path}.pod`, v.pod, false);
  if (v.pods !== undefined) {
    if (!isObj(v.pods)) c.err(`${path}.pods`, "must be an object");
    else
      for (const [name, ns] of Object.entries(v.pods)) {
        if (!pods.has(name)) c.err(`${path}.pods.${name}`, "unknown pod");
        checkNs(c, `${path}.pods.${name}`, ns, false);
      }
  }
  checkNs(c, `${path}.node`, v.node, true);
  if (v.ping !== undefined) {
    if (!Array.isArray(v.ping)) c.err(`${path}.ping`, "must be an array");
    else
      v.ping.forEach((p, i) => {
        const pp = `${path}.ping[${i}]`;
        if (!isObj(p)) {
          c.err(pp, "must be an object");
          return;
        }
        c.keys(pp, p, ["from", "to", "family", "ok"]);
        c.str(`${pp}.from`, p.from, false);
        c.str(`${pp}.to`, p.to, false);
        if (typeof p.from === "string" && !pods.has(p.from)) c.err(`${pp}.from`, `unknown pod ${p.from}`);
        if (p.family !== undefined && p.family !== 4 && p.family !== 6) c.err(`${pp}.family`, "must be 4 or 6");
        c.bool(`${pp}.ok`, p.ok);
      });
  }
  if (v.connect !== undefined) {
    if (!Array.isArray(v.connect)) c.err(`${path}.connect`, "must be an array");
    else
      v.connect.forEach((x, i) => {
        const pp = `${path}.connect[${i}]`;
        if (!isObj(x)) {
          c.err(pp, "must be an object");
          return;
        }
        c.keys(pp, x, ["listen", "port", "from", "to", "proto", "family", "ok"]);
        c.str(`${pp}.listen`, x.listen, false);
        if (typeof x.listen === "string" && !pods.has(x.listen)) c.err(`${pp}.listen`, `unknown pod ${x.listen}`);
        if (typeof x.port !== "number" || !Number.isInteger(x.port) || x.port < 1 || x.port > 65535)
          c.err(`${pp}.port`, "must be a port (1-65535)");
        c.str(`${pp}.from`, x.from, false);
        if (typeof x.from === "string" && x.from !== "outside" && x.from !== "node" && !pods.has(x.from))
          c.err(`${pp}.from`, `must be a pod, "outside" or "node": ${x.from}`);
        const m = typeof x.to === "string" ? CONNECT_TO.exec(x.to) : null;
        if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
          c.err(`${pp}.to`, 'must be "node:PORT", "A.B.C.D:PORT" or "[V6]:PORT"');
        if (x.proto !== "tcp" && x.proto !== "udp") c.err(`${pp}.proto`, 'must be "tcp" or "udp"');
        if (x.family !== undefined && x.family !== 4 && x.family !== 6) c.err(`${pp}.family`, "must be 4 or 6");
        c.bool(`${pp}.ok`, x.ok);
      });
  }
  if (v.gone !== undefined) {
    if (!isObj(v.gone)) c.err(`${path}.gone`, "must be an object");
    else {
      c.keys(`${path}.gone`, v.gone, ["veth", "podIf", "reservations", "cache", "nat"]);
      for (const [k, b] of Object.entries(v.gone)) c.bool(`${path}.gone.${k}`, b);
    }
  }
  c.strs(`${path}.goneFor`, v.goneFor);
  if (Array.isArray(v.goneFor))
    v.goneFor.forEach((p, i) => {
      if (typeof p === "string" && !pods.has(p)) c.err(`${path}.goneFor[${i}]`, `unknown pod ${p}`);
    });
  c.num(`${path}.reservations`, v.reservations);
  c.num(`${path}.cacheEntries`, v.cacheEntries);
  if (top && v.byImpl !== undefined) {
    if (!isObj(v.byImpl)) c.err(`${path}.byImpl`, "must be an object");
    else for (const [impl, o] of Object.entries(v.byImpl)) checkExpect(c, `${path}.byImpl.${impl}`, o, pods, false);
  }
}

const STEP_KEYS = [
  "verb",
  "name",
  "pod",
  "ifname",
  "network",
  "node",
  "via",
  "plugin",
  "cniVersion",
  "netns",
  "args",
  "capabilityArgs",
  "valid",
  "ip",
  "seconds",
  "requires",
  "expect",
  "knownBug",
];

/**
 * Validate a parsed case.json; returns the list of problems (empty when valid). `files` are the names in the
 * case's config directories (node name -> files), to check `network` references.
 */
export function validateCase(raw: unknown, files: Record<string, string[]> = {}): string[] {
  const c = new Checker();
  if (!isObj(raw)) return ["case: must be a JSON object"];
  c.keys("case", raw, ["description", "requires", "topology", "steps", "knownBug", "$comment"]);
  c.str("case.description", raw.description, false);
  c.requires("case.requires", raw.requires);
  c.str("case.knownBug", raw.knownBug);
  const nodes = new Set<string>();
  const pods = new Set<string>();
  const topo = raw.topology;
  if (topo !== undefined) {
    if (!isObj(topo)) c.err("case.topology", "must be an object");
    else {
      c.keys("case.topology", topo, ["nodes", "pods", "outside"]);
      c.bool("case.topology.outside", topo.outside);
      if (topo.nodes !== undefined) {
        if (!Array.isArray(topo.nodes)) c.err("case.topology.nodes", "must be an array");
        else
          topo.nodes.forEach((n, i) => {
            const p = `case.topology.nodes[${i}]`;
            const name = typeof n === "string" ? n : isObj(n) ? n.name : undefined;
            if (typeof name !== "string" || !/^[a-z][a-z0-9]{0,7}$/.test(name)) {
              c.err(p, "a node name is 1-8 of [a-z0-9], starting with a letter");
              return;
            }
            if (nodes.has(name)) c.err(p, `duplicate node ${name}`);
            nodes.add(name);
            if (isObj(n)) {
              c.keys(p, n, ["name", "confDir", "routes"]);
              c.str(`${p}.confDir`, n.confDir);
              if (
                n.routes !== undefined &&
                (!Array.isArray(n.routes) ||
                  n.routes.some((r) => !isObj(r) || typeof r.dst !== "string" || typeof r.via !== "string"))
              )
                c.err(`${p}.routes`, "must be [{dst, via}]");
            }
          });
      }
      if (topo.pods !== undefined) {
        if (!Array.isArray(topo.pods)) c.err("case.topology.pods", "must be an array");
        else
          topo.pods.forEach((n, i) => {
            const p = `case.topology.pods[${i}]`;
            const name = typeof n === "string" ? n : isObj(n) ? n.name : undefined;
            if (typeof name !== "string" || !/^[a-z][a-z0-9]{0,7}$/.test(name)) {
              c.err(p, "a pod name is 1-8 of [a-z0-9], starting with a letter");
              return;
            }
            if (pods.has(name)) c.err(p, `duplicate pod ${name}`);
            pods.add(name);
            if (isObj(n)) {
              c.keys(p, n, ["name", "node"]);
              if (n.node !== undefined && (typeof n.node !== "string" || !nodes.has(n.node)))
                c.err(`${p}.node`, "unknown node");
            }
          });
      }
    }
  }
  if (nodes.size === 0) nodes.add("node");
  // Node route targets must be nodes.
  if (isObj(topo) && Array.isArray(topo.nodes)) {
    topo.nodes.forEach((n, i) => {
      if (isObj(n) && Array.isArray(n.routes))
        n.routes.forEach((r, j) => {
          if (isObj(r) && typeof r.via === "string" && !nodes.has(r.via))
            c.err(`case.topology.nodes[${i}].routes[${j}].via`, `unknown node ${r.via}`);
        });
    });
  }
  if (!Array.isArray(raw.steps) || raw.steps.length === 0) {
    c.err("case.steps", "must be a non-empty array");
    return c.errors;
  }
  const names = new Set<string>();
  raw.steps.forEach((s, i) => {
    const p = `case.steps[${i}]`;
    if (!isObj(s)) {
      c.err(p, "must be an object");
      return;
    }
    c.keys(p, s, STEP_KEYS);
    const verb = s.verb;
    if (typeof verb !== "string" || ![...VERBS, ...ACTIONS].includes(verb as never)) {
      c.err(`${p}.verb`, `must be one of ${[...VERBS, ...ACTIONS].join(", ")}`);
      return;
    }
    if (s.name !== undefined) {
      c.str(`${p}.name`, s.name);
      if (typeof s.name === "string") {
        if (/^\d+$/.test(s.name)) c.err(`${p}.name`, "must not be a bare number (numbers are step positions)");
        if (names.has(s.name)) c.err(`${p}.name`, `duplicate step name ${s.name}`);
        names.add(s.name);
      }
    }
    const podVerbs = ["ADD", "CHECK", "DEL", "NETNS-DEL", "CACHE-DROP"];
    if (podVerbs.includes(verb)) {
      if (typeof s.pod !== "string") c.err(`${p}.pod`, `${verb} needs a pod`);
      else if (!pods.has(s.pod)) c.err(`${p}.pod`, `unknown pod ${s.pod} (declare it in topology.pods)`);
    } else if (s.pod !== undefined && (typeof s.pod !== "string" || !pods.has(s.pod))) c.err(`${p}.pod`, "unknown pod");
    if (
      s.ifname !== undefined &&
      (typeof s.ifname !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(s.ifname))
    )
      c.err(`${p}.ifname`, "must be an interface name");
    c.str(`${p}.network`, s.network);
    if (typeof s.network === "string") {
      const node = typeof s.node === "string" ? s.node : undefined;
      const lists = node ? [files[node]] : Object.values(files);
      if (Object.keys(files).length > 0 && !lists.some((l) => l?.includes(s.network as string)))
        c.err(`${p}.network`, `no file ${s.network} in the case's net.d`);
    }
    if (s.node !== undefined && (typeof s.node !== "string" || !nodes.has(s.node))) c.err(`${p}.node`, "unknown node");
    if (s.via !== undefined && s.via !== "runtime" && s.via !== "plugin")
      c.err(`${p}.via`, 'must be "runtime" or "plugin"');
    c.str(`${p}.plugin`, s.plugin);
    c.str(`${p}.cniVersion`, s.cniVersion);
    c.str(`${p}.netns`, s.netns);
    if (verb === "VERSION" && typeof s.plugin !== "string") c.err(`${p}.plugin`, "VERSION needs a plugin");
    c.strs(`${p}.ip`, s.ip);
    if (verb === "EXEC" && (!Array.isArray(s.ip) || s.ip.length === 0))
      c.err(`${p}.ip`, "EXEC needs an ip command (argv after `ip -n NS`)");
    if (verb !== "EXEC" && s.ip !== undefined) c.err(`${p}.ip`, "only for EXEC");
    if (verb === "AGE" && !(Number.isInteger(s.seconds) && (s.seconds as number) > 0))
      c.err(`${p}.seconds`, "AGE needs a positive integer number of seconds");
    if (verb !== "AGE" && s.seconds !== undefined) c.err(`${p}.seconds`, "only for AGE");
    if (
      s.args !== undefined &&
      (!Array.isArray(s.args) ||
        s.args.some((a) => !Array.isArray(a) || a.length !== 2 || a.some((x) => typeof x !== "string")))
    )
      c.err(`${p}.args`, "must be [[key, value], ...]");
    if (s.capabilityArgs !== undefined && !isObj(s.capabilityArgs)) c.err(`${p}.capabilityArgs`, "must be an object");
    if (s.valid !== undefined) {
      if (verb !== "GC") c.err(`${p}.valid`, "only for GC");
      if (!Array.isArray(s.valid)) c.err(`${p}.valid`, "must be an array");
      else
        s.valid.forEach((a, j) => {
          const pod = typeof a === "string" ? a : isObj(a) ? a.pod : undefined;
          if (typeof pod !== "string" || !pods.has(pod)) c.err(`${p}.valid[${j}]`, "must name a pod");
        });
    }
    c.requires(`${p}.requires`, s.requires);
    c.str(`${p}.knownBug`, s.knownBug);
    checkExpect(c, `${p}.expect`, s.expect, pods);
  });
  return c.errors;
}

/** Merge the implementation's overrides over an expectation (top-level keys replace). */
export function expectFor(e: Expect | undefined, impl: string): Expect {
  if (!e) return {};
  const { byImpl, ...base } = e;
  const o = byImpl?.[impl];
  return o ? { ...base, ...o } : base;
}

/** Normalized topology: nodes with defaults, pods with their node. */
export function topologyOf(c: CaseDef): { nodes: NodeDef[]; pods: PodDef[]; outside: boolean } {
  const nodes: NodeDef[] = (c.topology?.nodes ?? ["node"]).map((n) => (typeof n === "string" ? { name: n } : n));
  if (nodes.length === 0) nodes.push({ name: "node" });
  const first = nodes[0]!.name;
  const pods: PodDef[] = (c.topology?.pods ?? []).map((p) =>
    typeof p === "string" ? { name: p, node: first } : { ...p, node: p.node ?? first },
  );
  return { nodes, pods, outside: c.topology?.outside ?? false };
}

/** The label of a step in output and known-differences.json: "#3" or its name. */
export function stepLabel(s: StepDef, index: number): string {
  return s.name ?? String(index + 1);
}
