// `routes sync --forward-accept` on two nodes whose FORWARD policy is DROP (as Docker leaves it), only inside
// namespaces of this run:
//
//   nodeA eth1 172.31.251.1/24 fd31:251::1/64 ── veth ── nodeB eth0 172.31.251.2/24 fd31:251::2/64
//   each node: our bridge (isGateway) + host-local, one pod: A 10.245.1.0/24 fd45:1::/64, B 10.245.2.0/24 fd45:2::/64
//
// The routes of `routes sync` alone do not carry pod traffic across a FORWARD DROP; the forward rules do, a second
// sync starts no restore, a hostile CIDR changes nothing, and --cleanup brings the DROP back without touching any
// rule of anyone else.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeLab, nsRun, ping, recordingTools, wire, type Ns } from "./bridge-lab.js";
import { iptablesSave } from "../../sandbox/kernel.js";
import { DIST_BIN, Sandbox, requireBuilt } from "./helpers.js";

const sb = new Sandbox();
let labs: BridgeLab[] = [];
const pods: Ns[] = [];
const podIPs: Array<{ v4: string; v6: string }> = [];
let tools: Array<ReturnType<typeof recordingTools>> = [];
let nodesFile = "";
// Rules of someone else in FORWARD, which no step may touch.
const FOREIGN = [
  ["-A", "FORWARD", "-o", "nosuch0", "-j", "DROP"],
  ["-N", "OTHER"],
  ["-A", "OTHER", "-j", "RETURN"],
  ["-A", "FORWARD", "-i", "nosuch0", "-j", "OTHER"],
];

/** `routes sync ARGS` in node i (0: A, 1: B), with that node's recording PATH; `calls`: the tools it started. */
function sync(i: number, args: string[]): { status: number | null; stdout: string; stderr: string; calls: string[] } {
  const before = tools[i]!.calls().length;
  const r = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      labs[i]!.node.name,
      "env",
      "-i",
      `PATH=${tools[i]!.path}`,
      join(DIST_BIN, "routes"),
      "sync",
      ...args,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", calls: tools[i]!.calls().slice(before) };
}

const byNode = (args: string[]) => (i: number) =>
  sync(i, ["--nodes", nodesFile, "--node", i === 0 ? "node-a" : "node-b", ...args]);

/** Both families' filter tables, without counters and comments. */
const filterTables = (i: number): string => iptablesSave(labs[i]!.node.name, "filter");

/** `iptables -S` lines of a chain, per family. */
function rules(i: number, family: 4 | 6, chain: string): string[] {
  const r = nsRun(labs[i]!.node.name, family === 4 ? "iptables" : "ip6tables", ["-S", chain], true);
  return r.status === 0 ? r.stdout.trim().split("\n") : [];
}

/** Pod of node `from` to pod of node `to`, IPv4 and IPv6. */
function reaches(from: number, to: number): { v4: boolean; v6: boolean } {
  return { v4: ping(pods[from]!, podIPs[to]!.v4, 2), v6: ping(pods[from]!, podIPs[to]!.v6, 2) };
}

