import { describe, expect, it } from "vitest";
import { codeOf } from "./codes.js";
import type { NetConf } from "../../lib/types.js";
import { loadBridgeConfig } from "../../plugins/bridge/config.js";
import { gatewaysOf, nextHopFor, routesOf } from "../../plugins/bridge/gateway.js";
import { iptablesMasqChain } from "../../lib/netfilter/masq-iptables.js";
import { nftMasqComment } from "../../lib/netfilter/masq-nft.js";
import { masqKeys } from "../../lib/netfilter/masq.js";
import { liveLinksOf } from "../../plugins/bridge/live.js";
import { hostVethAlias, hostVethName, masqKeysOfAlias } from "../../plugins/bridge/names.js";
import { routeArgs } from "../../plugins/bridge/pod.js";

const base = (o: Record<string, unknown> = {}): NetConf =>
  ({ cniVersion: "1.0.0", name: "net1", type: "bridge", ...o }) as NetConf;
const load = (o: Record<string, unknown> = {}, args: Array<[string, string]> = []) =>
  loadBridgeConfig(base(o), new Map(args));

describe("bridge config", () => {
  it("has the reference's defaults", () => {
    expect(load()).toMatchObject({
      bridge: "cni0",
      isGateway: false,
      isDefaultGateway: false,
      forceAddress: false,
      ipMasq: false,
      mtu: 0,
      hairpinMode: false,
      promiscMode: false,
      vlan: 0,
      vlanTrunk: [],
      preserveDefaultVlan: false,
      enabledad: false,
      disableContainerInterface: false,
      portIsolation: false,
      ipamType: undefined,
      dns: undefined,
      mac: undefined,
    });
  });
  it("isDefaultGateway implies isGateway", () => {
    expect(load({ isDefaultGateway: true })).toMatchObject({ isGateway: true, isDefaultGateway: true });
  });
  it("ipam {} or absent is L2 mode; a type is validated as a plugin name", () => {
    expect(load({ ipam: {} }).ipamType).toBeUndefined();
    expect(load({ ipam: { type: "host-local" } }).ipamType).toBe("host-local");
    expect(codeOf(() => load({ ipam: { type: "../../bin/sh" } }))).toBe(7);
  });
  it("rejects what the reference rejects, with code 7", () => {
    expect(codeOf(() => load({ vlan: 4095 }))).toBe(7);
    expect(codeOf(() => load({ vlan: -1 }))).toBe(7);
    expect(codeOf(() => load({ hairpinMode: true, promiscMode: true }))).toBe(7);
    expect(codeOf(() => load({ disableContainerInterface: true, ipam: { type: "host-local" } }))).toBe(7);
    expect(codeOf(() => load({ ipMasqBackend: "pf" }))).toBe(7);
    expect(codeOf(() => load({ vlanTrunk: [{ minID: 10 }] }))).toBe(7);
    expect(codeOf(() => load({ vlanTrunk: [{ minID: 20, maxID: 10 }] }))).toBe(7);
    expect(codeOf(() => load({ vlanTrunk: [{ id: 0 }] }))).toBe(7);
  });
  it("validates the bridge name as an interface name (code 7)", () => {
    for (const bad of ["a/b", "a b", "x".repeat(16), "-br", ".."]) expect(codeOf(() => load({ bridge: bad }))).toBe(7);
    expect(load({ bridge: "kube-bridge" }).bridge).toBe("kube-bridge");
  });
  it("wrong types name the key", () => {
    expect(() => load({ isGateway: 1 })).toThrow(/isGateway must be a boolean/);
    expect(() => load({ mtu: "1500" })).toThrow(/mtu must be an integer/);
    expect(codeOf(() => load({ mtu: 20 }))).toBe(7);
  });
  it("accepts the docs' string booleans", () => {
    expect(load({ portIsolation: "true" }).portIsolation).toBe(true);
  });
  it("accepts macspoofchk", () => {
    expect(load({ macspoofchk: true }).macspoofchk).toBe(true);
  });
  it("parses vlan trunks", () => {
    expect(load({ vlanTrunk: [{ id: 101 }, { minID: 200, maxID: 210 }] }).vlanTrunk).toEqual([
      { min: 101, max: 101 },
      { min: 200, max: 210 },
    ]);
  });
  it("container MAC precedence: CNI_ARGS < args.cni.mac < runtimeConfig.mac", () => {
    expect(load({}, [["MAC", "0A:00:00:00:00:01"]]).mac).toBe("0a:00:00:00:00:01");
    expect(load({ args: { cni: { mac: "0a:00:00:00:00:02" } } }, [["MAC", "0a:00:00:00:00:01"]]).mac).toBe(
      "0a:00:00:00:00:02",
    );
    expect(
      load({ args: { cni: { mac: "0a:00:00:00:00:02" } }, runtimeConfig: { mac: "0a:00:00:00:00:03" } }, [
        ["MAC", "0a:00:00:00:00:01"],
      ]).mac,
    ).toBe("0a:00:00:00:00:03");
    expect(codeOf(() => load({}, [["MAC", "01:00:00:00:00:01"]]))).toBe(4);
    expect(codeOf(() => load({ runtimeConfig: { mac: "zz" } }))).toBe(7);
  });
  it("dns replaces IPAM's only when a field is set", () => {
    expect(load({ dns: {} }).dns).toBeUndefined();
    expect(load({ dns: { nameservers: ["10.96.0.10"] } }).dns).toEqual({ nameservers: ["10.96.0.10"] });
  });
});

