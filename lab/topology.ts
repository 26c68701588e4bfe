/**
 * The lab's network: nodes as network namespaces on an underlay (a namespace holding a bridge), and pod
 * namespaces. Everything is named after one run id and removed by `destroy()`; nothing touches the machine's own
 * namespace, and every address lives inside these namespaces. Built with the sandbox toolkit.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox } from "../sandbox/netns.js";
import { plug, switchIn } from "../sandbox/topology.js";

export { sh } from "../sandbox/exec.js";

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

export class Topology {
  readonly nodes: LabNode[] = [];
  readonly underlay: string;
  /** Not removed at exit: `--keep` leaves the lab up on purpose, and a signal handler of the lab removes it. */
  private readonly sb: Sandbox;

  constructor(
    readonly id: string,
    readonly workDir: string,
  ) {
    this.sb = new Sandbox("", { id, onExit: false });
    this.underlay = `${id}-underlay`;
  }

  /** The namespaces of the lab, in the order they were made. */
  get namespaces(): readonly string[] {
    return this.sb.namespaces;
  }

  createUnderlay(): void {
    this.sb.netns("underlay");
    switchIn(this.underlay, "ul0");
  }

  /** Node i: its namespace, its link to the underlay, and the node layout of the plugins (relocated). */
  addNode(i: number, exe: string, conflist: (node: LabNode) => object): LabNode {
    const name = `node${i}`;
    const netns = this.sb.netns(name).name;
    const root = join(this.workDir, name);
    const node: LabNode = {
      name,
      netns,
      nodeIP: `172.31.250.${10 + i}`,
      podCIDR: `10.244.${i}.0/24`,
      binDir: join(root, "opt/cni/bin"),
      confDir: join(root, "etc/cni/net.d"),
      cacheDir: join(root, "var/lib/cni"),
      dataDir: join(root, "var/lib/cni/networks"),
    };
    // The node's uplink: eth0 in the node, its peer on the underlay bridge.
    plug(this.underlay, "ul0", `n${i}`, netns, "eth0", [`${node.nodeIP}/24`]);
    mkdirSync(node.binDir, { recursive: true });
    mkdirSync(node.confDir, { recursive: true });
    for (const p of ["bridge", "host-local", "portmap", "firewall", "routes"]) symlinkSync(exe, join(node.binDir, p));
    writeFileSync(join(node.confDir, "10-kubenet.conflist"), JSON.stringify(conflist(node), null, 2));
    this.nodes.push(node);
    return node;
  }

  /** A plain host on the underlay (the lab's API server): a namespace with one address, nothing else. */
  addHost(label: string, i: number, ip: string): string {
    const netns = this.sb.netns(label).name;
    plug(this.underlay, "ul0", `h${i}`, netns, "eth0", [`${ip}/24`]);
    return netns;
  }

  addPod(name: string): string {
    return this.sb.netns(name).name;
  }

  /** Remove every namespace of the run and its files; returns what could not be removed. */
  destroy(): string[] {
    this.sb.cleanup();
    rmSync(this.workDir, { recursive: true, force: true });
    return this.sb.leftovers();
  }
}
