// The bridge plugin, built (dist/bin), run the way a runtime runs it: inside a "node" network namespace of this
// run, pods in namespaces beside it, everything read back from the kernel with `ip -json` and proven with ping.
//
//   pod ns(s) eth0 ── veth ── cni0 (node ns, gateway addresses, masquerade) ── vout ── "outside" ns
//
// Nothing here touches the machine's root namespace; the Sandbox removes every namespace in afterAll.
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { iptablesMasqChain } from "../../lib/netfilter/masq-iptables.js";
import { hostVethName } from "../../plugins/bridge/names.js";
import {
  addrsOf,
  BridgeLab,
  type Conf,
  defaultGw,
  iptNat,
  labPath,
  linkNames,
  linkOf,
  nftRuleset,
  nftTables,
  nsRun,
  type Ns,
  ping,
  recordingTools,
  sysctl,
  withoutIdleNat,
  wire,
} from "./bridge-lab.js";
import { requireBuilt, Sandbox, sh } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const V4 = { subnet: "10.31.0.0/24", gw: "10.31.0.1", prefix: 24 };
const V6 = { subnet: "fd31::/64", gw: "fd31::1", prefix: 64 };
type Family = "v4" | "v6" | "dual";
const FAMILIES: Record<Family, Array<typeof V4>> = { v4: [V4], v6: [V6], dual: [V4, V6] };

const vethsOf = (lab: BridgeLab) => linkNames(lab.node.name).filter((n) => n.startsWith("veth"));
const ipOnly = (cidr: string) => cidr.split("/")[0]!;
const fam = (addr: string): 4 | 6 => (addr.includes(":") ? 6 : 4);
const withoutLock = (files: string[]) => files.filter((f) => !f.endsWith("/lock"));

