/**
 * Wiring the run's namespaces together: veth pairs between two namespaces, addresses (IPv6 without DAD, so they
 * work at once), and a namespace holding a bridge that others plug into (a lab's underlay, a node's uplink).
 * Every command names the namespace it acts in (`ip -n`); nothing lands in the machine's own namespace.
 */
import { ipSync } from "./exec.js";
import { netnsPath } from "./netns.js";

/** A veth pair: `aIf` in namespace `a`, its peer `bIf` in namespace `b`. */
export function vethPair(a: string, aIf: string, b: string, bIf: string): void {
  ipSync(["-n", a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", netnsPath(b)]);
}

/** Give `dev` in namespace `ns` its addresses ("addr/prefix"; IPv6 ones with nodad) and set it up. */
export function addrsUp(ns: string, dev: string, addrs: readonly string[]): void {
  for (const a of addrs) ipSync(["-n", ns, "addr", "add", a, "dev", dev, ...(a.includes(":") ? ["nodad"] : [])]);
  ipSync(["-n", ns, "link", "set", dev, "up"]);
}

/** A bridge `br`, up, in namespace `ns`: a switch other namespaces plug into with plug(). */
export function switchIn(ns: string, br: string): void {
  ipSync(["-n", ns, "link", "add", br, "type", "bridge"]);
  ipSync(["-n", ns, "link", "set", br, "up"]);
}

/** Plug namespace `other` into bridge `br` of namespace `sw`: port `port` on the bridge, `otherIf` in `other` with `addrs`. */
export function plug(
  sw: string,
  br: string,
  port: string,
  other: string,
  otherIf: string,
  addrs: readonly string[],
): void {
  vethPair(sw, port, other, otherIf);
  ipSync(["-n", sw, "link", "set", port, "master", br, "up"]);
  addrsUp(other, otherIf, addrs);
}

/** Wire an "outside" namespace to a node: a veth pair, node side `nodeIf`, other side eth0; no DAD, no routes back. */
export function wire(
  node: string,
  other: string,
  nodeIf: string,
  nodeAddrs: readonly string[],
  otherAddrs: readonly string[],
): void {
  vethPair(node, nodeIf, other, "eth0");
  addrsUp(node, nodeIf, nodeAddrs);
  addrsUp(other, "eth0", otherAddrs);
}
