/**
 * Sandbox helpers shared by the bridge integration tests (bridge.test.ts, bridge-diff.test.ts).
 *
 * A `BridgeLab` is one "node": a network namespace of its own in which the plugin under test runs
 * (`ip netns exec NODE env -i PATH=… CNI_…=… BIN/bridge`, config on stdin), with pod namespaces and "outside"
 * namespaces beside it. Nothing here ever touches the machine's root namespace: every link is created inside a
 * namespace of the run, and `Sandbox.cleanup()` removes them all.
 *
 * @example
 *   const sb = new Sandbox();
 *   const lab = new BridgeLab(sb, "v4");
 *   const pod = lab.pod("a");
 *   const r = lab.cni("ADD", lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.30.0.0/24"]) }), { pod });
 *   expect(lab.ping(pod, "10.30.0.1")).toBe(true);
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostVethName } from "../../plugins/bridge/names.js";
import { DIST_BIN, PLUGINS, type Sandbox, toolPath } from "./helpers.js";

export interface Ns {
  name: string;
  path: string;
}

export type Conf = Record<string, unknown>;

/** One plugin call: exit status, stdout parsed (result or error object), stderr. */
export interface CniCall {
  status: number | null;
  out: Record<string, any> | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CallOpts {
  /** The pod namespace (CNI_NETNS is its path); a string is used as CNI_NETNS verbatim ("" for "no netns"). */
  pod?: Ns | string;
  containerID?: string;
  ifname?: string;
  /** CNI_ARGS. */
  args?: string;
  /** PATH for the plugin instead of labPath() (recordingTools()). */
  path?: string;
}

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
  linkinfo?: { info_kind?: string; info_data?: Record<string, any>; info_slave_kind?: string; info_slave_data?: Record<string, any> };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string; tentative?: boolean }>;
}

export interface RouteRow {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  table?: string;
}

const labTools = new WeakMap<Sandbox, string>();
/**
 * PATH for the plugin: the node tools of helpers.toolPath() (no node on it), plus, if that list lacks them, what a
 * node's iproute2 and util-linux also provide and the plugin uses: `bridge` (VLANs), `sh` (pod script), `flock`.
 */
export function labPath(sb: Sandbox): string {
  let path = labTools.get(sb);
  if (path) return path;
  const missing = ["bridge", "sh", "flock"].filter((t) => !existsSync(join(toolPath(), t)));
  path = toolPath();
  if (missing.length > 0) {
    const dir = sb.tmpdir("tools");
    for (const t of missing) {
      const d = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].find((x) => existsSync(join(x, t)));
      if (d) symlinkSync(join(d, t), join(dir, t));
    }
    path = `${path}:${dir}`;
  }
  labTools.set(sb, path);
  return path;
}

/**
 * A PATH whose process-starting tools (ip, nsenter, flock, sh, the iptables and nft commands) are wrappers that note
 * each call in a file before running the real tool: `calls()` lists them, to prove a call started no process.
 */
export function recordingTools(sb: Sandbox): { path: string; calls: () => string[] } {
  const dir = sb.tmpdir("recording-tools");
  const log = join(dir, "calls");
  const tools = ["ip", "nsenter", "flock", "sh", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore", "iptables", "ip6tables", "nft", "conntrack"];
  for (const tool of tools) {
    const real = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map((d) => join(d, tool)).find((f) => existsSync(f));
    if (!real) continue;
    // The wrapper runs under /bin/sh by full path, so that wrapping sh itself does not recurse.
    writeFileSync(join(dir, tool), `#!/bin/sh\necho ${tool} >> ${log}\nexec ${real} "$@"\n`, { mode: 0o755 });
  }
  return { path: `${dir}:${labPath(sb)}`, calls: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : []) };
}

function spawnArgs(sb: Sandbox, nsName: string, exe: string, env: Record<string, string>): string[] {
  const kv = Object.entries({ PATH: labPath(sb), ...env }).map(([k, v]) => `${k}=${v}`);
  return ["netns", "exec", nsName, "env", "-i", ...kv, exe];
}

