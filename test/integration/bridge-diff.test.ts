// Differential test: the same conflists through the reference plugins (Debian containernetworking-plugins 1.1.1,
// /usr/lib/cni/bridge + host-local, CNI_PATH=/usr/lib/cni) and through ours (CNI_PATH = a directory of links to
// dist/bin/cni-ts), each in a node namespace of its own, same network name, same container ID, same subnets.
// Everything that should match is compared; every difference that is meant to be there is asserted as such and
// listed in docs/bridge-differences.md.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostVethName } from "../../plugins/bridge/names.js";
import {
  addrsOf,
  BridgeLab,
  type CniCall,
  type Conf,
  iptNat,
  linkNames,
  linkOf,
  type Ns,
  REFERENCE_BIN,
  routesOf,
  sysctl,
} from "./bridge-lab.js";
import { requireBuilt, ROOT, Sandbox, sh } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

/** The differences this file asserts, as the rows of docs/bridge-differences.md name them (each marked [diff] there). */
const INTENDED_DIFFERENCES = [
  "Host veth name",
  "MACs",
  "`dns` in the result",
  "CHECK in L2 mode",
  "Existing `eth0` in the pod",
  "Error codes in general",
  "`keep_addr_on_down` in the pod",
  "`isDefaultGateway` with an IPAM default route without `gw`",
  "ADD failing after the veth exists",
  "DEL after the pod's netns is gone",
  "DEL with `CNI_NETNS` empty",
];