describe("L3 at every version with a result (host-local ranges)", () => {
  const cases: Array<[string, Family]> = [];
  for (const v of ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    for (const f of ["v4", "v6", "dual"] as Family[]) cases.push([v, f]);

  it.each(cases)("cniVersion %s, %s: result, kernel state, connectivity, CHECK, GC/STATUS, DEL", (version, family) => {
    const nets = FAMILIES[family];
    const lab = new BridgeLab(sb, `l3${version.replace(/\./g, "")}${family}`);
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(nets.map((n) => n.subnet)) }, version);
    const [a, b] = [lab.pod("a"), lab.pod("b")];

    const r = lab.add(conf, { pod: a });
    expect(r.cniVersion).toBe(version);
    // Result shape: bridge, host veth, pod interface with its sandbox; every address on interface 2.
    expect(r.interfaces).toHaveLength(3);
    const [br, host, eth0] = r.interfaces as Array<{ name: string; mac: string; sandbox?: string }>;
    expect(br).toEqual({ name: "cni0", mac: expect.stringMatching(MAC) });
    expect(host).toEqual({ name: expect.stringMatching(/^veth[0-9a-f]{8}$/), mac: expect.stringMatching(MAC) });
    expect(eth0).toEqual({ name: "eth0", mac: expect.stringMatching(MAC), sandbox: a.path });
    expect(r.ips).toHaveLength(nets.length);
    nets.forEach((n, i) => {
      const ip = r.ips[i];
      expect(ip.interface).toBe(2);
      expect(ip.gateway).toBe(n.gw);
      expect(ip.address).toMatch(new RegExp(`^${n.gw.replace(/1$/, "")}2/${n.prefix}$`));
      if (version.startsWith("0.")) expect(ip.version).toBe(fam(n.gw) === 4 ? "4" : "6");
      else expect(ip.version).toBeUndefined();
    });
    expect(r.routes).toEqual(nets.map((n) => ({ dst: fam(n.gw) === 4 ? "0.0.0.0/0" : "::/0" })));

    // Kernel, pod side: addresses, link up, default routes through the gateways.
    const podAddrs = r.ips.map((ip: { address: string }) => ip.address).sort();
    expect(addrsOf(a.name, "eth0")).toEqual(podAddrs);
    const podLink = linkOf(a.name, "eth0")!;
    expect(podLink.flags).toContain("UP");
    expect(podLink.address).toBe(eth0!.mac);
    expect(podLink.linkinfo?.info_kind).toBe("veth");
    for (const n of nets) expect(defaultGw(a.name, fam(n.gw))).toBe(n.gw);
    // Node side: the bridge holds the gateways (isGateway), MACs as in the result, the veth is a port of cni0.
    expect(addrsOf(lab.node.name, "cni0")).toEqual(nets.map((n) => `${n.gw}/${n.prefix}`).sort());
    const brLink = linkOf(lab.node.name, "cni0")!;
    expect(brLink.linkinfo?.info_kind).toBe("bridge");
    expect(brLink.address).toBe(br!.mac);
    const hostLink = linkOf(lab.node.name, host!.name)!;
    expect(hostLink.master).toBe("cni0");
    expect(hostLink.address).toBe(host!.mac);
    expect(hostLink.operstate).toBe("UP");
    expect(hostLink.ifindex).toBe(podLink.link_index);
    // Sysctls: forwarding per family with a gateway, no router advertisements accepted on the node's links, and in
    // the pod no DAD (it would delay the addresses) and gratuitous ARP on link changes.
    const has = (f: 4 | 6) => nets.some((n) => fam(n.gw) === f);
    expect(sysctl(lab.node.name, "net.ipv4.ip_forward")).toBe(has(4) ? "1" : "0");
    expect(sysctl(lab.node.name, "net.ipv6.conf.all.forwarding")).toBe(has(6) ? "1" : "0");
    expect(sysctl(lab.node.name, "net.ipv6.conf.cni0.accept_ra")).toBe("0");
    expect(sysctl(lab.node.name, `net.ipv6.conf.${host!.name}.accept_ra`)).toBe("0");
    expect(sysctl(a.name, "net.ipv4.conf.eth0.arp_notify")).toBe("1");
    expect(sysctl(a.name, "net.ipv6.conf.eth0.accept_dad")).toBe("0");
    if (has(6)) expect(sysctl(a.name, "net.ipv6.conf.eth0.keep_addr_on_down")).toBe("1");

    // A second pod; the two reach each other and the gateway in every family.
    const rb = lab.add(conf, { pod: b });
    for (const ip of rb.ips as Array<{ address: string }>) expect(ping(a, ipOnly(ip.address), 3)).toBe(true);
    for (const ip of r.ips as Array<{ address: string }>) expect(ping(b, ipOnly(ip.address), 3)).toBe(true);
    // A fresh bridge's IPv6 gateway is "tentative" (DAD) for ~2 s, the reference's too: hence the retries.
    for (const n of nets) expect(ping(a, n.gw, 4)).toBe(true);

    const check = lab.cni("CHECK", lab.withPrev(conf, r), { pod: a });
    if (version === "0.3.1") {
      expect(check.out).toMatchObject({ code: 1 });
    } else {
      expect(check.stderr + check.stdout).toBe("");
      expect(check.status).toBe(0);
    }

    if (version === "1.1.0") {
      const valid = {
        "cni.dev/valid-attachments": [a, b].map((p) => ({ containerID: `ctr-${p.name}`, ifname: "eth0" })),
      };
      const gc = lab.cni("GC", { ...conf, ...valid });
      expect([gc.status, gc.stdout]).toEqual([0, ""]);
      expect(lab.reservations()).toHaveLength(2 * nets.length);
      const status = lab.cni("STATUS", conf);
      expect([status.status, status.stdout]).toEqual([0, ""]);
    }

    const prev = (res: unknown) => (version === "0.3.1" ? conf : lab.withPrev(conf, res));
    expect(lab.cni("DEL", prev(r), { pod: a }).status).toBe(0);
    expect(lab.cni("DEL", prev(rb), { pod: b }).status).toBe(0);
    expect(vethsOf(lab)).toEqual([]);
    expect(linkOf(a.name, "eth0")).toBeUndefined();
    // The data dir keeps only the allocation cursor of each range set, the (empty) lock file of the reference's
    // format, and cni-ts's own index under .cni-ts/.
    expect(withoutLock(lab.dataFiles())).toEqual(nets.map((_, i) => `${lab.network}/last_reserved_ip.${i}`));
  });
});