function parseCall(status: number | null, stdout: string, stderr: string, ms: number): CniCall {
  let out: Record<string, any> | undefined;
  if (stdout.trim() !== "") {
    try {
      out = JSON.parse(stdout) as Record<string, any>;
    } catch {
      throw new Error(`plugin stdout is not one JSON value: ${stdout.slice(0, 300)}\nstderr: ${stderr}`);
    }
  }
  return { status, out, stdout, stderr, ms };
}

/** Run a command in a namespace; throws on failure unless allowFail. */
export function nsRun(nsName: string, cmd: string, args: string[], allowFail = false, input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", nsName, cmd, ...args], { encoding: "utf8", input, timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`[${nsName}] ${cmd} ${args.join(" ")}: ${r.stderr}`);
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** `ip -json ARGS` in a namespace. */
export function ipj<T = any>(nsName: string, ...args: string[]): T {
  const out = nsRun(nsName, "ip", ["-json", ...args]).stdout.trim();
  return (out === "" ? [] : JSON.parse(out)) as T;
}

/** Global (non link-local) addresses of `dev` as "addr/prefix", sorted. */
export function addrsOf(nsName: string, dev: string): string[] {
  const links = ipj<Link[]>(nsName, "addr", "show", "dev", dev);
  return (links[0]?.addr_info ?? []).filter((a) => a.scope !== "link").map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** Link with details (`ip -d -json link show dev`), or undefined. */
export function linkOf(nsName: string, dev: string): Link | undefined {
  const r = nsRun(nsName, "ip", ["-d", "-json", "link", "show", "dev", dev], true);
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as Link[])[0];
}

export function linkNames(nsName: string): string[] {
  return ipj<Link[]>(nsName, "link", "show").map((l) => l.ifname).sort();
}

/** Main-table routes of a family. */
export function routesOf(nsName: string, family: 4 | 6): RouteRow[] {
  return ipj<RouteRow[]>(nsName, `-${family}`, "route", "show");
}

/** The default route's gateway of a family, or undefined. */
export function defaultGw(nsName: string, family: 4 | 6): string | undefined {
  return routesOf(nsName, family).find((r) => r.dst === "default")?.gateway;
}

export function sysctl(nsName: string, key: string): string {
  return nsRun(nsName, "cat", [`/proc/sys/${key.replace(/\./g, "/")}`]).stdout.trim();
}

/**
 * One echo request and its answer within a second. `tries` > 1 gives a fresh bridge's IPv6 gateway address time
 * to leave DAD's "tentative" state (about 2 s after the bridge gets it, the reference plugin alike).
 */
export function ping(from: Ns | string, to: string, tries = 1): boolean {
  const nsName = typeof from === "string" ? from : from.name;
  for (let i = 0; i < tries; i++) {
    const r = spawnSync("ip", ["netns", "exec", nsName, "ping", to.includes(":") ? "-6" : "-4", "-c1", "-W1", to], { encoding: "utf8", timeout: 10_000 });
    if (r.status === 0) return true;
  }
  return false;
}

/** `nft list ruleset` without counters. */
export function nftRuleset(nsName: string): string {
  return nsRun(nsName, "nft", ["list", "ruleset"]).stdout.replace(/counter packets \d+ bytes \d+/g, "counter");
}

/** iptables-save and ip6tables-save of nat, without comments and counters. */
export function iptNat(nsName: string): string {
  const clean = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#") && l !== "")
      .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
      .join("\n");
  return `${clean(nsRun(nsName, "iptables-save", ["-t", "nat"]).stdout)}\n--- ip6\n${clean(nsRun(nsName, "ip6tables-save", ["-t", "nat"]).stdout)}`;
}

/** Wire an "outside" namespace to the node: a veth pair, node side `nodeIf`, other side eth0; no DAD, no routes back. */
export function wire(node: Ns, other: Ns, nodeIf: string, node4: string, node6: string, other4: string, other6: string): void {
  const ip = (n: string, ...a: string[]) => nsRun(n, "ip", a);
  ip(node.name, "link", "add", nodeIf, "type", "veth", "peer", "name", "eth0", "netns", other.name);
  ip(node.name, "addr", "add", node4, "dev", nodeIf);
  ip(node.name, "addr", "add", node6, "dev", nodeIf, "nodad");
  ip(node.name, "link", "set", nodeIf, "up");
  ip(other.name, "addr", "add", other4, "dev", "eth0");
  ip(other.name, "addr", "add", other6, "dev", "eth0", "nodad");
  ip(other.name, "link", "set", "eth0", "up");
}

/** A CNI_PATH directory of our own: the plugin names as links to dist/bin/cni-ts, as an installed node has them. */
export function binDir(sb: Sandbox, label: string): string {
  const dir = join(sb.tmpdir(label), "bin");
  mkdirSync(dir);
  for (const p of PLUGINS) symlinkSync(join(DIST_BIN, "cni-ts"), join(dir, p));
  return dir;
}

/** The reference plugins of the Debian package. */
export const REFERENCE_BIN = "/usr/lib/cni";

/** Does this kernel create a bridge with vlan_filtering? (Tried in a namespace of its own.) */
export function kernelHasVlanFiltering(sb: Sandbox): boolean {
  const n = sb.netns("vlanprobe");
  const ok = nsRun(n.name, "ip", ["link", "add", "brprobe", "type", "bridge", "vlan_filtering", "1"], true).status === 0;
  spawnSync("ip", ["netns", "del", n.name]);
  return ok;
}

let counter = 0;
let labs = 0;

/** One node namespace with its own bridge plugin directory and host-local data dir. */
export class BridgeLab {
  readonly node: Ns;
  readonly dataDir: string;
  readonly label: string;

  /** `bin`: CNI_PATH and the directory the bridge executable is taken from (ours unless given). */
  constructor(
    readonly sb: Sandbox,
    label: string,
    readonly bin: string = binDir(sb, `${label}-bin`),
    readonly network = "brnet",
  ) {
    this.label = `${label}${++labs}`;
    this.node = sb.netns(this.label);
    this.dataDir = sb.tmpdir(`${this.label}-data`);
  }

  /** A pod namespace beside the node. */
  pod(label = `p${++counter}`): Ns {
    return this.sb.netns(`${this.label}-${label}`);
  }

  /** host-local IPAM with this lab's data dir; one range set per subnet, plus default routes of the families used. */
  hostLocal(subnets: string[], extra: Conf = {}): Conf {
    const routes = [...new Set(subnets.map((s) => (s.includes(":") ? "::/0" : "0.0.0.0/0")))].map((dst) => ({ dst }));
    return { type: "host-local", dataDir: this.dataDir, ranges: subnets.map((subnet) => [{ subnet }]), routes, ...extra };
  }

  /** A bridge config for this lab's network. */
  conf(o: Conf = {}, cniVersion = "1.0.0"): Conf {
    return { cniVersion, name: this.network, type: "bridge", bridge: "cni0", ...o };
  }

  private env(cmd: string, o: CallOpts): Record<string, string> {
    const pod = o.pod === undefined ? "" : typeof o.pod === "string" ? o.pod : o.pod.path;
    const env: Record<string, string> = {
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: o.containerID ?? (typeof o.pod === "object" ? `ctr-${o.pod.name}` : "ctr-none"),
      CNI_NETNS: pod,
      CNI_IFNAME: o.ifname ?? "eth0",
      CNI_PATH: this.bin,
    };
    if (o.args !== undefined) env.CNI_ARGS = o.args;
    if (o.path !== undefined) env.PATH = o.path;
    return env;
  }

  /** Run the bridge plugin of this lab inside the node namespace. */
  cni(cmd: string, conf: Conf, o: CallOpts = {}): CniCall {
    const t = performance.now();
    const r = spawnSync("ip", spawnArgs(this.sb, this.node.name, join(this.bin, "bridge"), this.env(cmd, o)), { input: JSON.stringify(conf), encoding: "utf8", timeout: 60_000 });
    return parseCall(r.status, r.stdout ?? "", r.stderr ?? "", performance.now() - t);
  }

  /** The same, as a separate process that runs concurrently with others. */
  cniAsync(cmd: string, conf: Conf, o: CallOpts = {}): Promise<CniCall> {
    const t = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn("ip", spawnArgs(this.sb, this.node.name, join(this.bin, "bridge"), this.env(cmd, o)), { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (status) => {
        try {
          resolve(parseCall(status, stdout, stderr, performance.now() - t));
        } catch (e) {
          reject(e);
        }
      });
      child.stdin.end(JSON.stringify(conf));
    });
  }

  /** ADD that must succeed; returns the result. */
  add(conf: Conf, o: CallOpts): Record<string, any> {
    const r = this.cni("ADD", conf, o);
    if (r.status !== 0 || !r.out) throw new Error(`ADD failed (${r.status}): ${r.stdout} ${r.stderr}`);
    return r.out;
  }

  /** The conf as the runtime sends it to CHECK/DEL: with prevResult. */
  withPrev(conf: Conf, prevResult: unknown): Conf {
    return { ...conf, prevResult };
  }

  /**
   * Delete a pod's namespace without DEL, as when the runtime forgot the pod, and wait until the kernel has removed
   * its host veth (it does so asynchronously, after `ip netns del` returns).
   */
  dropPod(pod: Ns, containerID = `ctr-${pod.name}`, ifname = "eth0"): void {
    spawnSync("ip", ["netns", "del", pod.name]);
    const veth = hostVethName(containerID, ifname);
    const end = Date.now() + 10_000;
    while (linkNames(this.node.name).includes(veth)) {
      if (Date.now() > end) throw new Error(`${veth} still exists 10 s after its pod namespace was deleted`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }

  /**
   * Date every host-local index entry of the network an hour back, as if each ADD had begun long ago: host-local's GC
   * never releases an ADD younger than 60 s, whatever gcGraceSeconds says.
   */
  ageIpamIndex(): void {
    const dir = join(this.dataDir, ".cni-ts", this.network, "attachments");
    const old = new Date(Date.now() - 3_600_000);
    if (existsSync(dir)) for (const f of readdirSync(dir)) utimesSync(join(dir, f), old, old);
  }

  /** Reservation files of the network in the host-local data dir (no lock, no last_reserved_ip.*). */
  reservations(): string[] {
    const dir = join(this.dataDir, this.network);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip."))
      .sort();
  }

  /** Every file under the data dir (relative paths, sorted), without cni-ts's own index under `.cni-ts/`. */
  dataFiles(): string[] {
    const out: string[] = [];
    const walk = (rel: string) => {
      for (const e of readdirSync(join(this.dataDir, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (p === ".cni-ts") continue;
        if (e.isDirectory()) walk(p);
        else out.push(p);
      }
    };
    walk("");
    return out.sort();
  }

  /** What must be the same before ADD and after DEL: node links, nat state, reservations. */
  snapshot(): { links: string[]; nft: string; ipt: string; reservations: string[]; data: string[] } {
    return { links: linkNames(this.node.name), nft: nftRuleset(this.node.name), ipt: iptNat(this.node.name), reservations: this.reservations(), data: this.dataFiles() };
  }
}

/** The `table FAMILY NAME` headers of an `nft list ruleset` text. */
export function nftTables(ruleset: string): string[] {
  return ruleset
    .split("\n")
    .filter((l) => l.startsWith("table "))
    .map((l) => l.replace(/ \{$/, ""));
}

/**
 * `nft list ruleset` without the tables DEL leaves idle on purpose: our `inet cni_ts_masq` with its constant rules
 * and no map element, and `ip nat` / `ip6 nat` tables that iptables-nft created and that hold no rule any more.
 */
export function withoutIdleNat(ruleset: string): string {
  const out: string[] = [];
  let block: string[] | undefined;
  for (const line of ruleset.split("\n")) {
    if (line.startsWith("table ")) block = [line];
    else if (block) block.push(line);
    else if (line.trim() !== "") out.push(line);
    if (block && line === "}") {
      const header = block[0]!.replace(/ \{$/, "");
      const body = block.slice(1).map((l) => l.trim());
      const idleOurs = header === "table inet cni_ts_masq" && !body.some((l) => l.startsWith("elements ="));
      const idleNat = /^table ip6? nat$/.test(header) && body.every((l) => l === "" || l === "}" || /^(chain|type) /.test(l));
      if (!idleOurs && !idleNat) out.push(...block);
      block = undefined;
    }
  }
  return out.join("\n");
}
