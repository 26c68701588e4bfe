// Go's key rule (lib/gojson.ts) and every key family that goes through it: the plugins' configs, the capability
// arguments as the runtimes send them, prevResult and GC attachments. The expectations are what Go's encoding/json
// gives for the same text into the reference's structs (exact match first, else case-insensitive with simple
// folding; the last key wins; an object given twice for a struct field is merged).
import { describe, expect, it } from "vitest";
import { loadHostLocalConfig, HOST_LOCAL_CONF_SHAPE } from "../../ipam/host-local/config.js";
import { CniError } from "../../lib/errors.js";
import {
  decodeGo,
  foldKey,
  GO_ANY,
  goExtend,
  goList,
  goMap,
  goStruct,
  MAX_JSON_DEPTH,
  parseJsonText,
} from "../../lib/gojson.js";
import { parseConfig } from "../../lib/skel.js";
import { parseResult } from "../../lib/version.js";
import { BRIDGE_CONF_SHAPE, loadBridgeConfig } from "../../plugins/bridge/config.js";
import { loadPortmapConfig, parseMappings, PORTMAP_CONF_SHAPE } from "../../plugins/portmap/config.js";
import { loadRoutesConfig, ROUTES_CONF_SHAPE } from "../../plugins/routes/config.js";

const stdin = (o: unknown) => Buffer.from(typeof o === "string" ? o : JSON.stringify(o));

