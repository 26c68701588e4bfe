import { describe, expect, it } from "vitest";
import { codeOf } from "./codes.js";
import type { NetConf } from "../../lib/types.js";
import { loadBridgeConfig } from "../../plugins/bridge/config.js";
import { hostBatch, type BridgeState, type HostPlan } from "../../plugins/bridge/host.js";
import { hostVethName } from "../../plugins/bridge/names.js";
import {
  gatewayPortVlanLines,
  parsePortVlans,
  portVlanLines,
  portVlanProblem,
  usesVlanGateway,
  vlanGatewayName,
  vlanGatewayPort,
} from "../../plugins/bridge/vlan.js";

const load = (o: Record<string, unknown> = {}) =>
  loadBridgeConfig({ cniVersion: "1.0.0", name: "net1", type: "bridge", ...o } as NetConf, new Map());

// `bridge -json vlan show dev X` as iproute2 6.1 prints it (Debian's kernel, read in the guest of scripts/vm.mjs).
const show = (dev: string, vlans: unknown[]) => JSON.stringify([{ ifname: dev, vlans }]);

describe("VLAN names", () => {
  it("the gateway is <bridge>.<vlan>; its port a fixed vgw name per bridge and VLAN, never a pod's veth name", () => {
    expect(vlanGatewayName("cni0", 100)).toBe("cni0.100");
    const port = vlanGatewayPort("cni0", 100);
    expect(port).toMatch(/^vgw[0-9a-f]{8}$/);
    expect(vlanGatewayPort("cni0", 100)).toBe(port);
    expect(vlanGatewayPort("cni0", 101)).not.toBe(port);
    expect(vlanGatewayPort("cni1", 100)).not.toBe(port);
    expect(port.startsWith("veth")).toBe(false);
    expect(hostVethName("cni0", "100")).not.toBe(port);
  });

  it("uses a VLAN gateway only with both vlan and isGateway (isDefaultGateway implies isGateway)", () => {
    expect(usesVlanGateway(load({ vlan: 100, isGateway: true }))).toBe(true);
    expect(usesVlanGateway(load({ vlan: 100, isDefaultGateway: true }))).toBe(true);
    expect(usesVlanGateway(load({ vlan: 100 }))).toBe(false);
    expect(usesVlanGateway(load({ isGateway: true }))).toBe(false);
  });

  it("refuses, code 7, a bridge name that makes <bridge>.<vlan> longer than 15 characters", () => {
    expect(codeOf(() => load({ bridge: "b".repeat(11), vlan: 1000, isGateway: true }))).toBe(7);
    expect(load({ bridge: "b".repeat(10), vlan: 1000, isGateway: true }).bridge).toBe("b".repeat(10));
    expect(load({ bridge: "b".repeat(15), vlan: 1000 }).vlan).toBe(1000);
  });
});

describe("VLAN lines", () => {
  it("access port: VID 1 removed, PVID untagged", () => {
    expect(portVlanLines(load({ vlan: 100 }), "vethX")).toEqual([
      "vlan del dev vethX vid 1",
      "vlan add dev vethX vid 100 pvid untagged",
    ]);
    expect(portVlanLines(load({ vlan: 100, preserveDefaultVlan: true }), "vethX")).toEqual([
      "vlan add dev vethX vid 100 pvid untagged",
    ]);
    expect(portVlanLines(load({}), "vethX")).toEqual([]);
  });

  it("trunk port: native VLAN 1 untagged, trunk VIDs tagged, ranges as ranges", () => {
    expect(portVlanLines(load({ vlanTrunk: [{ id: 101 }, { minID: 200, maxID: 210 }] }), "vethX")).toEqual([
      "vlan del dev vethX vid 1",
      "vlan add dev vethX vid 1 pvid untagged",
      "vlan add dev vethX vid 101",
      "vlan add dev vethX vid 200-210",
    ]);
  });

  it("gateway port: only the ADD that created it removes VID 1; every ADD re-adds the PVID", () => {
    const conf = load({ vlan: 100, isGateway: true });
    const port = vlanGatewayPort("cni0", 100);
    expect(gatewayPortVlanLines(conf, true)).toEqual([
      `vlan del dev ${port} vid 1`,
      `vlan add dev ${port} vid 100 pvid untagged`,
    ]);
    expect(gatewayPortVlanLines(conf, false)).toEqual([`vlan add dev ${port} vid 100 pvid untagged`]);
    expect(gatewayPortVlanLines({ ...conf, preserveDefaultVlan: true }, true)).toEqual([
      `vlan add dev ${port} vid 100 pvid untagged`,
    ]);
  });
});

