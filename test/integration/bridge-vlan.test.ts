// VLANs of the bridge plugin: port membership, traffic kept apart between VLANs and carried tagged on a trunk, the
// VLAN gateway (`vlan` with `isGateway`), CHECK, DEL, and the reference beside ours.
//
// This machine's kernel has no bridge vlan_filtering and no 8021q, so on it these tests are skipped, and `npm test`
// runs this file again in a guest with Debian's stock kernel (scripts/vm.mjs), where they run. Inside the guest,
// the sandbox rules hold as everywhere: a node namespace per lab, pods beside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vlanGatewayPort } from "../../plugins/bridge/vlan.js";
import {
  addrsOf,
  BridgeLab,
  type Conf,
  kernelHasVlanFiltering,
  linkNames,
  linkOf,
  nsRun,
  type Ns,
  ping,
  REFERENCE_BIN,
} from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

const VLAN_OK = kernelHasVlanFiltering(sb);
const SKIP = VLAN_OK
  ? ""
  : " (skipped: this kernel cannot create a bridge with vlan_filtering; npm test runs it in the guest)";
const vit = it.skipIf(!VLAN_OK);

/** `bridge -json vlan show` of one port: vid -> flags; ranges expanded. */
function vlansOf(lab: BridgeLab, dev: string): Map<number, string[]> {
  const rows = JSON.parse(
    nsRun(lab.node.name, "bridge", ["-json", "vlan", "show", "dev", dev]).stdout || "[]",
  ) as Array<{ ifname: string; vlans: Array<{ vlan: number; vlanEnd?: number; flags?: string[] }> }>;
  const out = new Map<number, string[]>();
  for (const v of rows.find((r) => r.ifname === dev)?.vlans ?? [])
    for (let id = v.vlan; id <= (v.vlanEnd ?? v.vlan); id++) out.set(id, v.flags ?? []);
  return out;
}

const podVeths = (lab: BridgeLab) => linkNames(lab.node.name).filter((n) => n.startsWith("veth"));
const ipOnly = (cidr: string) => cidr.split("/")[0]!;

/** A network on the lab's bridge with its own host-local range inside one shared subnet (so VLANs, not routing, decide). */
function netOn(lab: BridgeLab, name: string, vlan: Conf, range: [string, string]): Conf {
  const ipam = {
    type: "host-local",
    dataDir: `${lab.dataDir}/${name}`,
    ranges: [[{ subnet: "10.50.0.0/24", rangeStart: range[0], rangeEnd: range[1] }]],
  };
  return { ...lab.conf({ ...vlan, ipam }), name };
}

describe("VLAN membership", () => {
  vit(`vlan 100: PVID 100 untagged on the host veth, VID 1 removed, vlan_filtering on; CHECK passes${SKIP}`, () => {
    const lab = new BridgeLab(sb, "vlan");
    const pod = lab.pod();
    const conf = lab.conf({ vlan: 100, ipam: lab.hostLocal(["10.41.0.0/24"]) });
    const r = lab.add(conf, { pod });
    expect(linkOf(lab.node.name, "cni0")!.linkinfo?.info_data?.vlan_filtering).toBe(1);
    const v = vlansOf(lab, r.interfaces[1].name);
    expect(v.get(100)).toEqual(expect.arrayContaining(["PVID", "Egress Untagged"]));
    expect(v.has(1)).toBe(false);
    expect(lab.cni("CHECK", lab.withPrev(conf, r), { pod })).toMatchObject({ status: 0, stdout: "" });
  });

  vit(`preserveDefaultVlan keeps VID 1${SKIP}`, () => {
    const lab = new BridgeLab(sb, "vlanpd");
    const pod = lab.pod();
    const r = lab.add(lab.conf({ vlan: 100, preserveDefaultVlan: true, ipam: lab.hostLocal(["10.42.0.0/24"]) }), {
      pod,
    });
    const v = vlansOf(lab, r.interfaces[1].name);
    expect(v.has(1)).toBe(true);
    expect(v.get(100)).toEqual(expect.arrayContaining(["PVID"]));
  });

  vit(`vlanTrunk [101, 200-210]: tagged VIDs, native VLAN 1 untagged${SKIP}`, () => {
    const lab = new BridgeLab(sb, "trunk");
    const pod = lab.pod();
    const r = lab.add(lab.conf({ vlanTrunk: [{ id: 101 }, { minID: 200, maxID: 210 }], ipam: {} }), { pod });
    const v = vlansOf(lab, r.interfaces[1].name);
    for (const id of [101, 200, 205, 210]) expect(v.get(id)).toEqual([]);
    expect(v.has(199)).toBe(false);
    expect(v.has(211)).toBe(false);
    expect(v.get(1)).toEqual(expect.arrayContaining(["PVID", "Egress Untagged"]));
  });

  vit(`CHECK finds a port that lost its VLAN: code 103, and says which${SKIP}`, () => {
    const lab = new BridgeLab(sb, "vlandrift");
    const pod = lab.pod();
    const conf = lab.conf({ vlan: 120, ipam: lab.hostLocal(["10.45.0.0/24"]) });
    const r = lab.add(conf, { pod });
    nsRun(lab.node.name, "bridge", ["vlan", "del", "dev", r.interfaces[1].name, "vid", "120"]);
    const c = lab.cni("CHECK", lab.withPrev(conf, r), { pod });
    expect(c.status).toBe(1);
    expect(c.out).toMatchObject({
      code: 103,
      msg: `vlan: VLAN 120 is not the untagged PVID of ${r.interfaces[1].name}`,
    });
  });
});