describe("L2 mode (no IPAM)", () => {
  it.each([
    ["ipam {}", { ipam: {} }],
    ["ipam absent", {}],
  ] as Array<[string, Conf]>)(
    "%s: 3 interfaces, no ips, pod link up, L2 traffic flows, CHECK passes, DEL cleans",
    (_label, extra) => {
      const lab = new BridgeLab(sb, `l2${extra.ipam ? "e" : "a"}`);
      const conf = lab.conf(extra);
      const [a, b] = [lab.pod("a"), lab.pod("b")];
      const r = lab.add(conf, { pod: a });
      expect(r.interfaces).toHaveLength(3);
      expect(r.interfaces[2]).toMatchObject({ name: "eth0", sandbox: a.path });
      expect(r.ips ?? []).toEqual([]);
      expect(linkOf(a.name, "eth0")!.flags).toContain("UP");
      expect(addrsOf(a.name, "eth0")).toEqual([]);
      expect(addrsOf(lab.node.name, "cni0")).toEqual([]);

      const rb = lab.add(conf, { pod: b });
      // The bridge MAC is pinned: it neither is nor becomes a port's MAC (the reference's follows its lowest port).
      const brMac = linkOf(lab.node.name, "cni0")!.address;
      expect(brMac).toBe(r.interfaces[0].mac);
      expect(rb.interfaces[0].mac).toBe(brMac);
      expect(brMac).not.toBe(r.interfaces[1].mac);
      expect(brMac).not.toBe(rb.interfaces[1].mac);
      expect(linkOf(lab.node.name, r.interfaces[1].name)!.address).toBe(r.interfaces[1].mac);

      // Plain L2: addresses the pods give themselves reach each other across the bridge.
      nsRun(a.name, "ip", ["addr", "add", "192.168.77.1/24", "dev", "eth0"]);
      nsRun(b.name, "ip", ["addr", "add", "192.168.77.2/24", "dev", "eth0"]);
      expect(ping(a, "192.168.77.2", 2)).toBe(true);

      const check = lab.cni("CHECK", lab.withPrev(conf, r), { pod: a });
      expect([check.status, check.stdout]).toEqual([0, ""]);

      expect(lab.cni("DEL", lab.withPrev(conf, r), { pod: a }).status).toBe(0);
      expect(lab.cni("DEL", lab.withPrev(conf, rb), { pod: b }).status).toBe(0);
      expect(vethsOf(lab)).toEqual([]);
      expect(linkOf(a.name, "eth0")).toBeUndefined();
      expect(linkOf(b.name, "eth0")).toBeUndefined();
    },
  );

  it("at 0.2.0 an L2 ADD fails with code 1 and creates nothing", () => {
    const lab = new BridgeLab(sb, "l2old");
    const a = lab.pod("a");
    const r = lab.cni("ADD", lab.conf({ ipam: {} }, "0.2.0"), { pod: a });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 1 });
    expect(linkNames(lab.node.name)).toEqual(["lo"]);
    expect(linkNames(a.name)).toEqual(["lo"]);
  });
});

describe("hairpinMode", () => {
  // A service-like virtual IP on the node, DNATed to the pod, with the kube-proxy style masquerade of traffic a pod
  // sends to itself. Bridge netfilter (on by default in a new namespace here) runs the node's nat hooks on bridged
  // frames, so the pod's packet is sent back out of the very port it came in on: only a hairpin port allows that.
  const VIP = "10.99.99.99";

  it.each([true, false])(
    "hairpinMode %s: port flag, and a pod reaches itself through a DNAT on the node only with it",
    (hairpin) => {
      const lab = new BridgeLab(sb, `hp${hairpin ? 1 : 0}`);
      const conf = lab.conf({ isGateway: true, hairpinMode: hairpin, ipam: lab.hostLocal(["10.32.0.0/24"]) });
      const a = lab.pod("a");
      const r = lab.add(conf, { pod: a });
      const podIP = ipOnly(r.ips[0].address);
      const port = linkOf(lab.node.name, r.interfaces[1].name)!;
      expect(port.linkinfo?.info_slave_kind).toBe("bridge");
      expect(port.linkinfo?.info_slave_data?.hairpin).toBe(hairpin);
      expect(nsRun(lab.node.name, "cat", ["/proc/sys/net/bridge/bridge-nf-call-iptables"]).stdout.trim()).toBe("1");

      nsRun(
        lab.node.name,
        "nft",
        ["-f", "-"],
        false,
        `table ip hairpin_test {
  chain pre { type nat hook prerouting priority dstnat; ip daddr ${VIP} dnat to ${podIP}; }
  chain post { type nat hook postrouting priority srcnat; ip saddr ${podIP} ip daddr ${podIP} masquerade; }
}`,
      );
      expect(ping(a, VIP, 2)).toBe(hairpin);
      expect(ping(a, "10.32.0.1")).toBe(true);

      const check = lab.cni("CHECK", lab.withPrev(conf, r), { pod: a });
      expect(check.status).toBe(0);
      // Our CHECK also verifies the port flag (the reference does not).
      nsRun(lab.node.name, "ip", [
        "link",
        "set",
        "dev",
        r.interfaces[1].name,
        "type",
        "bridge_slave",
        "hairpin",
        hairpin ? "off" : "on",
      ]);
      const bad = lab.cni("CHECK", lab.withPrev(conf, r), { pod: a });
      expect(bad.out).toMatchObject({ code: 103, msg: expect.stringContaining("hairpin") });
      expect(lab.cni("DEL", lab.withPrev(conf, r), { pod: a }).status).toBe(0);
    },
  );
});