describe("parseJsonText", () => {
  const texts = [
    '{"a":1,"b":[1,2,{"c":null}],"d":"x\\"y\\\\z\\u00e9\\n","e":true,"f":false,"g":-0.5e3,"h":{}}',
    "  [ ]  ",
    '"plain"',
    '{"__proto__":{"polluted":1},"k":"\\ud83d\\ude00"}',
    '{"n":1e400,"m":-0,"big":12345678901234567890}',
    '\n{\t"a" : [ 1 , { } , [ ] ] }\r\n',
  ];
  for (const t of texts) {
    it(`gives JSON.parse's value for ${JSON.stringify(t).slice(0, 40)}`, () => {
      expect(parseJsonText(t)).toStrictEqual(JSON.parse(t));
    });
  }
  it("refuses nesting deeper than Go's 10,000 (empty containers count), without overflowing the stack", () => {
    const nest = (n: number) => `{"x":${"[".repeat(n - 1)}${"]".repeat(n - 1)}}`;
    expect(() => parseJsonText(nest(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => parseJsonText(nest(MAX_JSON_DEPTH + 1))).toThrow(/exceeded max depth/);
    expect(() => parseJsonText(`${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`)).toThrow(/exceeded max depth/);
    const deep = parseJsonText(nest(MAX_JSON_DEPTH)) as { x: unknown };
    let d = 1;
    for (let v = deep.x; Array.isArray(v) && v.length > 0; v = v[0]) d++;
    expect(d).toBe(MAX_JSON_DEPTH - 1);
  });
  it("keeps __proto__ an own key, never the prototype", () => {
    const v = parseJsonText('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  for (const bad of ["", "{", '{"a":1,}', "[1 2]", "{'a':1}", "nul", '{"a":1}x', "01"]) {
    it(`throws JSON.parse's error for ${JSON.stringify(bad)}`, () => {
      let want = "";
      try {
        JSON.parse(bad);
      } catch (e) {
        want = (e as Error).message;
      }
      expect(() => parseJsonText(bad)).toThrow(want);
    });
  }
});

describe("decodeGo: Go's key rule", () => {
  const T = goStruct({
    hostPort: GO_ANY,
    inner: goStruct({ a: GO_ANY, b: GO_ANY }),
    list: goList(goStruct({ x: GO_ANY })),
    caps: goMap(GO_ANY),
  });
  const dec = (text: string) => decodeGo(parseJsonText(text), T) as Record<string, unknown>;

  it("matches a key case-insensitively and spells it as the field", () => {
    expect(dec('{"HostPort":1}')).toEqual({ hostPort: 1 });
    expect(dec('{"HOSTPORT":1}')).toEqual({ hostPort: 1 });
    expect(dec('{"hostport":1}')).toEqual({ hostPort: 1 });
  });
  it("folds the two non-ASCII runes Go folds onto ASCII letters, and nothing else", () => {
    expect(dec('{"ho\u017ftPort":1}')).toEqual({ hostPort: 1 }); // LATIN SMALL LETTER LONG S
    expect(foldKey("\u212aey")).toBe(foldKey("key")); // KELVIN SIGN
    expect(dec('{"h\u00f6stPort":1}')).toEqual({ "h\u00f6stPort": 1 });
    expect(dec('{"host_port":1}')).toEqual({ host_port: 1 });
  });
  it("the last of the keys that land on one field wins, in text order, exact duplicates included", () => {
    expect(dec('{"hostPort":1,"HostPort":2}')).toEqual({ hostPort: 2 });
    expect(dec('{"HostPort":2,"hostPort":1}')).toEqual({ hostPort: 1 });
    // JSON.parse alone would keep "hostPort" at its first position with value 3 and let "HostPort" (2) win after it.
    expect(dec('{"hostPort":1,"HostPort":2,"hostPort":3}')).toEqual({ hostPort: 3 });
  });
  it("merges an object given twice for a struct field, as Go decodes the second into the first", () => {
    expect(dec('{"inner":{"a":1},"Inner":{"B":2}}')).toEqual({ inner: { a: 1, b: 2 } });
    expect(dec('{"inner":{"a":1},"inner":{"a":3}}')).toEqual({ inner: { a: 3 } });
  });
  it("reads list elements as their struct, and keeps map keys exactly", () => {
    expect(dec('{"LIST":[{"X":1},{"x":2}],"Caps":{"PortMappings":true,"portMappings":false}}')).toEqual({
      list: [{ x: 1 }, { x: 2 }],
      caps: { PortMappings: true, portMappings: false },
    });
  });
  it("keeps keys that name no field as sent, and values of another type as they are", () => {
    expect(dec('{"Other":{"HostPort":1},"inner":"text","list":{"x":1}}')).toEqual({
      Other: { HostPort: 1 },
      inner: "text",
      list: { x: 1 },
    });
  });
  it("refuses a struct whose fields differ only in case, and lets an outer field hide an embedded one", () => {
    expect(() => goStruct({ mtu: GO_ANY, MTU: GO_ANY })).toThrow(/differ only in case/);
    const ext = goExtend(goStruct({ mtu: GO_ANY }), { MTU: goList(GO_ANY) });
    expect(Object.keys(ext.fields)).toEqual(["MTU"]);
  });
  it("accepts values parsed elsewhere (a prevResult already inside the config)", () => {
    expect(decodeGo({ HostPort: 1 }, T)).toEqual({ hostPort: 1 });
  });
});

// The exact shapes the runtimes send (their public source): containerd's go-cni marshals capability structs without
// JSON tags, so every key is capitalised; CRI-O (ocicni) and podman tag theirs in lower camel case.
describe("portmap: the portMappings capability as each runtime sends it", () => {
  const base = { cniVersion: "1.0.0", name: "k8s-pod-network", type: "portmap", capabilities: { portMappings: true } };
  const load = (runtimeConfig: unknown) =>
    loadPortmapConfig(parseConfig(stdin({ ...base, runtimeConfig }), PORTMAP_CONF_SHAPE));
  it("containerd (go-cni PortMapping{HostPort, ContainerPort, Protocol, HostIP})", () => {
    const c = load({
      portMappings: [
        { HostPort: 18080, ContainerPort: 80, Protocol: "tcp", HostIP: "" },
        { HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1" },
      ],
    });
    expect(c.mappings).toEqual([
      { hostPort: 18080, containerPort: 80, protocol: "tcp", hostIP: undefined, family: undefined },
      { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1", family: 4 },
    ]);
  });
  it("CRI-O (ocicni PortMapping, lower camel case with an empty hostIP)", () => {
    expect(
      load({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }] }).mappings,
    ).toHaveLength(1);
  });
  it("the runtimeConfig key and the plugin's own keys fold too", () => {
    const conf = parseConfig(
      stdin({
        ...base,
        RuntimeConfig: { PortMappings: [{ HostPort: 1, ContainerPort: 2, Protocol: "UDP" }] },
        SNAT: false,
        MasqAll: true,
        MarkMasqBit: 14,
      }),
      PORTMAP_CONF_SHAPE,
    );
    const c = loadPortmapConfig(conf);
    expect(c).toMatchObject({ snat: false, masqAll: true, markMasqBit: 14 });
    expect(parseMappings(conf)).toEqual([
      { hostPort: 1, containerPort: 2, protocol: "udp", hostIP: undefined, family: undefined },
    ]);
  });
  it("a missing protocol is still code 7 (no fold can invent it)", () => {
    expect(() => load({ portMappings: [{ HostPort: 1, ContainerPort: 2 }] })).toThrow(CniError);
  });
});

describe("host-local: ipam keys, the ipRanges capability, requested IPs", () => {
  const load = (o: Record<string, unknown>, ip?: string) =>
    loadHostLocalConfig(
      parseConfig(stdin({ cniVersion: "1.0.0", name: "n", type: "bridge", ...o }), HOST_LOCAL_CONF_SHAPE),
      ip,
    );
  it("IPAM, Ranges, Subnet, RangeStart, RangeEnd, Gateway, Routes, DataDir", () => {
    const c = load({
      IPAM: {
        Type: "host-local",
        DataDir: "/tmp/x",
        Ranges: [[{ Subnet: "10.1.0.0/24", RangeStart: "10.1.0.10", RangeEnd: "10.1.0.20", Gateway: "10.1.0.1" }]],
        Routes: [{ Dst: "0.0.0.0/0", GW: "10.1.0.254" }],
      },
    });
    expect(c.dataDir).toBe("/tmp/x");
    expect(c.rangeSets).toHaveLength(1);
    expect(c.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.1.0.254" }]);
  });
  it("the deprecated top-level Subnet of ipam folds too", () => {
    expect(load({ ipam: { type: "host-local", Subnet: "10.2.0.0/24" } }).rangeSets).toHaveLength(1);
  });
  it("ipRanges with go-cni's IPRanges keys (Subnet, RangeStart, RangeEnd, Gateway), as a list of range sets", () => {
    const c = load({
      ipam: { type: "host-local", ranges: [[{ subnet: "10.9.0.0/16" }]] },
      runtimeConfig: {
        ipRanges: [[{ Subnet: "10.3.0.0/24", RangeStart: "10.3.0.100", RangeEnd: "10.3.0.110", Gateway: "10.3.0.1" }]],
      },
    });
    expect(c.rangeSets).toHaveLength(2);
  });
  it("go-cni's WithCapabilityIPRanges sends a flat list: refused with code 7 as the reference refuses it", () => {
    expect(() =>
      load({ ipam: { type: "host-local" }, runtimeConfig: { ipRanges: [{ Subnet: "10.3.0.0/24" }] } }),
    ).toThrow(/must be an array of ranges/);
  });
  it("runtimeConfig.IPs and Args.CNI.IPs", () => {
    const c = load({
      ipam: { type: "host-local", ranges: [[{ subnet: "10.4.0.0/24" }]] },
      RuntimeConfig: { IPs: ["10.4.0.7"] },
      Args: { CNI: { IPs: ["10.4.0.8/24"] } },
    });
    expect(c.requestedIPs).toHaveLength(2);
  });
});

describe("bridge: its keys and the mac capability", () => {
  it("IsGateway, IPMasq, MTU, HairpinMode, Bridge, VlanTrunk, Args.CNI.MAC, RuntimeConfig.Mac", () => {
    const conf = parseConfig(
      stdin({
        cniVersion: "1.0.0",
        name: "n",
        Type: "bridge",
        Bridge: "cbr0",
        IsGateway: true,
        IPMasq: true,
        MTU: 1460,
        HairpinMode: true,
        VlanTrunk: [{ MinID: 10, MaxID: 20 }],
        Args: { CNI: { MAC: "02:00:00:00:00:01" } },
        RuntimeConfig: { Mac: "02:00:00:00:00:02" },
        IPAM: { Type: "host-local" },
      }),
      BRIDGE_CONF_SHAPE,
    );
    expect(loadBridgeConfig(conf, new Map())).toMatchObject({
      bridge: "cbr0",
      isGateway: true,
      ipMasq: true,
      mtu: 1460,
      hairpinMode: true,
      vlanTrunk: [{ min: 10, max: 20 }],
      mac: "02:00:00:00:00:02",
      ipamType: "host-local",
    });
  });
});

describe("routes: route-override's keys, also under args.cni", () => {
  const load = (o: Record<string, unknown>) =>
    loadRoutesConfig(parseConfig(stdin({ cniVersion: "1.1.0", name: "n", type: "routes", ...o }), ROUTES_CONF_SHAPE));
  it("AddRoutes with Dst/GW/Priority, FlushGateway, HostRoutes with Dev", () => {
    const c = load({
      AddRoutes: [{ Dst: "10.96.0.0/12", GW: "10.1.0.1", Priority: 5 }],
      FlushGateway: true,
      HostRoutes: [{ Dst: "10.2.0.0/24", Dev: "eth1" }],
    });
    expect(c.addroutes).toEqual([{ dst: "10.96.0.0/12", gw: "10.1.0.1", priority: 5 }]);
    expect(c.flushgateway).toBe(true);
    expect(c.hostRoutes).toEqual([{ dst: "10.2.0.0/24", dev: "eth1" }]);
  });
  it("Args.CNI.AddRoutes wins, and HostRoutes under args is refused in any case", () => {
    expect(
      load({ addroutes: [{ dst: "10.5.0.0/16" }], Args: { CNI: { AddRoutes: [{ Dst: "10.6.0.0/16" }] } } }).addroutes,
    ).toEqual([{ dst: "10.6.0.0/16" }]);
    expect(() => load({ args: { cni: { HOSTROUTES: [{ dst: "10.7.0.0/16", dev: "eth0" }] } } })).toThrow(
      /args.cni.hostRoutes is not accepted/,
    );
  });
});

describe("prevResult and a delegate's result", () => {
  it("Interfaces, IPs, Address, Gateway, Interface, Routes, DNS at 1.0.0", () => {
    const r = parseResult(
      {
        CNIVersion: "1.0.0",
        Interfaces: [{ Name: "eth0", Mac: "02:00:00:00:00:01", Sandbox: "/x" }],
        IPs: [{ Address: "10.1.0.5/24", Gateway: "10.1.0.1", Interface: 0 }],
        Routes: [{ Dst: "0.0.0.0/0" }],
        DNS: { Nameservers: ["10.0.0.10"] },
      },
      "1.0.0",
    );
    expect(r).toEqual({
      interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: "/x" }],
      ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: { nameservers: ["10.0.0.10"] },
    });
  });
  it("IP4/IP at 0.2.0", () => {
    expect(parseResult({ cniVersion: "0.2.0", IP4: { IP: "10.1.0.5/24", Gateway: "10.1.0.1" } }, "0.2.0").ips).toEqual([
      { address: "10.1.0.5/24", gateway: "10.1.0.1" },
    ]);
  });
});
