/**
 * The lab's network: nodes as network namespaces on an underlay (a namespace holding a bridge), and pod
 * namespaces. Everything is named after one run id and removed by `destroy()`; nothing touches the machine's own
 * namespace, and every address lives inside these namespaces.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface LabNode {
  name: string;
  netns: string;
  nodeIP: string;
  podCIDR: string;
  /** The relocated /opt/cni/bin and /etc/cni/net.d of this node. */
  binDir: string;
  confDir: string;
  cacheDir: string;
  dataDir: string;
}

export function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout ?? "";
}

export class Topology {
  readonly namespaces: string[] = [];
  readonly nodes: LabNode[] = [];
  readonly underlay: string;

  constructor(readonly id: string, readonly workDir: string) {
    this.underlay = `${id}-underlay`;
  }

  private netns(name: string): string {
    sh("ip", ["netns", "add", name]);
    this.namespaces.push(name);
    sh("ip", ["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  createUnderlay(): void {
    this.netns(this.underlay);
    sh("ip", ["-n", this.underlay, "link", "add", "ul0", "type", "bridge"]);
    sh("ip", ["-n", this.underlay, "link", "set", "ul0", "up"]);
  }

  /** Node i: its namespace, its link to the underlay, and the node layout of the plugins (relocated). */
  addNode(i: number, exe: string, conflist: (node: LabNode) => object): LabNode {
    const name = `node${i}`;
    const netns = this.netns(`${this.id}-${name}`);
    const root = join(this.workDir, name);
    const node: LabNode = {
      name, netns, nodeIP: `172.31.250.${10 + i}`, podCIDR: `10.244.${i}.0/24`,
      binDir: join(root, "opt/cni/bin"), confDir: join(root, "etc/cni/net.d"), cacheDir: join(root, "var/lib/cni"), dataDir: join(root, "var/lib/cni/networks"),
    };
    // The node's uplink: eth0 in the node, its peer on the underlay bridge.
    sh("ip", ["-n", this.underlay, "link", "add", `n${i}`, "type", "veth", "peer", "name", "eth0", "netns", `/var/run/netns/${netns}`]);
    sh("ip", ["-n", this.underlay, "link", "set", `n${i}`, "master", "ul0", "up"]);
    sh("ip", ["-n", netns, "addr", "add", `${node.nodeIP}/24`, "dev", "eth0"]);
    sh("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    mkdirSync(node.binDir, { recursive: true });
    mkdirSync(node.confDir, { recursive: true });
    for (const p of ["bridge", "host-local", "routes"]) symlinkSync(exe, join(node.binDir, p));
    writeFileSync(join(node.confDir, "10-kubenet.conflist"), JSON.stringify(conflist(node), null, 2));
    this.nodes.push(node);
    return node;
  }

  /** A plain host on the underlay (the lab's API server): a namespace with one address, nothing else. */
  addHost(label: string, i: number, ip: string): string {
    const netns = this.netns(`${this.id}-${label}`);
    sh("ip", ["-n", this.underlay, "link", "add", `h${i}`, "type", "veth", "peer", "name", "eth0", "netns", `/var/run/netns/${netns}`]);
    sh("ip", ["-n", this.underlay, "link", "set", `h${i}`, "master", "ul0", "up"]);
    sh("ip", ["-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
    sh("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    return netns;
  }

  addPod(name: string): string {
    return this.netns(`${this.id}-${name}`);
  }

  /** Remove every namespace of the run and its files; returns what could not be removed. */
  destroy(): string[] {
    const left: string[] = [];
    for (const ns of this.namespaces.splice(0).reverse()) {
      sh("ip", ["netns", "del", ns], true);
      if (existsSync(`/var/run/netns/${ns}`)) left.push(ns);
    }
    rmSync(this.workDir, { recursive: true, force: true });
    if (existsSync(this.workDir)) left.push(this.workDir);
    return left;
  }
}