describe("mtu", () => {
  it("mtu 1400: a new bridge, the host veth and the pod's eth0 get it; full-size packets pass", () => {
    const lab = new BridgeLab(sb, "mtu");
    const conf = lab.conf({ isGateway: true, mtu: 1400, ipam: lab.hostLocal(["10.33.0.0/24"]) });
    const [a, b] = [lab.pod("a"), lab.pod("b")];
    const r = lab.add(conf, { pod: a });
    const rb = lab.add(conf, { pod: b });
    expect(linkOf(lab.node.name, "cni0")!.mtu).toBe(1400);
    expect(linkOf(lab.node.name, r.interfaces[1].name)!.mtu).toBe(1400);
    expect(linkOf(lab.node.name, rb.interfaces[1].name)!.mtu).toBe(1400);
    expect(linkOf(a.name, "eth0")!.mtu).toBe(1400);
    // 1372 bytes of ICMP payload + 28 of headers = 1400, without fragmentation.
    const big = nsRun(a.name, "ping", ["-c1", "-W1", "-M", "do", "-s", "1372", ipOnly(rb.ips[0].address)], true);
    expect(big.status).toBe(0);
    expect(lab.cni("CHECK", lab.withPrev(conf, r), { pod: a }).status).toBe(0);
  });
});

describe("MAC addresses", () => {
  const CNI_ARGS_MAC = "0a:58:0a:22:00:11";
  const ARGS_MAC = "0a:58:0a:22:00:22";
  const RC_MAC = "0a:58:0a:22:00:33";
  // host-local gets the same CNI_ARGS and knows no MAC key: IgnoreUnknown is needed, with the reference too.
  const args = `IgnoreUnknown=1;MAC=${CNI_ARGS_MAC}`;
  let lab: BridgeLab;
  let conf: Conf;
  beforeAll(() => {
    lab = new BridgeLab(sb, "mac");
    conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.34.0.0/24"]) });
  });

  it.each([
    ["CNI_ARGS MAC= alone", {}, CNI_ARGS_MAC],
    ["args.cni.mac over CNI_ARGS", { args: { cni: { mac: ARGS_MAC } } }, ARGS_MAC],
    ["runtimeConfig.mac over both", { args: { cni: { mac: ARGS_MAC } }, runtimeConfig: { mac: RC_MAC } }, RC_MAC],
  ] as Array<[string, Conf, string]>)("%s", (_label, extra, want) => {
    const pod = lab.pod();
    const c = { ...conf, ...extra };
    const r = lab.add(c, { pod, args });
    expect(r.interfaces[2].mac).toBe(want);
    expect(linkOf(pod.name, "eth0")!.address).toBe(want);
    expect(lab.cni("CHECK", lab.withPrev(c, r), { pod, args }).status).toBe(0);
    expect(lab.cni("DEL", lab.withPrev(c, r), { pod }).status).toBe(0);
  });

  it("host veth and bridge MACs stay as the result says after more pods join", () => {
    const pods = [lab.pod(), lab.pod(), lab.pod()];
    const results = pods.map((pod) => lab.add(conf, { pod }));
    const first = results[0]!;
    for (const r of results) expect(r.interfaces[0].mac).toBe(first.interfaces[0].mac);
    expect(linkOf(lab.node.name, "cni0")!.address).toBe(first.interfaces[0].mac);
    for (const r of results) {
      expect(linkOf(lab.node.name, r.interfaces[1].name)!.address).toBe(r.interfaces[1].mac);
      expect(r.interfaces[1].mac).not.toBe(r.interfaces[0].mac);
    }
    results.forEach((r, i) => {
      expect(lab.cni("CHECK", lab.withPrev(conf, r), { pod: pods[i] }).status).toBe(0);
    });
    results.forEach((r, i) => {
      expect(lab.cni("DEL", lab.withPrev(conf, r), { pod: pods[i] }).status).toBe(0);
    });
  });
});

/** An outside network the node reaches through `vout`, with no route back to the pods' subnets. */
function withOutside(lab: BridgeLab): Ns {
  const out = lab.pod("out");
  wire(lab.node, out, "vout", "10.77.0.1/24", "fd77::1/64", "10.77.0.2/24", "fd77::2/64");
  return out;
}

