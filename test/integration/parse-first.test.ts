// Parse and judge everything first, then change the kernel: a refused ADD changes nothing. The built executables,
// each run inside a node namespace of this run, against pod namespaces beside it.
//
// (The reference 1.1.1 loopback also parses prevResult before lo comes up: 999, lo stays down.)
import { runInNode } from "../../sandbox/plugin.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binDir, type CniCall, type Conf, iptNat, labPath, linkOf, type Ns, nsRun } from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
let bin = "";
beforeAll(() => {
  requireBuilt();
  bin = binDir(sb, "pf-bin");
});
afterAll(() => sb.cleanup());
let seq = 0;

function plugin(
  node: Ns,
  name: string,
  cmd: string,
  conf: Conf,
  netns: string,
  containerID = "pf-ctr",
  ifname = "eth0",
): CniCall {
  const env = {
    PATH: labPath(sb),
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: containerID,
    CNI_NETNS: netns,
    CNI_IFNAME: ifname,
    CNI_PATH: bin,
  };
  return runInNode(node.name, join(bin, name), env, JSON.stringify(conf));
}

describe("loopback", () => {
  it.each([{ ips: "x" }, { interfaces: 5 }, "text", 7])(
    "ADD with a malformed prevResult %j: 6, and lo stays down",
    (prevResult) => {
      const node = sb.netns(`pflo${++seq}`);
      const pod = sb.netns(`pflopod${seq}`);
      nsRun(pod.name, "ip", ["link", "set", "lo", "down"]);
      const r = plugin(
        node,
        "loopback",
        "ADD",
        { cniVersion: "1.0.0", name: "pf", type: "loopback", prevResult },
        pod.path,
        "pf-ctr",
        "lo",
      );
      expect([r.status, r.out?.code]).toEqual([1, 6]);
      expect(linkOf(pod.name, "lo")!.flags).not.toContain("UP");
    },
  );
});

describe("portmap (iptables)", () => {
  const prev = (pod: Ns, v4: string, v6: string) => ({
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", mac: "02:00:00:00:61:02", sandbox: pod.path }],
    ips: [
      { address: v4, interface: 0 },
      { address: v6, interface: 0 },
    ],
  });
  const pm = (p: unknown, mappings: unknown[], extra: Conf = {}) => ({
    cniVersion: "1.0.0",
    name: "pfnet",
    type: "portmap",
    backend: "iptables",
    runtimeConfig: { portMappings: mappings },
    prevResult: p,
    ...extra,
  });

  it("a missing externalSetMarkChain: 7, and not even the shared chains are created", () => {
    const node = sb.netns("pfext");
    const pod = sb.netns("pfextpod");
    const before = iptNat(node.name);
    const r = plugin(
      node,
      "portmap",
      "ADD",
      pm(prev(pod, "10.61.0.2/24", "fd61::2/64"), [{ hostPort: 18090, containerPort: 80, protocol: "tcp" }], {
        externalSetMarkChain: "NO-SUCH-CHAIN",
      }),
      pod.path,
    );
    expect([r.status, r.out?.code], r.stdout).toEqual([1, 7]);
    expect(iptNat(node.name)).toBe(before);
  });

  it("a host port another attachment maps in IPv6 only: 102, and the IPv4 table is left as it was", () => {
    const node = sb.netns("pfconf");
    const pod = sb.netns("pfconfpod");
    const other = sb.netns("pfconfother");
    const a = plugin(
      node,
      "portmap",
      "ADD",
      pm(prev(other, "10.62.0.3/24", "fd62::3/64"), [
        { hostPort: 18091, containerPort: 80, protocol: "tcp", hostIP: "::" },
      ]),
      other.path,
      "pf-first",
    );
    expect(a.status, a.stdout).toBe(0);
    const before = iptNat(node.name);
    expect(before).toContain("18091");
    const r = plugin(
      node,
      "portmap",
      "ADD",
      pm(prev(pod, "10.62.0.2/24", "fd62::2/64"), [{ hostPort: 18091, containerPort: 80, protocol: "tcp" }]),
      pod.path,
      "pf-second",
    );
    expect([r.status, r.out?.code], r.stdout).toEqual([1, 102]);
    expect(iptNat(node.name)).toBe(before);
  });
});

describe("routes", () => {
  it("ADD with a malformed prevResult: 6, and the pod's routes are as they were", () => {
    const node = sb.netns("pfrt");
    const pod = sb.netns("pfrtpod");
    nsRun(pod.name, "ip", ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    nsRun(pod.name, "ip", ["addr", "add", "10.63.0.2/24", "dev", "eth0"]);
    nsRun(pod.name, "ip", ["link", "set", "eth0", "up"]);
    const before = nsRun(pod.name, "ip", ["-json", "route", "show", "table", "all"]).stdout;
    const r = plugin(
      node,
      "routes",
      "ADD",
      {
        cniVersion: "1.0.0",
        name: "pf",
        type: "routes",
        addroutes: [{ dst: "10.99.0.0/16", gw: "10.63.0.1" }],
        prevResult: { ips: [{ address: "nope" }] },
      },
      pod.path,
    );
    expect([r.status, r.out?.code], r.stdout).toEqual([1, 6]);
    expect(nsRun(pod.name, "ip", ["-json", "route", "show", "table", "all"]).stdout).toBe(before);
  });
});
