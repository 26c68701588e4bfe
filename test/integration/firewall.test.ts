// The firewall plugin, chained after bridge as a runtime chains it (bridge's result as prevResult; DEL in reverse),
// with the BUILT executable inside node namespaces of the run. Behaviour is proved by traffic: a node whose FORWARD
// policy drops lets its pod reach another node only with the firewall step; same-bridge isolation stops traffic
// between two bridges of one node; DEL (also with the namespace gone and no prevResult) and GC take the rules away.
// Hostile config values fail with code 7 and change nothing. The reference (/usr/lib/cni/firewall, Debian 1.1.1)
// runs the same chain beside ours: same rules, and either one's DEL removes the other's.
import { runInNode } from "../../sandbox/plugin.js";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  binDir,
  BridgeLab,
  type CniCall,
  type Conf,
  labPath,
  nsRun,
  type Ns,
  ping,
  recordingTools,
  REFERENCE_BIN,
  wire,
} from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

type Backend = "iptables" | "nftables";

/** Our plugin directory (binDir links every plugin, the firewall among them). */
const ourBin = (label: string): string => binDir(sb, label);

/** Run plugin `type` from `exeDir` in the lab's node namespace. */
function call(
  lab: BridgeLab,
  type: string,
  cmd: string,
  conf: Conf,
  pod: Ns | string,
  o: { containerID?: string; exeDir?: string; path?: string } = {},
): CniCall {
  const env = {
    PATH: o.path ?? labPath(sb),
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: o.containerID ?? (typeof pod === "string" ? "ctr-none" : `ctr-${pod.name}`),
    CNI_NETNS: typeof pod === "string" ? pod : pod.path,
    CNI_IFNAME: "eth0",
    CNI_PATH: o.exeDir ?? lab.bin,
  };
  return runInNode(lab.node.name, join(o.exeDir ?? lab.bin, type), env, JSON.stringify(conf));
}

const fwConf = (lab: BridgeLab, extra: Conf = {}, cniVersion = "1.0.0"): Conf => ({
  cniVersion,
  name: lab.network,
  type: "firewall",
  ...extra,
});

/** bridge ADD then firewall ADD with bridge's result; returns the bridge result. */
function chainAdd(lab: BridgeLab, bridgeConf: Conf, fw: Conf, pod: Ns, exeDir?: string): Record<string, any> {
  const res = lab.add(bridgeConf, { pod });
  const r = call(lab, "firewall", "ADD", { ...fw, prevResult: res }, pod, { exeDir });
  if (r.status !== 0) throw new Error(`firewall ADD failed: ${r.stdout} ${r.stderr}`);
  expect(r.out).toEqual(res);
  return res;
}

/** iptables-save and ip6tables-save of the filter table, without comments and counters. */
function filterTables(node: string): string {
  const clean = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#") && l !== "")
      .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
      .join("\n");
  return `${clean(nsRun(node, "iptables-save", ["-t", "filter"]).stdout)}\n--- ip6\n${clean(nsRun(node, "ip6tables-save", ["-t", "filter"]).stdout)}`;
}

const firewallTable = (node: string): string =>
  nsRun(node, "nft", ["list", "table", "inet", "cni_ts_firewall"], true).stdout;
const state = (node: string): string => `${filterTables(node)}\n${nsRun(node, "nft", ["list", "ruleset"]).stdout}`;
const addrOf = (res: Record<string, any>, family: 4 | 6): string =>
  (res.ips as Array<{ address: string }>)
    .find((i) => i.address.includes(family === 4 ? "." : ":"))!
    .address.split("/")[0]!;

/**
 * Two nodes on one underlay (192.0.2.0/24, 2001:db8:1::/64), each with a bridge network of its own and routes to the
 * other's pod subnet, forwarding on, no masquerade: a pod's own address crosses. Node A's FORWARD policy is DROP.
 */
class TwoNodes {
  readonly a: BridgeLab;
  readonly b: BridgeLab;