describe.each(["nftables", "iptables"])("ipMasq with ipMasqBackend %s", (backend) => {
  it("the pod reaches an outside address only with masquerade; CHECK passes; DEL removes the attachment's rules", () => {
    const lab = new BridgeLab(sb, `mq${backend.slice(0, 3)}`);
    withOutside(lab);
    const before = lab.snapshot();
    const ipam = lab.hostLocal(["10.35.0.0/24", "fd35::/64"]);

    // Without ipMasq: forwarding works (the pod reaches the node's outside address), but the outside cannot answer.
    const plain = lab.conf({ isGateway: true, ipam });
    const p0 = lab.pod("nomasq");
    const r0 = lab.add(plain, { pod: p0 });
    expect(ping(p0, "10.77.0.1")).toBe(true);
    expect(ping(p0, "fd77::1", 4)).toBe(true);
    expect(ping(p0, "10.77.0.2")).toBe(false);
    expect(ping(p0, "fd77::2")).toBe(false);
    expect(lab.cni("DEL", lab.withPrev(plain, r0), { pod: p0 }).status).toBe(0);
    expect(nftRuleset(lab.node.name)).toBe(before.nft);

    const conf = lab.conf({ isGateway: true, ipMasq: true, ipMasqBackend: backend, ipam });
    const pod = lab.pod("masq");
    const r = lab.add(conf, { pod });
    const [ip4, ip6] = (r.ips as Array<{ address: string }>).map((i) => ipOnly(i.address)) as [string, string];
    expect(ping(pod, "10.77.0.2", 2)).toBe(true);
    expect(ping(pod, "fd77::2", 4)).toBe(true);
    // The replies prove the masquerade: the outside namespace has no route to 10.35.0.0/24 or fd35::/64.
    if (backend === "nftables") {
      const rules = nftRuleset(lab.node.name);
      expect(rules).toContain("table inet cni_ts_masq");
      expect(rules).toContain(ip4);
      expect(rules).toContain(ip6);
    } else {
      const nat = iptNat(lab.node.name);
      expect(nat).toMatch(new RegExp(`-A POSTROUTING -s ${ip4.replace(/\./g, "\\.")}/32 .*-j CNI-`));
      expect(nat).toContain(`-A POSTROUTING -s ${ip6}/128`);
      expect(nat).toContain("-j MASQUERADE");
    }
    const check = lab.cni("CHECK", lab.withPrev(conf, r), { pod });
    expect([check.status, check.stdout]).toEqual([0, ""]);

    expect(lab.cni("DEL", lab.withPrev(conf, r), { pod }).status).toBe(0);
    const after = lab.snapshot();
    expect(after.links).toEqual(before.links.concat("cni0").sort());
    expect(after.reservations).toEqual([]);
    expect(after.ipt).not.toContain("CNI-");
    expect(after.nft).not.toContain(ip4);
    expect(after.nft).not.toContain(ip6);
    // What DEL leaves on purpose: for nftables our table with its 4 constant rules and empty maps; for iptables
    // the `ip nat`/`ip6 nat` tables iptables-nft created, with no rule in them (iptables never deletes a table).
    expect(withoutIdleNat(after.nft)).toBe(withoutIdleNat(before.nft));
    expect(nftTables(after.nft)).toEqual(
      backend === "nftables" ? ["table inet cni_ts_masq"] : ["table ip nat", "table ip6 nat"],
    );
    expect(nftTables(before.nft)).toEqual([]);
  });
});

describe.each(["nftables", "iptables"])("DEL leaves nothing behind (%s masquerade)", (backend) => {
  let lab: BridgeLab;
  let conf: Conf;
  let clean: ReturnType<BridgeLab["snapshot"]>;
  beforeAll(() => {
    lab = new BridgeLab(sb, `del${backend.slice(0, 3)}`);
    conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: backend,
      ipam: lab.hostLocal(["10.36.0.0/24", "fd36::/64"]),
    });
    // Warm up so the bridge and the idle nat tables exist: then "before" and "after" compare exactly.
    const w = lab.pod("warm");
    lab.add(conf, { pod: w });
    expect(lab.cni("DEL", conf, { pod: w }).status).toBe(0);
    clean = lab.snapshot();
    expect(clean.reservations).toEqual([]);
  });

  const expectClean = () => {
    const now = lab.snapshot();
    expect(now.links).toEqual(clean.links);
    expect(now.reservations).toEqual([]);
    expect(withoutLock(now.data)).toEqual([`${lab.network}/last_reserved_ip.0`, `${lab.network}/last_reserved_ip.1`]);
    expect(now.nft).toBe(clean.nft);
    expect(now.ipt).toBe(clean.ipt);
  };

  it("after `ip netns del POD` (host veth gone with it): rc 0, reservation released, masquerade gone", () => {
    const pod = lab.pod();
    const r = lab.add(conf, { pod });
    expect(lab.snapshot().nft).not.toBe(clean.nft);
    sh("ip", ["netns", "del", pod.name]);
    // The kernel removes the veth pair with the namespace, asynchronously: DEL may or may not still see it.
    const d = lab.cni("DEL", lab.withPrev(conf, r), { pod });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(linkOf(lab.node.name, r.interfaces[1].name)).toBeUndefined();
    expectClean();
  });

  it("twice: both succeed", () => {
    const pod = lab.pod();
    const r = lab.add(conf, { pod });
    expect(lab.cni("DEL", lab.withPrev(conf, r), { pod }).status).toBe(0);
    expect(lab.cni("DEL", lab.withPrev(conf, r), { pod }).status).toBe(0);
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expectClean();
  });

  it("again after a completed DEL, with CNI_NETNS empty and no prevResult (containerd's RemovePodSandbox): no process is started", () => {
    const pod = lab.pod();
    const r = lab.add(conf, { pod });
    expect(lab.cni("DEL", lab.withPrev(conf, r), { pod }).status).toBe(0);
    sh("ip", ["netns", "del", pod.name]);
    const tools = recordingTools(sb);
    const d = lab.cni("DEL", conf, { pod: "", containerID: `ctr-${pod.name}`, path: tools.path });
    expect([d.status, d.stdout], d.stderr).toEqual([0, ""]);
    expect(tools.calls()).toEqual([]);
    expectClean();
  });

  it("with CNI_NETNS empty and no prevResult: the host veth (and with it the pod's eth0) goes", () => {
    const pod = lab.pod();
    const r = lab.add(conf, { pod });
    const d = lab.cni("DEL", conf, { pod: "", containerID: `ctr-${pod.name}` });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(r.interfaces[1].name).toBe(hostVethName(`ctr-${pod.name}`, "eth0"));
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expectClean();
  });
});