describe("gateways and routes", () => {
  const conf = (o: Record<string, unknown> = {}) => load(o);
  it("keeps IPAM's gateway; computes subnet+1 with isGateway when IPAM gave none", () => {
    const r = gatewaysOf(
      [{ address: "10.1.0.5/24" }, { address: "fd01::5/64", gateway: "fd01::1" }],
      conf({ isGateway: true }),
    );
    expect(r.ips).toEqual([
      { address: "10.1.0.5/24", gateway: "10.1.0.1" },
      { address: "fd01::5/64", gateway: "fd01::1" },
    ]);
    expect(r.gateways).toEqual([
      { family: 4, cidr: "10.1.0.1/24", ip: "10.1.0.1" },
      { family: 6, cidr: "fd01::1/64", ip: "fd01::1" },
    ]);
  });
  it("isDefaultGateway adds a default per family unless IPAM routes one through a gateway", () => {
    const c = conf({ isDefaultGateway: true });
    const { gateways } = gatewaysOf(
      [
        { address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { address: "fd01::5/64", gateway: "fd01::1" },
      ],
      c,
    );
    expect(routesOf([{ dst: "0.0.0.0/0" }], gateways, c)).toEqual([
      { dst: "0.0.0.0/0" },
      { dst: "0.0.0.0/0", gw: "10.1.0.1" },
      { dst: "::/0", gw: "fd01::1" },
    ]);
    expect(routesOf([{ dst: "0.0.0.0/0", gw: "10.1.0.254" }], gateways, c)).toEqual([
      { dst: "0.0.0.0/0", gw: "10.1.0.254" },
      { dst: "::/0", gw: "fd01::1" },
    ]);
  });
  it("a route without gw uses the first gateway of its family", () => {
    const gws = [{ family: 4 as const, cidr: "10.1.0.1/24", ip: "10.1.0.1" }];
    expect(nextHopFor({ dst: "10.2.0.0/16" }, gws)).toBe("10.1.0.1");
    expect(nextHopFor({ dst: "fd02::/64" }, gws)).toBeUndefined();
  });
  it("turns every 1.1 route field into ip route arguments", () => {
    const gws = [{ family: 4 as const, cidr: "10.1.0.1/24", ip: "10.1.0.1" }];
    expect(
      routeArgs({ dst: "10.9.0.0/16", mtu: 1400, advmss: 1360, priority: 100, table: 100, scope: 0 }, "eth0", gws),
    ).toEqual([
      "route",
      "append",
      "10.9.0.0/16",
      "via",
      "10.1.0.1",
      "dev",
      "eth0",
      "metric",
      100,
      "table",
      100,
      "scope",
      0,
      "mtu",
      1400,
      "advmss",
      1360,
    ]);
  });
});

describe("host veth names", () => {
  it("are stable per attachment, distinct across attachments, and valid interface names", () => {
    expect(hostVethName("ctr1", "eth0")).toBe(hostVethName("ctr1", "eth0"));
    expect(hostVethName("ctr1", "eth0")).not.toBe(hostVethName("ctr1", "net1"));
    expect(hostVethName("ctr1", "eth0")).toMatch(/^veth[0-9a-f]{8}$/);
  });

  it("carry an alias naming the attachment's masquerade keys, which liveness reads back", () => {
    const id = "x".repeat(255);
    const alias = hostVethAlias("n".repeat(255), id, "eth0");
    // Fits IFALIASZ at any identity length, and is one ip -batch token.
    expect(alias).toMatch(/^cni-ts:[0-9a-f]{16}-[0-9a-f]{16}:CNI-[0-9a-f]{24}$/);
    expect(masqKeysOfAlias(hostVethAlias("net1", "ctr1", "eth0"))).toEqual(masqKeys("net1", "ctr1", "eth0"));
    expect(masqKeys("net1", "ctr1", "eth0")).toEqual([
      nftMasqComment("net1", "ctr1", "eth0"),
      iptablesMasqChain("net1", "ctr1"),
    ]);
    expect(masqKeysOfAlias(undefined)).toEqual([]);
    expect(masqKeysOfAlias("uplink to rack 4")).toEqual([]);
    const live = liveLinksOf([
      { ifname: hostVethName("ctr1", "eth0"), ifalias: hostVethAlias("net1", "ctr1", "eth0") },
      { ifname: "vethforeign" },
      { ifname: "vethother", ifalias: "something else" },
    ]);
    expect(live.veths).toEqual(new Set([hostVethName("ctr1", "eth0"), "vethforeign", "vethother"]));
    expect(live.masqKeys).toEqual(new Set(masqKeys("net1", "ctr1", "eth0")));
  });
});