describe("VLAN filtering on the bridge", () => {
  const plan: HostPlan = {
    hostVeth: "veth0123abcd",
    hostAlias: "a",
    hostMac: "02:00:00:00:00:01",
    podIfname: "eth0",
    podMac: "02:00:00:00:00:02",
    netns: "/run/netns/p",
    bridgeMac: "02:00:00:00:00:03",
    gateways: [],
    vlanGwMac: "02:00:00:00:00:04",
    vlanGwPortMac: "02:00:00:00:00:05",
  };
  const lines = (conf: ReturnType<typeof load>, state: BridgeState) => hostBatch(conf, state, plan).text().split("\n");
  const filteringOn = (l: string[]) => l.filter((x) => x.includes("vlan_filtering 1"));

  it("a bridge it creates for a VLAN config has it from the start", () => {
    expect(filteringOn(lines(load({ vlan: 100 }), { exists: false, addrs: [] }))).toEqual([
      expect.stringMatching(/^link add name cni0 .*type bridge vlan_filtering 1$/),
    ]);
    expect(filteringOn(lines(load({}), { exists: false, addrs: [] }))).toEqual([]);
  });

  it("an existing bridge without it gets it switched on by a VLAN or trunk config, and by nothing else", () => {
    const off: BridgeState = { exists: true, kind: "bridge", vlanFiltering: false, addrs: [] };
    expect(filteringOn(lines(load({ vlan: 100 }), off))).toEqual(["link set dev cni0 type bridge vlan_filtering 1"]);
    expect(filteringOn(lines(load({ vlanTrunk: [{ id: 5 }] }), off))).toEqual([
      "link set dev cni0 type bridge vlan_filtering 1",
    ]);
    expect(filteringOn(lines(load({}), off))).toEqual([]);
    expect(filteringOn(lines(load({ vlan: 100 }), { ...off, vlanFiltering: true }))).toEqual([]);
  });
});

describe("VLAN CHECK", () => {
  const access = show("vethX", [{ vlan: 100, flags: ["PVID", "Egress Untagged"] }]);

  it("reads ranges and flags of the named port only", () => {
    const v = parsePortVlans(
      JSON.stringify([
        { ifname: "other", vlans: [{ vlan: 5 }] },
        {
          ifname: "vethX",
          vlans: [
            { vlan: 1, flags: ["PVID", "Egress Untagged"] },
            { vlan: 200, vlanEnd: 202 },
          ],
        },
      ]),
      "vethX",
    );
    expect([...v.keys()]).toEqual([1, 200, 201, 202]);
    expect(v.get(1)).toEqual(["PVID", "Egress Untagged"]);
    expect(v.get(201)).toEqual([]);
    expect(parsePortVlans("", "vethX").size).toBe(0);
  });

  it("passes what ADD made and names what drifted", () => {
    const conf = load({ vlan: 100 });
    expect(portVlanProblem(conf, "vethX", parsePortVlans(access, "vethX"))).toBeUndefined();
    expect(portVlanProblem(conf, "vethX", parsePortVlans(show("vethX", [{ vlan: 100 }]), "vethX"))).toBe(
      "VLAN 100 is not the untagged PVID of vethX",
    );
    expect(
      portVlanProblem(
        conf,
        "vethX",
        parsePortVlans(show("vethX", [{ vlan: 1 }, { vlan: 100, flags: ["PVID", "Egress Untagged"] }]), "vethX"),
      ),
    ).toBe("default VLAN 1 is still on vethX");
    expect(
      portVlanProblem(
        { ...conf, preserveDefaultVlan: true },
        "vethX",
        parsePortVlans(show("vethX", [{ vlan: 1 }, { vlan: 100, flags: ["PVID", "Egress Untagged"] }]), "vethX"),
      ),
    ).toBeUndefined();
  });

  it("trunk: every VID of every range must be there", () => {
    const conf = load({ vlanTrunk: [{ minID: 200, maxID: 202 }] });
    const ok = show("vethX", [
      { vlan: 1, flags: ["PVID", "Egress Untagged"] },
      { vlan: 200, vlanEnd: 202 },
    ]);
    expect(portVlanProblem(conf, "vethX", parsePortVlans(ok, "vethX"))).toBeUndefined();
    const gap = show("vethX", [{ vlan: 1, flags: ["PVID", "Egress Untagged"] }, { vlan: 200 }, { vlan: 202 }]);
    expect(portVlanProblem(conf, "vethX", parsePortVlans(gap, "vethX"))).toBe("trunk VLAN 201 is not on vethX");
  });

  it("without vlan or trunk there is nothing to check", () => {
    expect(portVlanProblem(load({}), "vethX", new Map())).toBeUndefined();
  });
});