it("docs/bridge-differences.md has a [diff] row for every difference asserted here", () => {
  const rows = readFileSync(join(ROOT, "docs/bridge-differences.md"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("| ") && l.includes("**[diff]**"));
  for (const d of INTENDED_DIFFERENCES)
    expect(
      rows.some((r) => r.startsWith(`| ${d}`)),
      d,
    ).toBe(true);
  expect(rows).toHaveLength(INTENDED_DIFFERENCES.length);
});

const HAVE_REFERENCE = existsSync(join(REFERENCE_BIN, "bridge")) && existsSync(join(REFERENCE_BIN, "host-local"));
const CID = "diffctr0000000000000000000000000000000000000000000000000000000001";
type Kind = "reference" | "cni-ts";
const KINDS: Kind[] = ["reference", "cni-ts"];

function newLab(kind: Kind, label: string): BridgeLab {
  return kind === "reference"
    ? new BridgeLab(sb, `r${label}`, REFERENCE_BIN, "diffnet")
    : new BridgeLab(sb, `o${label}`, undefined, "diffnet");
}

const POD_SYSCTLS = [
  "net.ipv6.conf.eth0.accept_dad",
  "net.ipv4.conf.eth0.arp_notify",
  "net.ipv6.conf.eth0.disable_ipv6",
  "net.ipv6.conf.eth0.keep_addr_on_down",
];
const NODE_SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.cni0.accept_ra"];

/** Everything one ADD (and CHECK) leaves observable, on one side. */
interface Observed {
  lab: BridgeLab;
  pod: Ns;
  conf: Conf;
  add: CniCall;
  result: Record<string, any>;
  podAddrs: string[];
  podRoutes: string[];
  bridgeAddrs: string[];
  podSysctls: Record<string, string>;
  nodeSysctls: Record<string, string>;
  nat: string;
  check: CniCall;
}

const routeText = (ns: string) =>
  [4, 6]
    .flatMap((f) => routesOf(ns, f as 4 | 6))
    .filter((r) => r.dst !== "fe80::/64")
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}`)
    .sort();

function observe(kind: Kind, label: string, conf: (lab: BridgeLab) => Conf): Observed {
  const lab = newLab(kind, label);
  const pod = lab.pod("a");
  const c = conf(lab);
  const add = lab.cni("ADD", c, { pod, containerID: CID });
  expect([add.status, add.out?.msg]).toEqual([0, undefined]);
  const result = add.out!;
  const check = lab.cni("CHECK", lab.withPrev(c, result), { pod, containerID: CID });
  return {
    lab,
    pod,
    conf: c,
    add,
    result,
    podAddrs: addrsOf(pod.name, "eth0"),
    podRoutes: routeText(pod.name),
    bridgeAddrs: addrsOf(lab.node.name, "cni0"),
    podSysctls: Object.fromEntries(POD_SYSCTLS.map((k) => [k, sysctl(pod.name, k)])),
    nodeSysctls: Object.fromEntries(NODE_SYSCTLS.map((k) => [k, sysctl(lab.node.name, k)])),
    nat: iptNat(lab.node.name),
    check,
  };
}

function del(o: Observed): CniCall {
  return o.lab.cni("DEL", o.lab.withPrev(o.conf, o.result), { pod: o.pod, containerID: CID });
}

const CONFLISTS: Array<{ label: string; title: string; conf: (lab: BridgeLab) => Conf; l2?: boolean }> = [
  {
    label: "v4",
    title: "IPv4, isGateway + ipMasq",
    conf: (lab) => lab.conf({ isGateway: true, ipMasq: true, ipam: lab.hostLocal(["10.52.0.0/24"]) }),
  },
  {
    label: "ds",
    title: "dual-stack, isDefaultGateway + hairpinMode",
    conf: (lab) =>
      lab.conf({
        isDefaultGateway: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: lab.dataDir,
          ranges: [[{ subnet: "10.53.0.0/24" }], [{ subnet: "fd53::/64" }]],
        },
      }),
  },
  { label: "l2", title: "L2 (ipam {})", conf: (lab) => lab.conf({ ipam: {} }), l2: true },
];

describe.skipIf(!HAVE_REFERENCE)("same conflist, reference 1.1.1 vs cni-ts, cniVersion 1.0.0", () => {
  it.each(CONFLISTS)("$title", ({ label, conf, l2 }) => {
    const [ref, ours] = KINDS.map((k) => observe(k, label, conf)) as [Observed, Observed];

    // Result shape: same keys (but dns, below), same interfaces in the same order with the same keys, same ips
    // and routes (same subnets, fresh data dirs: same addresses).
    const keys = (r: Record<string, unknown>) =>
      Object.keys(r)
        .filter((k) => k !== "dns")
        .sort();
    expect(keys(ours.result)).toEqual(keys(ref.result));
    expect(ours.result.interfaces).toHaveLength(ref.result.interfaces.length);
    const ifaceShape = (r: Record<string, any>) =>
      (r.interfaces as Array<Record<string, string>>).map((i) => ({
        ...i,
        mac: "MAC",
        name: i.name!.replace(/^veth[0-9a-f]{8}$/, "vethXXXXXXXX"),
        sandbox: i.sandbox ? "SANDBOX" : undefined,
      }));
    expect(ifaceShape(ours.result)).toEqual(ifaceShape(ref.result));
    expect(ours.result.interfaces[2].sandbox).toBe(ours.pod.path);
    expect(ours.result.ips).toEqual(ref.result.ips);
    expect(ours.result.routes).toEqual(ref.result.routes);

    // Kernel state, pod and node.
    expect(ours.podAddrs).toEqual(ref.podAddrs);
    expect(ours.podRoutes).toEqual(ref.podRoutes);
    expect(ours.bridgeAddrs).toEqual(ref.bridgeAddrs);
    expect(ours.nodeSysctls).toEqual(ref.nodeSysctls);
    expect(ours.nat).toBe(ref.nat); // ipMasq without ipMasqBackend: both pick iptables, same chain, rules, comments
    expect(linkOf(ours.lab.node.name, ours.result.interfaces[1].name)!.linkinfo?.info_slave_data?.hairpin).toBe(
      linkOf(ref.lab.node.name, ref.result.interfaces[1].name)!.linkinfo?.info_slave_data?.hairpin,
    );

    // ---- Intended differences ----
    // dns: the reference always prints `"dns": {}`; we leave an empty dns out (the spec makes it optional).
    expect(ref.result.dns).toEqual({});
    expect(ours.result.dns).toBeUndefined();
    // Host veth name: the reference's is random; ours is derived from (containerID, ifname).
    expect(ref.result.interfaces[1].name).toMatch(/^veth[0-9a-f]{8}$/);
    expect(ours.result.interfaces[1].name).toBe(hostVethName(CID, "eth0"));
    // keep_addr_on_down: 1.1.1 does not set it; we set it to 1 with IPv6 addresses, as the reference does since.
    const v6 = (ours.result.ips ?? []).some((ip: { address: string }) => ip.address.includes(":"));
    expect(ours.podSysctls).toEqual({
      ...ref.podSysctls,
      "net.ipv6.conf.eth0.keep_addr_on_down": v6 ? "1" : ref.podSysctls["net.ipv6.conf.eth0.keep_addr_on_down"],
    });
    if (v6) expect(ref.podSysctls["net.ipv6.conf.eth0.keep_addr_on_down"]).toBe("0");

    if (l2) {
      // The reference's L2 CHECK delegates to an IPAM plugin that does not exist; ours checks the attachment.
      expect(ref.check.out).toMatchObject({ code: 999, msg: "no plugin name provided" });
      expect([ours.check.status, ours.check.stdout]).toEqual([0, ""]);
      // Nothing pins the reference's L2 bridge MAC: it is its port's. Ours is set at creation and stays.
      expect(ref.result.interfaces[0].mac).toBe(ref.result.interfaces[1].mac);
      expect(ours.result.interfaces[0].mac).not.toBe(ours.result.interfaces[1].mac);
    } else {
      for (const o of [ref, ours]) expect([o.check.status, o.check.stdout]).toEqual([0, ""]);
      // With isGateway both pin the bridge MAC: it is not a port's.
      for (const o of [ref, ours]) expect(o.result.interfaces[0].mac).not.toBe(o.result.interfaces[1].mac);
    }

    // DEL: both succeed and leave the same node behind (the bridge stays), except for the L2 bridge MAC.
    for (const o of [ref, ours]) {
      expect(del(o).status).toBe(0);
      expect(linkNames(o.lab.node.name)).toEqual(["cni0", "lo"]);
      expect(linkNames(o.pod.name)).toEqual(["lo"]);
      expect(o.lab.reservations()).toEqual([]);
    }
    expect(iptNat(ours.lab.node.name)).toBe(iptNat(ref.lab.node.name));
    const brMac = (o: Observed) => linkOf(o.lab.node.name, "cni0")!.address;
    if (l2) expect(brMac(ref)).toBe("00:00:00:00:00:00");
    expect(brMac(ours)).toBe(ours.result.interfaces[0].mac);
  });
});

describe.skipIf(!HAVE_REFERENCE)("where cni-ts differs on purpose (reference 1.1.1 measured side by side)", () => {
  const gwConf = (lab: BridgeLab) => lab.conf({ isGateway: true, ipMasq: true, ipam: lab.hostLocal(["10.54.0.0/24"]) });

  it("an eth0 that already exists in the pod: same message, code 999 vs 102; neither leaks an address", () => {
    const codes = KINDS.map((k) => {
      const lab = newLab(k, "eexist");
      const pod = lab.pod("a");
      sh("ip", ["-n", pod.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
      const r = lab.cni("ADD", gwConf(lab), { pod, containerID: CID });
      expect(r.status).toBe(1);
      expect(r.out?.msg).toBe("container veth name provided (eth0) already exists");
      expect(lab.reservations()).toEqual([]);
      return r.out?.code as number;
    });
    expect(codes).toEqual([999, 102]);
  });

  it("DEL after the pod's namespace is gone: the reference leaves its masquerade chain, cni-ts removes it", () => {
    const left = KINDS.map((k) => {
      const lab = newLab(k, "nsgone");
      const pod = lab.pod("a");
      const conf = gwConf(lab);
      const r = lab.add(conf, { pod, containerID: CID });
      sh("ip", ["netns", "del", pod.name]);
      const d = lab.cni("DEL", lab.withPrev(conf, r), { pod, containerID: CID });
      expect([d.status, d.stdout]).toEqual([0, ""]);
      expect(lab.reservations()).toEqual([]);
      return iptNat(lab.node.name).includes("CNI-");
    });
    expect(left).toEqual([true, false]);
  });

  it("DEL with CNI_NETNS empty: the reference releases the address only; cni-ts also removes the veth pair and the masquerade", () => {
    const left = KINDS.map((k) => {
      const lab = newLab(k, "nonetns");
      const pod = lab.pod("a");
      const conf = gwConf(lab);
      lab.add(conf, { pod, containerID: CID });
      const d = lab.cni("DEL", conf, { pod: "", containerID: CID });
      expect([d.status, d.stdout]).toEqual([0, ""]);
      expect(lab.reservations()).toEqual([]);
      return {
        veths: linkNames(lab.node.name).filter((n) => n.startsWith("veth")).length,
        podLinks: linkNames(pod.name),
        masq: iptNat(lab.node.name).includes("CNI-"),
      };
    });
    expect(left).toEqual([
      { veths: 1, podLinks: ["eth0", "lo"], masq: true },
      { veths: 0, podLinks: ["lo"], masq: false },
    ]);
  });

  it("isDefaultGateway with an IPAM default route without gw: the reference fails (route exists), cni-ts adds it once", () => {
    const out = KINDS.map((k) => {
      const lab = newLab(k, "dupdef");
      const pod = lab.pod("a");
      const r = lab.cni("ADD", lab.conf({ isDefaultGateway: true, ipam: lab.hostLocal(["10.55.0.0/24"]) }), {
        pod,
        containerID: CID,
      });
      return {
        code: r.out?.code,
        defaults: routesOf(pod.name, 4)
          .filter((x) => x.dst === "default")
          .map((x) => x.gateway),
      };
    });
    expect(out[0]!.code).toBe(999);
    expect(out[1]).toEqual({ code: undefined, defaults: ["10.55.0.1"] });
  });

  it("ADD failing after the veth exists (route refused): the reference leaves the veth pair and an addressed eth0, cni-ts nothing", () => {
    const out = KINDS.map((k) => {
      const lab = newLab(k, "rollback");
      const pod = lab.pod("a");
      const ipam = { ...lab.hostLocal(["10.56.0.0/24"]), routes: [{ dst: "10.200.0.0/16", gw: "192.0.2.1" }] };
      const r = lab.cni("ADD", lab.conf({ isGateway: true, ipam }), { pod, containerID: CID });
      expect(r.status).toBe(1);
      return {
        code: r.out?.code,
        veths: linkNames(lab.node.name).filter((n) => n.startsWith("veth")).length,
        podLinks: linkNames(pod.name),
        reservations: lab.reservations(),
      };
    });
    expect(out).toEqual([
      { code: 999, veths: 1, podLinks: ["eth0", "lo"], reservations: [] },
      { code: 100, veths: 0, podLinks: ["lo"], reservations: [] },
    ]);
  });
});