describe("VLAN traffic", () => {
  vit(
    `pods of VLAN 100 reach each other, not the pod of VLAN 200 in the same subnet; a trunk pod reaches VLAN 100 tagged${SKIP}`,
    () => {
      const lab = new BridgeLab(sb, "vlantraffic");
      const net100 = netOn(lab, "v100", { vlan: 100 }, ["10.50.0.10", "10.50.0.19"]);
      const net200 = netOn(lab, "v200", { vlan: 200 }, ["10.50.0.20", "10.50.0.29"]);
      const [a, b, c, t] = [lab.pod("a"), lab.pod("b"), lab.pod("c"), lab.pod("t")];
      const ra = lab.add(net100, { pod: a });
      const rb = lab.add(net100, { pod: b });
      const rc = lab.add(net200, { pod: c });
      const [ipA, ipB, ipC] = [ra, rb, rc].map((r) => ipOnly(r.ips[0].address)) as [string, string, string];
      expect(ping(a, ipB, 3)).toBe(true);
      expect(ping(b, ipA)).toBe(true);
      expect(ping(a, ipC, 2)).toBe(false);
      expect(ping(c, ipB, 2)).toBe(false);

      // A trunk port carries VLAN 100 tagged: the pod's own 802.1Q interface on top of eth0 is in VLAN 100.
      lab.add(lab.conf({ vlanTrunk: [{ id: 100 }], ipam: {} }), { pod: t });
      nsRun(t.name, "ip", ["link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100"]);
      nsRun(t.name, "ip", ["addr", "add", "10.50.0.200/24", "dev", "eth0.100"]);
      nsRun(t.name, "ip", ["link", "set", "eth0.100", "up"]);
      expect(ping(t, ipA, 3)).toBe(true);
      expect(ping(t, ipC, 2)).toBe(false);
    },
  );

  vit(
    `a bridge an earlier non-VLAN network made gets vlan_filtering from the first VLAN ADD: VLANs kept apart, the earlier pod still reaches its gateway; CHECK reports it switched off${SKIP}`,
    () => {
      const lab = new BridgeLab(sb, "vlanlate");
      const plain = { ...lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.52.0.0/24"]) }), name: "plain" };
      const p0 = lab.pod("p0");
      lab.add(plain, { pod: p0 });
      expect(linkOf(lab.node.name, "cni0")!.linkinfo?.info_data?.vlan_filtering).toBe(0);

      const net100 = netOn(lab, "v100", { vlan: 100 }, ["10.50.0.10", "10.50.0.19"]);
      const net200 = netOn(lab, "v200", { vlan: 200 }, ["10.50.0.20", "10.50.0.29"]);
      const [a, b, c] = [lab.pod("a"), lab.pod("b"), lab.pod("c")];
      const ra = lab.add(net100, { pod: a });
      const rb = lab.add(net100, { pod: b });
      const rc = lab.add(net200, { pod: c });
      expect(linkOf(lab.node.name, "cni0")!.linkinfo?.info_data?.vlan_filtering).toBe(1);
      expect(ping(a, ipOnly(rb.ips[0].address), 3)).toBe(true);
      expect(ping(a, ipOnly(rc.ips[0].address), 2)).toBe(false);
      expect(ping(p0, "10.52.0.1", 3)).toBe(true);
      expect(lab.cni("CHECK", lab.withPrev(net100, ra), { pod: a })).toMatchObject({ status: 0, stdout: "" });

      nsRun(lab.node.name, "ip", ["link", "set", "dev", "cni0", "type", "bridge", "vlan_filtering", "0"]);
      const k = lab.cni("CHECK", lab.withPrev(net100, ra), { pod: a });
      expect(k.status).toBe(1);
      expect(k.out).toMatchObject({ code: 103, msg: "vlan: bridge cni0 has vlan_filtering off" });
    },
  );
});

describe("VLAN gateway (vlan with isGateway)", () => {
  const gwConf = (lab: BridgeLab, extra: Conf = {}) =>
    lab.conf({ vlan: 300, isGateway: true, ipam: lab.hostLocal(["10.51.0.0/24", "fd51::/64"]), ...extra });

  vit(
    `the gateway is on cni0.300, a veth whose bridge port has PVID 300; 4th result interface; pods reach it; CHECK; DEL and GC keep it${SKIP}`,
    () => {
      const lab = new BridgeLab(sb, "vlangw");
      const conf = gwConf(lab);
      const [a, b] = [lab.pod("a"), lab.pod("b")];
      const ra = lab.add(conf, { pod: a });
      const rb = lab.add(conf, { pod: b });
      const port = vlanGatewayPort("cni0", 300);

      for (const r of [ra, rb]) {
        expect(r.interfaces.map((i: { name: string }) => i.name)).toEqual([
          "cni0",
          expect.stringMatching(/^veth/),
          "eth0",
          "cni0.300",
        ]);
        expect(r.ips.map((ip: { interface: number }) => ip.interface)).toEqual([2, 2]);
      }
      expect(rb.interfaces[3].mac).toBe(ra.interfaces[3].mac);
      const gw = linkOf(lab.node.name, "cni0.300")!;
      expect(gw.linkinfo?.info_kind).toBe("veth");
      expect(gw.address).toBe(ra.interfaces[3].mac);
      expect(addrsOf(lab.node.name, "cni0.300")).toEqual(["10.51.0.1/24", "fd51::1/64"]);
      expect(addrsOf(lab.node.name, "cni0")).toEqual([]);
      expect(linkOf(lab.node.name, port)!.master).toBe("cni0");
      const pv = vlansOf(lab, port);
      expect(pv.get(300)).toEqual(expect.arrayContaining(["PVID", "Egress Untagged"]));
      expect(pv.has(1)).toBe(false);

      for (const pod of [a, b]) {
        expect(ping(pod, "10.51.0.1", 3)).toBe(true);
        expect(ping(pod, "fd51::1", 4)).toBe(true);
      }
      expect(lab.cni("CHECK", lab.withPrev(conf, ra), { pod: a })).toMatchObject({ status: 0, stdout: "" });

      // The gateway is shared: DEL of every pod leaves it, as it leaves the bridge; the pods' state goes.
      for (const [pod, r] of [
        [a, ra],
        [b, rb],
      ] as Array<[Ns, Record<string, any>]>) {
        expect(lab.cni("DEL", lab.withPrev(conf, r), { pod })).toMatchObject({ status: 0, stdout: "" });
      }
      expect(podVeths(lab)).toEqual([]);
      expect(lab.reservations()).toEqual([]);
      expect(linkNames(lab.node.name)).toEqual(["cni0", "cni0.300", "lo", port].sort());
      // GC with no valid attachment (spec 1.1) leaves it too.
      expect(lab.cni("GC", { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": [] })).toMatchObject({
        status: 0,
        stdout: "",
      });
      expect(linkNames(lab.node.name)).toEqual(["cni0", "cni0.300", "lo", port].sort());
      expect(addrsOf(lab.node.name, "cni0.300")).toEqual(["10.51.0.1/24", "fd51::1/64"]);

      // CHECK names a gateway interface that went missing.
      const c = lab.pod("c");
      const rc = lab.add(conf, { pod: c });
      nsRun(lab.node.name, "ip", ["link", "del", "cni0.300"]);
      const chk = lab.cni("CHECK", lab.withPrev(conf, rc), { pod: c });
      expect(chk.out).toMatchObject({ code: 103, msg: "VLAN gateway interface cni0.300 does not exist" });
    },
  );

  vit(
    `6 first ADDs at once on a fresh node: one gateway pair, one MAC in every result, every pod reaches it${SKIP}`,
    async () => {
      const lab = new BridgeLab(sb, "vlangwrace");
      const conf = gwConf(lab);
      const pods = Array.from({ length: 6 }, (_, i) => lab.pod(`r${i}`));
      const adds = await Promise.all(pods.map((pod) => lab.cniAsync("ADD", conf, { pod })));
      for (const x of adds) expect([x.status, x.out?.code, x.out?.msg]).toEqual([0, undefined, undefined]);
      expect(new Set(adds.map((x) => x.out!.interfaces[3].mac)).size).toBe(1);
      expect(linkNames(lab.node.name).filter((n) => n.startsWith("vgw") || n.startsWith("cni0."))).toEqual(
        ["cni0.300", vlanGatewayPort("cni0", 300)].sort(),
      );
      for (const pod of pods) expect(ping(pod, "10.51.0.1", 3)).toBe(true);
    },
  );

  vit(`an existing cni0.300 is adopted, its address kept unless forceAddress${SKIP}`, () => {
    const lab = new BridgeLab(sb, "vlangwforce");
    const first = lab.pod();
    lab.add(gwConf(lab), { pod: first });
    nsRun(lab.node.name, "ip", ["addr", "flush", "dev", "cni0.300"]);
    nsRun(lab.node.name, "ip", ["addr", "add", "10.51.0.254/24", "dev", "cni0.300"]);
    const pod = lab.pod();
    const r = lab.cni("ADD", gwConf(lab), { pod });
    expect(r.out).toMatchObject({ code: 7, msg: '"cni0.300" already has an IP address different from 10.51.0.1/24' });
    expect(linkNames(pod.name)).toEqual(["lo"]);
    const forced = lab.add(gwConf(lab, { forceAddress: true }), { pod });
    expect(forced.interfaces[3].name).toBe("cni0.300");
    expect(addrsOf(lab.node.name, "cni0.300")).toEqual(["10.51.0.1/24", "fd51::1/64"]);
  });

  vit(`L2 mode (no IPAM): no gateway address, so no gateway pair; 3 interfaces; CHECK passes${SKIP}`, () => {
    const lab = new BridgeLab(sb, "vlangwl2");
    const conf = lab.conf({ vlan: 300, isGateway: true, ipam: {} });
    const pod = lab.pod();
    const r = lab.add(conf, { pod });
    expect(r.interfaces.map((i: { name: string }) => i.name)).toEqual(["cni0", expect.stringMatching(/^veth/), "eth0"]);
    expect(linkNames(lab.node.name).filter((n) => n.startsWith("vgw") || n.startsWith("cni0."))).toEqual([]);
    expect(lab.cni("CHECK", lab.withPrev(conf, r), { pod })).toMatchObject({ status: 0, stdout: "" });
  });

  vit(
    `the reference does the same: cni0.300 carries the gateway, 4th result interface, the pod reaches it${SKIP}`,
    () => {
      const lab = new BridgeLab(sb, "vlangwref", REFERENCE_BIN);
      const conf = lab.conf({ vlan: 300, isGateway: true, ipam: lab.hostLocal(["10.51.0.0/24"]) });
      const pod = lab.pod();
      const r = lab.add(conf, { pod });
      expect(r.interfaces.map((i: { name: string }) => i.name)).toEqual([
        "cni0",
        expect.stringMatching(/^veth/),
        "eth0",
        "cni0.300",
      ]);
      expect(addrsOf(lab.node.name, "cni0.300")).toEqual(["10.51.0.1/24"]);
      expect(ping(pod, "10.51.0.1", 3)).toBe(true);
    },
  );
});
