/**
 * Sandbox helpers shared by the bridge integration tests (bridge.test.ts, bridge-diff.test.ts).
 *
 * A `BridgeLab` is one "node": a network namespace of its own in which the plugin under test runs
 * (`ip netns exec NODE env -i PATH=… CNI_…=… BIN/bridge`, config on stdin), with pod namespaces and "outside"
 * namespaces beside it. Nothing here ever touches the machine's root namespace: every link is created inside a
 * namespace of the run, and `Sandbox.cleanup()` removes them all. Built on the sandbox toolkit (sandbox/), whose
 * readers, runners and wiring are re-exported here under the names the tests use.
 *
 * @example
 *   const sb = new Sandbox();
 *   const lab = new BridgeLab(sb, "v4");
 *   const pod = lab.pod("a");
 *   const r = lab.cni("ADD", lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.30.0.0/24"]) }), { pod });
 *   expect(lab.ping(pod, "10.30.0.1")).toBe(true);
 */
import { existsSync, readdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { hostVethName } from "../../plugins/bridge/names.js";
import { nsRun } from "../../sandbox/exec.js";
import { iptNat, linkNames, nftRuleset } from "../../sandbox/kernel.js";
import type { Ns, Sandbox } from "../../sandbox/netns.js";
import {
  type CallOpts,
  type CniCall,
  type Conf,
  cniEnv,
  parseCall,
  runInNode,
  spawnInNode,
} from "../../sandbox/plugin.js";
import { labPath } from "../../sandbox/tools.js";
import { wire as wireNs } from "../../sandbox/topology.js";
import { pingOnce } from "../../sandbox/traffic.js";
import { installInto } from "./helpers.js";

export { nsRun } from "../../sandbox/exec.js";
export {
  addrsOf,
  defaultGw,
  ipj,
  iptNat,
  type Link,
  linkNames,
  linkOf,
  nftRuleset,
  nftTables,
  type RouteRow,
  routesOf,
  sysctl,
} from "../../sandbox/kernel.js";
export type { Ns } from "../../sandbox/netns.js";
export type { CallOpts, CniCall, Conf } from "../../sandbox/plugin.js";
export { labPath, recordingTools } from "../../sandbox/tools.js";

/**
 * One echo request and its answer within a second. `tries` > 1 gives a fresh bridge's IPv6 gateway address time
 * to leave DAD's "tentative" state (about 2 s after the bridge gets it, the reference plugin alike).
 */
export function ping(from: Ns | string, to: string, tries = 1): boolean {
  const nsName = typeof from === "string" ? from : from.name;
  for (let i = 0; i < tries; i++) if (pingOnce(nsName, to).ok) return true;
  return false;
}

/** Wire an "outside" namespace to the node: a veth pair, node side `nodeIf`, other side eth0; no DAD, no routes back. */
export function wire(
  node: Ns,
  other: Ns,
  nodeIf: string,
  node4: string,
  node6: string,
  other4: string,
  other6: string,
): void {
  wireNs(node.name, other.name, nodeIf, [node4, node6], [other4, other6]);
}

/** A CNI_PATH directory of our own: the plugin names as links to dist/bin/cni-ts, as an installed node has them. */
export function binDir(sb: Sandbox, label: string): string {
  return installInto(join(sb.tmpdir(label), "bin"));
}

/** The reference plugins of the Debian package. */
export const REFERENCE_BIN = "/usr/lib/cni";

/** Does this kernel create a bridge with vlan_filtering? (Tried in a namespace of its own.) */
export function kernelHasVlanFiltering(sb: Sandbox): boolean {
  const n = sb.netns("vlanprobe");
  const ok =
    nsRun(n.name, "ip", ["link", "add", "brprobe", "type", "bridge", "vlan_filtering", "1"], true).status === 0;
  sb.delNetns(n.name);
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
    return {
      type: "host-local",
      dataDir: this.dataDir,
      ranges: subnets.map((subnet) => [{ subnet }]),
      routes,
      ...extra,
    };
  }

  /** A bridge config for this lab's network. */
  conf(o: Conf = {}, cniVersion = "1.0.0"): Conf {
    return { cniVersion, name: this.network, type: "bridge", bridge: "cni0", ...o };
  }

  /** The environment of one call (the lab's conventions: CNI_PATH its bin, PATH the node tools). */
  env(cmd: string, o: CallOpts): Record<string, string> {
    return cniEnv(cmd, this.bin, labPath(this.sb), o);
  }

  /** Run the bridge plugin of this lab inside the node namespace. */
  cni(cmd: string, conf: Conf, o: CallOpts = {}): CniCall {
    return runInNode(this.node.name, join(this.bin, "bridge"), this.env(cmd, o), JSON.stringify(conf));
  }

  /** The same, as a separate process that runs concurrently with others. */
  async cniAsync(cmd: string, conf: Conf, o: CallOpts = {}): Promise<CniCall> {
    const r = await spawnInNode(this.node.name, join(this.bin, "bridge"), this.env(cmd, o), JSON.stringify(conf));
    return parseCall(r.status, r.stdout, r.stderr, r.ms);
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
    this.sb.delNetns(pod.name);
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
    return {
      links: linkNames(this.node.name),
      nft: nftRuleset(this.node.name),
      ipt: iptNat(this.node.name),
      reservations: this.reservations(),
      data: this.dataFiles(),
    };
  }
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
      const idleNat =
        /^table ip6? nat$/.test(header) && body.every((l) => l === "" || l === "}" || /^(chain|type) /.test(l));
      if (!idleOurs && !idleNat) out.push(...block);
      block = undefined;
    }
  }
  return out.join("\n");
}