beforeAll(() => {
  requireBuilt();
  labs = [new BridgeLab(sb, "fwa"), new BridgeLab(sb, "fwb")];
  tools = labs.map(() => recordingTools(sb));
  wire(labs[0]!.node, labs[1]!.node, "eth1", "172.31.251.1/24", "fd31:251::1/64", "172.31.251.2/24", "fd31:251::2/64");
  const items = labs.map((lab, i) => {
    const n = i + 1;
    const pod = lab.pod("p");
    const out = lab.add(lab.conf({ isGateway: true, ipam: lab.hostLocal([`10.245.${n}.0/24`, `fd45:${n}::/64`]) }), {
      pod,
    });
    const addrs = (out.ips as Array<{ address: string }>).map((x) => x.address.split("/")[0]!);
    pods.push(pod);
    podIPs.push({ v4: addrs.find((a) => !a.includes(":"))!, v6: addrs.find((a) => a.includes(":"))! });
    nsRun(lab.node.name, "sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (const tool of ["iptables", "ip6tables"]) {
      nsRun(lab.node.name, tool, ["-P", "FORWARD", "DROP"]);
      for (const rule of FOREIGN) nsRun(lab.node.name, tool, rule);
    }
    return {
      kind: "Node",
      metadata: { name: i === 0 ? "node-a" : "node-b" },
      spec: { podCIDR: `10.245.${n}.0/24`, podCIDRs: [`10.245.${n}.0/24`, `fd45:${n}::/64`] },
      status: {
        addresses: [
          { type: "InternalIP", address: `172.31.251.${n}` },
          { type: "InternalIP", address: `fd31:251::${n}` },
        ],
      },
    };
  });
  nodesFile = join(sb.tmpdir("fwnodes"), "nodes.json");
  writeFileSync(nodesFile, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
});
afterAll(() => sb.cleanup());

describe("routes sync --forward-accept on nodes with FORWARD policy DROP", () => {
  it("the routes alone: pods on different nodes still cannot reach each other", () => {
    for (const i of [0, 1]) expect(byNode([])(i).status).toBe(0);
    expect(ping(pods[0]!, "10.245.1.1")).toBe(true);
    expect(reaches(0, 1)).toEqual({ v4: false, v6: false });
  });

  it("--dry-run prints the forward plan and changes nothing", () => {
    const before = filterTables(0);
    const r = byNode(["--forward-accept", "auto", "--dry-run"])(0);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([
      "forward-accept: accept 10.245.1.0/24 (IPv4, forwarded from and to)",
      "forward-accept: accept 10.245.2.0/24 (IPv4, forwarded from and to)",
      "forward-accept: insert the jump to CNI-TS-FORWARD at the top of FORWARD (IPv4)",
      "forward-accept: accept fd45:1::/64 (IPv6, forwarded from and to)",
      "forward-accept: accept fd45:2::/64 (IPv6, forwarded from and to)",
      "forward-accept: insert the jump to CNI-TS-FORWARD at the top of FORWARD (IPv6)",
      "dry run: 0 change(s) planned, 2 route(s) already in place; forward rules: 6 change(s); nothing changed",
    ]);
    expect(r.calls.filter((c) => c.endsWith("-restore"))).toEqual([]);
    expect(filterTables(0)).toBe(before);
  });

  it("--forward-accept auto on both nodes: our chain, one jump at the top, and the pods reach each other (IPv4 and IPv6)", () => {
    for (const i of [0, 1]) {
      const r = byNode(["--forward-accept", "auto"])(i);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("0 change(s) applied, 2 route(s) already in place; forward rules: 6 change(s)");
      // One restore per family.
      expect(r.calls.filter((c) => c.endsWith("-restore")).sort()).toEqual(["ip6tables-restore", "iptables-restore"]);
    }
    expect(rules(0, 4, "CNI-TS-FORWARD")).toEqual([
      "-N CNI-TS-FORWARD",
      "-A CNI-TS-FORWARD -s 10.245.1.0/24 -j ACCEPT",
      "-A CNI-TS-FORWARD -d 10.245.1.0/24 -j ACCEPT",
      "-A CNI-TS-FORWARD -s 10.245.2.0/24 -j ACCEPT",
      "-A CNI-TS-FORWARD -d 10.245.2.0/24 -j ACCEPT",
    ]);
    expect(rules(1, 6, "FORWARD")).toEqual([
      "-P FORWARD DROP",
      '-A FORWARD -m comment --comment "cni-ts routes sync: pod subnets" -j CNI-TS-FORWARD',
      "-A FORWARD -o nosuch0 -j DROP",
      "-A FORWARD -i nosuch0 -j OTHER",
    ]);
    expect(reaches(0, 1)).toEqual({ v4: true, v6: true });
    expect(reaches(1, 0)).toEqual({ v4: true, v6: true });
  });

  it("a second sync reads and starts no restore; the tables are as they were", () => {
    const before = [filterTables(0), filterTables(1)];
    for (const i of [0, 1]) {
      const r = byNode(["--forward-accept", "auto"])(i);
      expect(r).toMatchObject({
        status: 0,
        stdout: "in sync: 2 route(s) in place, nothing to change; forward rules in place\n",
      });
      expect(r.calls.filter((c) => c.includes("tables")).sort()).toEqual(["ip6tables-save", "iptables-save"]);
    }
    expect([filterTables(0), filterTables(1)]).toEqual(before);
  });

  it("a changed CIDR set replaces exactly our rules, in one restore per family", () => {
    const r = byNode(["--forward-accept", "10.245.0.0/16,fd45::/16"])(0);
    expect(r.status, r.stderr).toBe(0);
    expect(r.calls.filter((c) => c.endsWith("-restore")).sort()).toEqual(["ip6tables-restore", "iptables-restore"]);
    expect(r.stdout).toContain("forward-accept: stop accepting 10.245.2.0/24 (IPv4)");
    expect(rules(0, 4, "CNI-TS-FORWARD")).toEqual([
      "-N CNI-TS-FORWARD",
      "-A CNI-TS-FORWARD -s 10.245.0.0/16 -j ACCEPT",
      "-A CNI-TS-FORWARD -d 10.245.0.0/16 -j ACCEPT",
    ]);
    expect(rules(0, 6, "CNI-TS-FORWARD")).toEqual([
      "-N CNI-TS-FORWARD",
      "-A CNI-TS-FORWARD -s fd45::/16 -j ACCEPT",
      "-A CNI-TS-FORWARD -d fd45::/16 -j ACCEPT",
    ]);
    for (const f of [4, 6] as const) {
      expect(rules(0, f, "FORWARD").filter((l) => l.endsWith("-j CNI-TS-FORWARD"))).toHaveLength(1);
      expect(rules(0, f, "OTHER")).toEqual(["-N OTHER", "-A OTHER -j RETURN"]);
    }
    expect(reaches(0, 1)).toEqual({ v4: true, v6: true });
  });

  it("hostile CIDRs: status 2, no process started, nothing changed", () => {
    const before = filterTables(0);
    for (const bad of [
      "10.0.0.0/8 -j ACCEPT",
      "10.0.0.0/8\n-P FORWARD ACCEPT",
      "10.245.1.7/16",
      "auto,",
      '0.0.0.0/0"',
    ]) {
      const r = byNode(["--forward-accept", bad])(0);
      expect(r.status, bad).toBe(2);
      expect(r.stderr).toContain("--forward-accept");
      expect(r.calls).toEqual([]);
    }
    expect(filterTables(0)).toBe(before);
  });

  it("--cleanup removes our chain and jump with our routes, and leaves every other rule; the DROP is back", () => {
    const dry = sync(0, ["--cleanup", "--dry-run"]);
    expect(dry.stdout).toContain(
      "forward-accept: delete chain CNI-TS-FORWARD and its jump from FORWARD (IPv4; it accepted 10.245.0.0/16)",
    );
    expect(dry.stdout).toContain(
      "dry run: 2 route(s) of routes sync would be deleted, 2 forward chain(s); nothing changed",
    );
    const r = sync(0, ["--cleanup"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("2 route(s) of routes sync deleted, 2 forward chain(s)");
    for (const f of [4, 6] as const) {
      expect(rules(0, f, "CNI-TS-FORWARD")).toEqual([]);
      expect(rules(0, f, "FORWARD")).toEqual([
        "-P FORWARD DROP",
        "-A FORWARD -o nosuch0 -j DROP",
        "-A FORWARD -i nosuch0 -j OTHER",
      ]);
      expect(rules(0, f, "OTHER")).toEqual(["-N OTHER", "-A OTHER -j RETURN"]);
    }
    // The routes again, without the flag: node A's DROP stops the pods' traffic once more.
    expect(byNode([])(0).status).toBe(0);
    expect(reaches(0, 1)).toEqual({ v4: false, v6: false });
    // A second cleanup finds nothing of ours and starts no restore.
    const again = sync(0, ["--cleanup"]);
    expect(again.stdout).toContain("0 forward chain(s)");
    expect(again.calls.filter((c) => c.endsWith("-restore"))).toEqual([]);
  });
});