// GC at 1.1.0 with a list that leaves pods out, as a runtime's list does when it was computed before their ADDs
// finished: the bridge keeps the state of every pod whose host veth exists, and collects it once the namespace (and
// with it the veth) is gone. host-local applies its own rule to the reservations (gcGraceSeconds).
describe.each(["nftables", "iptables"])("GC (%s masquerade, macspoofchk)", (backend) => {
  it("keeps a live pod's masquerade and spoof check whatever the list; collects a gone pod's rules, then its reservation", () => {
    const lab = new BridgeLab(sb, `gc${backend.slice(0, 3)}`);
    withOutside(lab);
    const ipam = lab.hostLocal(["10.37.0.0/24", "fd37::/64"]);
    const conf = lab.conf({ isGateway: true, ipMasq: true, ipMasqBackend: backend, macspoofchk: true, ipam }, "1.1.0");
    const gc = (valid: Array<{ containerID: string; ifname: string }>, grace?: number) => {
      const g = lab.cni("GC", {
        ...conf,
        ipam: grace === undefined ? ipam : { ...ipam, gcGraceSeconds: grace },
        "cni.dev/valid-attachments": valid,
      });
      expect([g.status, g.stdout], g.stderr).toEqual([0, ""]);
    };
    const healthy = (pod: Ns, r: unknown) => {
      const c = lab.cni("CHECK", lab.withPrev(conf, r), { pod });
      expect([c.status, c.stdout]).toEqual([0, ""]);
      expect(ping(pod, "10.77.0.2", 2)).toBe(true);
    };
    // Mentions of an address as a whole (10.37.0.3, not 10.37.0.30) in a rule set.
    const mentions = (text: string, ip: string) =>
      new RegExp(`(^|[^0-9a-f:.])${ip.replace(/\./g, "\\.")}([^0-9a-f:.]|$)`, "m").test(text);
    // Warm up so the bridge and the idle tables exist: then "before" and "after" compare exactly.
    const w = lab.pod("warm");
    lab.add(conf, { pod: w });
    expect(lab.cni("DEL", conf, { pod: w }).status).toBe(0);
    const clean = lab.snapshot();

    const [a, b] = [lab.pod("a"), lab.pod("b")];
    const ra = lab.add(conf, { pod: a });
    const rb = lab.add(conf, { pod: b });
    const both = lab.snapshot();
    gc([]);
    expect(lab.snapshot()).toEqual(both);
    healthy(a, ra);
    healthy(b, rb);

    // a's namespace goes without DEL: its veth with it, so its masquerade and spoof-check elements go at the next
    // GC; its reservation stays, younger than the default grace.
    const vethA = hostVethName(`ctr-${a.name}`, "eth0");
    const ipsA = (ra.ips as Array<{ address: string }>).map((i) => ipOnly(i.address));
    lab.dropPod(a);
    gc([]);
    const afterA = lab.snapshot();
    for (const ip of ipsA) {
      expect(mentions(afterA.nft, ip), ip).toBe(false);
      expect(mentions(afterA.ipt, ip), ip).toBe(false);
    }
    expect(afterA.ipt).not.toContain(iptablesMasqChain(lab.network, `ctr-${a.name}`));
    expect(afterA.nft).not.toContain(vethA);
    expect(afterA.nft).toContain(hostVethName(`ctr-${b.name}`, "eth0"));
    expect(afterA.reservations).toEqual(both.reservations);
    healthy(b, rb);

    // With grace 0 and b listed, host-local releases a's reservations too once a's ADD is older than 60 s: nothing
    // of a is left anywhere.
    lab.ageIpamIndex();
    gc([{ containerID: `ctr-${b.name}`, ifname: "eth0" }], 0);
    const ipsB = (rb.ips as Array<{ address: string }>).map((i) => ipOnly(i.address));
    expect(lab.reservations()).toEqual([...ipsB].sort());
    healthy(b, rb);
    expect(lab.cni("DEL", lab.withPrev(conf, rb), { pod: b }).status).toBe(0);
    expect(lab.snapshot()).toEqual(clean);
  });
});

