/**
 * What the lab checks and shows about forwarding: the ping matrix (same-node and cross-node pairs counted apart),
 * the hostPort check through portmap, a node's FORWARD policy closed as Docker closes it (`--forward-drop`, inside
 * the node's namespace only), and the rules each step left in a node (firewall's CNI-FORWARD, portmap's DNAT,
 * routes sync's CNI-TS-FORWARD), read from the kernel.
 */
import { connect, ping } from "../sandbox/kernel-async.js";
import { nsRun } from "../sandbox/exec.js";
import { netnsPath } from "../sandbox/netns.js";
import type { LabNode } from "./topology.js";

export interface MatrixPod {
  name: string;
  node: LabNode;
  netns: string;
  ip?: string;
}

/** Answered pings out of those sent, for one kind of pair. */
export interface Count {
  good: number;
  total: number;
}

export interface Matrix {
  rows: string[][];
  sameNode: Count;
  crossNode: Count;
}

/**
 * Every pod pings every other pod once (1 s deadline, all pairs at once: a closed node costs one second, not one
 * per pair). Cells are the round-trip time or FAIL.
 */
export async function pingMatrix(pods: MatrixPod[]): Promise<Matrix> {
  const sameNode = { good: 0, total: 0 };
  const crossNode = { good: 0, total: 0 };
  const rows = await Promise.all(
    pods.map(async (a) => [
      a.name,
      ...(await Promise.all(
        pods.map(async (b) => {
          if (a === b) return "-";
          const r = await ping(netnsPath(a.netns), b.ip!, false);
          const count = a.node === b.node ? sameNode : crossNode;
          count.total++;
          if (r.ok) count.good++;
          return r.ok ? `${(r.rttMs ?? 0).toFixed(2)}ms` : "FAIL";
        }),
      )),
    ]),
  );
  return { rows, sameNode, crossNode };
}

/** The one summary line of a matrix the lab prints (and its test reads). */
export function matrixSummary(m: Matrix): string {
  return `same-node ${m.sameNode.good}/${m.sameNode.total}, cross-node ${m.crossNode.good}/${m.crossNode.total} pings answered`;
}

/** The hostPort the lab maps on its first pod (portmap), and the port its listener serves in the pod. */
export const HOST_PORT = 8080;

/**
 * A TCP connection from node `from` to `to`'s node IP at HOST_PORT, DNATed by portmap to the pod; a listener in
 * the pod answers. Tried once when `expectOk` is false (a closed node: the answer is silence), up to 3 times else.
 */
export async function hostPortCheck(
  pod: MatrixPod,
  from: LabNode,
  expectOk: boolean,
): Promise<{ ok: boolean; line: string }> {
  const r = await connect(
    netnsPath(pod.netns),
    HOST_PORT,
    netnsPath(from.netns),
    pod.node.nodeIP,
    HOST_PORT,
    "tcp",
    expectOk,
  );
  return {
    ok: r.ok,
    line: `hostPort ${pod.node.nodeIP}:${HOST_PORT} (-> ${pod.name} ${pod.ip}:${HOST_PORT}) from ${from.name}: ${r.ok ? "answered" : "no answer"}`,
  };
}

/** FORWARD policy DROP inside the node's namespace (IPv4 and IPv6), as Docker leaves a host. Never the machine's. */
export function closeForward(node: LabNode): void {
  for (const tool of ["iptables", "ip6tables"]) nsRun(node.netns, tool, ["-w", "-P", "FORWARD", "DROP"]);
}

/**
 * Whether the node's bridged frames go through iptables (br_netfilter loaded, its per-namespace switch on): then a
 * FORWARD DROP closes even two pods of one node to each other unless a rule accepts them.
 */
export function bridgedThroughForward(node: LabNode): boolean {
  return nsRun(node.netns, "cat", ["/proc/sys/net/bridge/bridge-nf-call-iptables"], true).stdout.trim() === "1";
}

/** `iptables -S` lines of the filter table's FORWARD chain and the chains named, as the node has them. */
export function filterRules(node: LabNode, chains: string[]): string[] {
  return ["FORWARD", ...chains].flatMap((c) =>
    nsRun(node.netns, "iptables", ["-w", "-S", c], true).stdout.trim().split("\n").filter(Boolean),
  );
}

/** The nat table's lines that carry a hostPort DNAT to a pod (portmap's iptables layout). */
export function portmapRules(node: LabNode): string[] {
  return nsRun(node.netns, "iptables-save", ["-t", "nat"], true)
    .stdout.split("\n")
    .filter((l) => l.startsWith("-A CNI-DN-") && l.includes("DNAT"));
}