  constructor(label: string, bin = ourBin(`${label}-bin`)) {
    this.a = new BridgeLab(sb, `${label}a`, bin, "fwnet");
    this.b = new BridgeLab(sb, `${label}b`, bin, "fwnet");
    wire(this.a.node, this.b.node, "ext0", "192.0.2.1/24", "2001:db8:1::1/64", "192.0.2.2/24", "2001:db8:1::2/64");
    for (const [lab, dst4, dst6, via4, via6] of [
      [this.a, "10.82.0.0/24", "fd82::/64", "192.0.2.2", "2001:db8:1::2"],
      [this.b, "10.81.0.0/24", "fd81::/64", "192.0.2.1", "2001:db8:1::1"],
    ] as const) {
      nsRun(lab.node.name, "ip", ["route", "add", dst4, "via", via4]);
      nsRun(lab.node.name, "ip", ["-6", "route", "add", dst6, "via", via6]);
      nsRun(lab.node.name, "sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    }
    for (const tool of ["iptables", "ip6tables"]) nsRun(this.a.node.name, tool, ["-P", "FORWARD", "DROP"]);
  }

  bridgeConf(lab: BridgeLab, v4: string, v6: string, cniVersion = "1.0.0"): Conf {
    return lab.conf({ isGateway: true, ipam: lab.hostLocal([v4, v6]) }, cniVersion);
  }

  /** Pod b on node B (bridge only), pod a on node A with bridge and then the firewall `fw` chained. */
  chained(fw: Conf): { podA: Ns; resA: Record<string, any>; resB: Record<string, any> } {
    const podA = this.a.pod("a");
    const resB = this.b.add(this.bridgeConf(this.b, "10.82.0.0/24", "fd82::/64"), { pod: this.b.pod("b") });
    return { podA, resA: chainAdd(this.a, this.bridgeConf(this.a, "10.81.0.0/24", "fd81::/64"), fw, podA), resB };
  }
}

describe("firewall iptables: a pod behind a FORWARD-DROP node", () => {
  it("reaches a pod on another node only with the firewall step; new connections into it stay closed; DEL closes it again", () => {
    const t = new TwoNodes("fwi");
    const podA = t.a.pod("a");
    const podB = t.b.pod("b");
    const confA = t.bridgeConf(t.a, "10.81.0.0/24", "fd81::/64");
    const resB = t.b.add(t.bridgeConf(t.b, "10.82.0.0/24", "fd82::/64"), { pod: podB });
    const resA = t.a.add(confA, { pod: podA });
    const b4 = addrOf(resB, 4);
    const b6 = addrOf(resB, 6);
    expect(ping(podA, b4)).toBe(false);
    expect(ping(podA, b6, 3)).toBe(false);
    const before = filterTables(t.a.node.name);

    const fw = fwConf(t.a, { backend: "iptables" });
    const add = call(t.a, "firewall", "ADD", { ...fw, prevResult: resA }, podA);
    expect(add.status, add.stdout + add.stderr).toBe(0);
    expect(add.out).toEqual(resA);
    expect(ping(podA, b4)).toBe(true);
    expect(ping(podA, b6, 3)).toBe(true);
    expect(ping(podA, "192.0.2.2")).toBe(true);
    // The reference's semantics: replies come back (conntrack), but nothing new gets in.
    expect(ping(podB, addrOf(resA, 4))).toBe(false);
    expect(call(t.a, "firewall", "CHECK", { ...fw, prevResult: resA }, podA).status).toBe(0);

    // Someone removes a rule: CHECK says so (code 103).
    nsRun(t.a.node.name, "iptables", ["-D", "CNI-FORWARD", "-s", `${addrOf(resA, 4)}/32`, "-j", "ACCEPT"]);
    const broken = call(t.a, "firewall", "CHECK", { ...fw, prevResult: resA }, podA);
    expect(broken.out).toMatchObject({ code: 103 });
    expect(call(t.a, "firewall", "ADD", { ...fw, prevResult: resA }, podA).status).toBe(0);
    expect(call(t.a, "firewall", "CHECK", { ...fw, prevResult: resA }, podA).status).toBe(0);

    const del = call(t.a, "firewall", "DEL", { ...fw, prevResult: resA }, podA);
    expect(del.status, del.stdout + del.stderr).toBe(0);
    const after = filterTables(t.a.node.name);
    // The tables in the message: a ping answered after DEL says at once whether a rule stayed or something else let it by.
    expect(ping(podA, b4), after).toBe(false);
    expect(after).not.toContain(addrOf(resA, 4));
    expect(after).not.toContain(addrOf(resA, 6));
    // What stays is what the reference leaves too: the chains and jumps other pods share.
    expect(after.split("\n").filter((l) => !before.includes(l))).toEqual([
      ":CNI-ADMIN - [0:0]",
      ":CNI-FORWARD - [0:0]",
      '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
      '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
      ":CNI-ADMIN - [0:0]",
      ":CNI-FORWARD - [0:0]",
      '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
      '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
    ]);
    expect(call(t.a, "firewall", "DEL", { ...fw, prevResult: resA }, podA).status).toBe(0);
  });

  it("the admin chain decides first: a DROP there wins over the pod's accept", () => {
    const t = new TwoNodes("fwad");
    const fw = fwConf(t.a, { backend: "iptables", iptablesAdminChainName: "OPS-OVERRIDES" });
    const { podA, resA, resB } = t.chained(fw);
    expect(ping(podA, addrOf(resB, 4))).toBe(true);
    nsRun(t.a.node.name, "iptables", ["-A", "OPS-OVERRIDES", "-s", addrOf(resA, 4), "-j", "DROP"]);
    expect(ping(podA, addrOf(resB, 4))).toBe(false);
  });

  it("DEL with the pod's namespace gone and no prevResult removes the rules (marker); a second DEL starts no process", () => {
    const t = new TwoNodes("fwng");
    const fw = fwConf(t.a, { backend: "iptables" });
    const { podA, resA, resB } = t.chained(fw);
    expect(ping(podA, addrOf(resB, 4))).toBe(true);
    const id = `ctr-${podA.name}`;
    spawnSync("ip", ["netns", "del", podA.name]);
    const rec = recordingTools(sb);
    const del = call(t.a, "firewall", "DEL", fw, "", { containerID: id, path: rec.path });
    expect(del.status, del.stdout + del.stderr).toBe(0);
    expect(filterTables(t.a.node.name)).not.toContain(addrOf(resA, 4));
    expect(filterTables(t.a.node.name)).not.toContain(addrOf(resA, 6));
    // One blind restore per family.
    expect(rec.calls().sort()).toEqual(["ip6tables-restore", "iptables-restore"]);
    const before = rec.calls().length;
    expect(call(t.a, "firewall", "DEL", fw, "", { containerID: id, path: rec.path }).status).toBe(0);
    expect(rec.calls().length).toBe(before);
  });
});

describe("firewall nftables", () => {
  it("accepts in its own table: the pod's traffic is accepted there, but a drop in another table (iptables FORWARD DROP) still wins", () => {
    const t = new TwoNodes("fwn");
    const fw = fwConf(t.a, { backend: "nftables" });
    const { podA, resA, resB } = t.chained(fw);
    const table = firewallTable(t.a.node.name);
    expect(table).toContain(addrOf(resA, 4));
    expect(table).toContain(addrOf(resA, 6));
    // nftables: an accept ends one chain's verdict only; iptables' FORWARD policy DROP is another chain.
    expect(ping(podA, addrOf(resB, 4))).toBe(false);
    // Without that drop the path is open, and our chain does not close it.
    nsRun(t.a.node.name, "iptables", ["-P", "FORWARD", "ACCEPT"]);
    expect(ping(podA, addrOf(resB, 4))).toBe(true);
    expect(call(t.a, "firewall", "CHECK", { ...fw, prevResult: resA }, podA).status).toBe(0);
    // DEL with the namespace gone and no prevResult: the elements go (marker), the constant rules stay.
    spawnSync("ip", ["netns", "del", podA.name]);
    const del = call(t.a, "firewall", "DEL", fw, "", { containerID: `ctr-${podA.name}` });
    expect(del.status, del.stdout + del.stderr).toBe(0);
    const after = firewallTable(t.a.node.name);
    expect(after).not.toContain(addrOf(resA, 4));
    expect(after).not.toContain(addrOf(resA, 6));
    expect(after).toContain("ip saddr @pods4 accept");
  });

  it("a per-pod cost of elements only: the forward chain has the same rules for one pod and for three", () => {
    const lab = new BridgeLab(sb, "fwnc", ourBin("fwnc-bin"), "fwnet");
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.83.0.0/24"]) });
    const fw = fwConf(lab, { backend: "nftables" });
    const rules = () =>
      firewallTable(lab.node.name)
        .split("\n")
        .filter((l) => /accept|drop|jump/.test(l) && !/policy|comment/.test(l)).length;
    chainAdd(lab, conf, fw, lab.pod());
    const one = rules();
    chainAdd(lab, conf, fw, lab.pod());
    chainAdd(lab, conf, fw, lab.pod());
    expect(rules()).toBe(one);
    expect(one).toBe(6);
  });
});

describe("firewall ingressPolicy same-bridge", () => {
  for (const backend of ["iptables", "nftables"] as Backend[]) {
    it(`${backend}: two isolated bridges of one node cannot reach each other; the same bridge and the node still can`, () => {
      const lab = new BridgeLab(sb, `fwsb${backend.slice(0, 3)}`, ourBin(`fwsb${backend.slice(0, 3)}-bin`), "net1");
      const conf1 = lab.conf({ isGateway: true, bridge: "cni0", ipam: lab.hostLocal(["10.84.0.0/24"]) });
      const conf2 = {
        ...lab.conf({ isGateway: true, bridge: "cni1", ipam: lab.hostLocal(["10.85.0.0/24"]) }),
        name: "net2",
      };
      const [a, a2, c] = [lab.pod("a"), lab.pod("a2"), lab.pod("c")];
      const resA = lab.add(conf1, { pod: a });
      const resA2 = lab.add(conf1, { pod: a2 });
      const resC = lab.add(conf2, { pod: c });
      expect(ping(a, addrOf(resC, 4))).toBe(true);
      const fw1 = { cniVersion: "1.0.0", name: "net1", type: "firewall", backend, ingressPolicy: "same-bridge" };
      const fw2 = { ...fw1, name: "net2" };
      for (const [fw, res, pod] of [
        [fw1, resA, a],
        [fw1, resA2, a2],
        [fw2, resC, c],
      ] as const) {
        const r = call(lab, "firewall", "ADD", { ...fw, prevResult: res }, pod);
        expect(r.status, r.stdout + r.stderr).toBe(0);
      }
      expect(ping(a, addrOf(resC, 4))).toBe(false);
      expect(ping(c, addrOf(resA, 4))).toBe(false);
      expect(ping(a, addrOf(resA2, 4))).toBe(true);
      expect(ping(a, "10.85.0.1")).toBe(true); // the other bridge's gateway is the node itself (INPUT, not FORWARD)
      // The isolation stays after the pods' DELs, as in the reference: the bridge may still have pods.
      expect(call(lab, "firewall", "DEL", { ...fw1, prevResult: resA }, a).status).toBe(0);
      expect(call(lab, "firewall", "CHECK", { ...fw1, prevResult: resA2 }, a2).status).toBe(0);
    });
  }
});

describe("firewall hostile input", () => {
  it("every bad key is code 7 and changes nothing", () => {
    const lab = new BridgeLab(sb, "fwh", ourBin("fwh-bin"), "fwnet");
    const pod = lab.pod();
    const res = lab.add(lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.86.0.0/24"]) }), { pod });
    const before = state(lab.node.name);
    const bad: Conf[] = [
      { backend: 4 },
      { backend: "ipchains" },
      { backend: "firewalld" },
      { backend: "firewalld", firewalldZone: "trusted" },
      { firewalldZone: ["trusted"] },
      { iptablesAdminChainName: false },
      { iptablesAdminChainName: "has space" },
      { iptablesAdminChainName: "-F" },
      { iptablesAdminChainName: "X\n-P FORWARD ACCEPT" },
      { iptablesAdminChainName: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123" },
      { iptablesAdminChainName: "CNI-FORWARD" },
      { iptablesAdminChainName: "DROP" },
      { ingressPolicy: "isolated" },
      { ingressPolicy: 1 },
      { backend: "nftables", iptablesAdminChainName: "OPS" },
    ];
    for (const extra of bad) {
      const r = call(lab, "firewall", "ADD", { ...fwConf(lab, extra), prevResult: res }, pod);
      expect(r.out, JSON.stringify(extra)).toMatchObject({ code: 7 });
    }
    // A bridge name that would be a rule of its own, and no prevResult at all.
    const evil = { ...res, interfaces: [{ name: 'x" -j ACCEPT' }] };
    expect(
      call(lab, "firewall", "ADD", { ...fwConf(lab, { ingressPolicy: "same-bridge" }), prevResult: evil }, pod).out,
    ).toMatchObject({ code: 7 });
    expect(call(lab, "firewall", "ADD", fwConf(lab), pod).out).toMatchObject({
      code: 7,
      msg: "missing prevResult from earlier plugin",
    });
    expect(state(lab.node.name)).toBe(before);
  });
});

describe("firewall DEL is safe", () => {
  it("a config DEL cannot use does not stop it (the runtime goes on to bridge); an address another attachment holds keeps its rules", () => {
    const lab = new BridgeLab(sb, "fwds", ourBin("fwds-bin"), "fwnet");
    const pod = lab.pod();
    const res = lab.add(lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.89.0.0/24"]) }), { pod });
    const fw = fwConf(lab, { backend: "iptables" });
    expect(call(lab, "firewall", "ADD", { ...fw, prevResult: res }, pod).status).toBe(0);
    // The same address in a second attachment (it moved before the first one's DEL ran).
    expect(call(lab, "firewall", "ADD", { ...fw, prevResult: res }, pod, { containerID: "newer" }).status).toBe(0);
    const first = call(lab, "firewall", "DEL", { ...fwConf(lab, { backend: 4 }), prevResult: res }, pod);
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(filterTables(lab.node.name)).toContain(`-s ${addrOf(res, 4)}/32 -j ACCEPT`);
    expect(call(lab, "firewall", "DEL", { ...fw, prevResult: res }, pod, { containerID: "newer" }).status).toBe(0);
    expect(filterTables(lab.node.name)).not.toContain(addrOf(res, 4));
  });
});

describe("firewall GC", () => {
  for (const backend of ["iptables", "nftables"] as Backend[]) {
    it(`${backend}: removes the rules of attachments that are not in the valid list`, () => {
      const lab = new BridgeLab(sb, `fwgc${backend.slice(0, 3)}`, ourBin(`fwgc${backend.slice(0, 3)}-bin`), "fwnet");
      const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.87.0.0/24"]) });
      const fw = fwConf(lab, { backend }, "1.1.0");
      const [p1, p2] = [lab.pod(), lab.pod()];
      const r1 = chainAdd(lab, { ...conf, cniVersion: "1.1.0" }, fw, p1);
      const r2 = chainAdd(lab, { ...conf, cniVersion: "1.1.0" }, fw, p2);
      const gc = call(
        lab,
        "firewall",
        "GC",
        { ...fw, "cni.dev/valid-attachments": [{ containerID: `ctr-${p1.name}`, ifname: "eth0" }] },
        "",
      );
      expect(gc.status, gc.stdout + gc.stderr).toBe(0);
      const s = state(lab.node.name);
      expect(s).toContain(addrOf(r1, 4));
      expect(s).not.toContain(addrOf(r2, 4));
    });
  }
});

describe("firewall beside the reference (/usr/lib/cni/firewall 1.1.1)", () => {
  it("writes the same iptables rules, and each one's DEL removes the other's", () => {
    const ours = new BridgeLab(sb, "fwdo", ourBin("fwdo-bin"), "fwnet");
    const ref = new BridgeLab(sb, "fwdr", REFERENCE_BIN, "fwnet");
    const layouts: string[] = [];
    const results: Record<string, any>[] = [];
    for (const lab of [ours, ref]) {
      const pod = lab.pod("p");
      const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.88.0.0/24", "fd88::/64"]) });
      const res = chainAdd(lab, conf, fwConf(lab, { backend: "iptables", ingressPolicy: "same-bridge" }), pod, lab.bin);
      results.push(res);
      layouts.push(filterTables(lab.node.name));
    }
    expect(layouts[0]).toBe(layouts[1]);
    // Cross DEL: the reference removes our rules, ours removes the reference's.
    const ourDir = ourBin("fwdx-bin");
    for (const [lab, exeDir, res] of [
      [ours, REFERENCE_BIN, results[0]!],
      [ref, ourDir, results[1]!],
    ] as const) {
      const r = call(
        lab,
        "firewall",
        "DEL",
        { ...fwConf(lab, { backend: "iptables", ingressPolicy: "same-bridge" }), prevResult: res },
        "",
        { containerID: `ctr-${lab.label}-p`, exeDir },
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(filterTables(lab.node.name)).not.toContain(addrOf(res, 4));
    }
  });
});