describe("errors: the right code, and nothing created or reserved", () => {
  it("an eth0 that already exists in the pod: 102, no address leaked, no veth left", () => {
    const lab = new BridgeLab(sb, "eexist");
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.37.0.0/24"]) });
    const pod = lab.pod();
    nsRun(pod.name, "ip", ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    const r = lab.cni("ADD", conf, { pod });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 102, msg: "container veth name provided (eth0) already exists" });
    expect(lab.reservations()).toEqual([]);
    expect(vethsOf(lab)).toEqual([]);
    expect(linkNames(pod.name)).toEqual(["eth0", "eth0peer", "lo"]);
  });

  it.each(["iptables", "nftables"])(
    "a second ADD of a live attachment (%s): 102, and the first pod keeps its address, veth and masquerade",
    (backend) => {
      const lab = new BridgeLab(sb, `readd${backend.slice(0, 3)}`);
      const conf = lab.conf(
        {
          isGateway: true,
          ipMasq: true,
          ipMasqBackend: backend,
          macspoofchk: true,
          ipam: lab.hostLocal(["10.36.0.0/24"]),
        },
        "1.1.0",
      );
      const pod = lab.pod();
      const first = lab.cni("ADD", conf, { pod });
      expect(first.status, first.stdout + first.stderr).toBe(0);
      const before = lab.snapshot();
      const again = lab.cni("ADD", conf, { pod });
      expect(again.status).toBe(1);
      expect(again.out).toMatchObject({ code: 102 });
      // The refused ADD rolled back only what it made itself: nothing, since it made nothing.
      expect(lab.snapshot()).toEqual(before);
      expect(lab.cni("CHECK", lab.withPrev(conf, first.out), { pod })).toMatchObject({ status: 0, stdout: "" });
      expect(lab.cni("DEL", lab.withPrev(conf, first.out), { pod }).status).toBe(0);
    },
  );

  it("a node batch that fails after creating the veth (IPv6 disabled on the bridge): 100, no veth, no reservation left", () => {
    const lab = new BridgeLab(sb, "halfbatch");
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.35.0.0/24", "fd35::/64"]) });
    nsRun(lab.node.name, "ip", ["link", "add", "cni0", "type", "bridge"]);
    nsRun(lab.node.name, "sysctl", ["-qw", "net.ipv6.conf.cni0.disable_ipv6=1"]);
    const pod = lab.pod();
    const r = lab.cni("ADD", conf, { pod });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 100 });
    expect(vethsOf(lab)).toEqual([]);
    expect(lab.reservations()).toEqual([]);
    expect(linkNames(pod.name)).toEqual(["lo"]);
  });

  it.each([
    ["bridge name with /", { bridge: "br/0" }, 7],
    ["bridge name of 16 characters", { bridge: "b".repeat(16) }, 7],
    ["vlan 5000", { vlan: 5000 }, 7],
    ["hairpinMode with promiscMode", { hairpinMode: true, promiscMode: true }, 7],
    ["vlan with isGateway, bridge name too long for <bridge>.<vlan>", { bridge: "b".repeat(12), vlan: 1000 }, 7],
  ] as Array<[string, Conf, number]>)("%s: code %i", (_label, extra, code) => {
    const lab = new BridgeLab(sb, "bad");
    const pod = lab.pod();
    const r = lab.cni("ADD", lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.38.0.0/24"]), ...extra }), { pod });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code });
    expect(linkNames(lab.node.name)).toEqual(["lo"]);
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expect(lab.reservations()).toEqual([]);
  });

  it("a link named like the bridge that is not a bridge: code 7, no address leaked", () => {
    const lab = new BridgeLab(sb, "notbr");
    nsRun(lab.node.name, "ip", ["link", "add", "cni0", "type", "veth", "peer", "name", "cni0peer"]);
    const pod = lab.pod();
    const r = lab.cni("ADD", lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.39.0.0/24"]) }), { pod });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 7, msg: expect.stringContaining("already exists but is not a bridge") });
    expect(linkNames(lab.node.name)).toEqual(["cni0", "cni0peer", "lo"]);
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expect(lab.reservations()).toEqual([]);
  });

  it("IPAM failure (range of one address, second pod): IPAM's code, no veth, pod untouched", () => {
    const lab = new BridgeLab(sb, "ipamfail");
    const ipam = {
      type: "host-local",
      dataDir: lab.dataDir,
      ranges: [[{ subnet: "10.40.0.0/29", rangeStart: "10.40.0.2", rangeEnd: "10.40.0.2" }]],
    };
    const conf = lab.conf({ isGateway: true, ipam });
    const [a, b] = [lab.pod("a"), lab.pod("b")];
    lab.add(conf, { pod: a });
    const r = lab.cni("ADD", conf, { pod: b });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 101, msg: expect.stringContaining("no IP addresses available") });
    expect(vethsOf(lab)).toEqual([hostVethName(`ctr-${a.name}`, "eth0")]);
    expect(linkNames(b.name)).toEqual(["lo"]);
    expect(lab.reservations()).toEqual(["10.40.0.2"]);
  });

  it("a failure after the veth exists (a route the kernel refuses): code 100, and ADD undoes veth, address, masquerade", () => {
    const lab = new BridgeLab(sb, "rollback");
    const ipam = { ...lab.hostLocal(["10.44.0.0/24"]), routes: [{ dst: "10.200.0.0/16", gw: "192.0.2.1" }] };
    const pod = lab.pod();
    const r = lab.cni("ADD", lab.conf({ isGateway: true, ipMasq: true, ipMasqBackend: "nftables", ipam }), { pod });
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 100, msg: expect.stringContaining("Nexthop has invalid gateway") });
    expect(vethsOf(lab)).toEqual([]);
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expect(lab.reservations()).toEqual([]);
    expect(nftRuleset(lab.node.name)).not.toContain("10.44.0.2");
  });
});

describe("port wait", () => {
  // ADD reads the host veth's operstate from sysfs, which shows the namespace it was mounted in. Run the plugin with
  // the node's network namespace but another namespace's sysfs, where a veth that stays DOWN has the host veth's
  // name: the MAC guard must reject that link and ADD ask ip instead (taken for the veth, it fails ADD with code 100
  // "bridge port in error state: DOWN").
  it("under another namespace's sysfs with a decoy of the host veth's name: ADD succeeds, CHECK passes", () => {
    const lab = new BridgeLab(sb, "sysfsdecoy");
    const other = sb.netns("sysfsdecoy-other");
    const pod = lab.pod();
    const veth = hostVethName(`ctr-${pod.name}`, "eth0");
    nsRun(other.name, "ip", ["link", "add", veth, "type", "veth", "peer", "name", "decoypeer"]);
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.46.0.0/24"]) });
    const env = {
      PATH: labPath(sb),
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: `ctr-${pod.name}`,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: lab.bin,
    };
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        other.name,
        "nsenter",
        `--net=${lab.node.path}`,
        "env",
        "-i",
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        `${lab.bin}/bridge`,
      ],
      { input: JSON.stringify(conf), encoding: "utf8", timeout: 30_000 },
    );
    expect([r.status, r.stderr]).toEqual([0, ""]);
    const result = JSON.parse(r.stdout) as Record<string, any>;
    expect(result.interfaces[1].name).toBe(veth);
    expect(linkOf(lab.node.name, veth)!.operstate).toBe("UP");
    expect(lab.cni("CHECK", lab.withPrev(conf, result), { pod })).toMatchObject({ status: 0, stdout: "" });
  });
});

describe("concurrency", () => {
  it("8 pods ADDed at once on one node: distinct addresses, all reach the gateway; DELed at once: nothing left", async () => {
    const lab = new BridgeLab(sb, "conc");
    const conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: "nftables",
      ipam: lab.hostLocal(["10.43.0.0/24", "fd43::/64"]),
    });
    const pods = Array.from({ length: 8 }, (_, i) => lab.pod(`c${i}`));
    const adds = await Promise.all(pods.map((pod) => lab.cniAsync("ADD", conf, { pod })));
    for (const a of adds) expect([a.status, a.out?.code, a.out?.msg]).toEqual([0, undefined, undefined]);
    const results = adds.map((a) => a.out!);
    for (const f of [0, 1]) expect(new Set(results.map((r) => r.ips[f].address)).size).toBe(8);
    const brMac = linkOf(lab.node.name, "cni0")!.address;
    for (const r of results) expect(r.interfaces[0].mac).toBe(brMac);
    expect(vethsOf(lab)).toHaveLength(8);
    for (const pod of pods) expect(ping(pod, "10.43.0.1")).toBe(true);
    for (const pod of pods) expect(ping(pod, "fd43::1", 4)).toBe(true);
    const checks = await Promise.all(
      pods.map((pod, i) => lab.cniAsync("CHECK", lab.withPrev(conf, results[i]), { pod })),
    );
    for (const c of checks) expect([c.status, c.stdout]).toEqual([0, ""]);

    const dels = await Promise.all(pods.map((pod, i) => lab.cniAsync("DEL", lab.withPrev(conf, results[i]), { pod })));
    for (const d of dels) expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(vethsOf(lab)).toEqual([]);
    expect(lab.reservations()).toEqual([]);
    expect(nftRuleset(lab.node.name)).not.toContain("elements =");
  });
});
