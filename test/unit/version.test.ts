/**
 * Golden vectors for lib/version: every expected object below is written out by hand from the Go reference
 * (containernetworking/cni pkg/types/020, 040, 100 and their converters), never computed by the code under test.
 */
import { describe, it, expect } from "vitest";
import { CniError, ErrorCode } from "../../lib/errors.js";
import type { Result } from "../../lib/types.js";
import {
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  convertResult,
  formatResult,
  ipFamily,
  isSupportedVersion,
  parseResult,
  versionAtLeast,
} from "../../lib/version.js";

/** Run fn, expect a CniError, and hand it back for further assertions. */
function cniErrorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected a CniError, nothing was thrown");
}

// ---------------------------------------------------------------------------------------------------------------
// A dual-stack bridge ADD: host bridge, host veth end, container interface with every 1.1 interface field.

const BRIDGE: Result = {
  interfaces: [
    { name: "cni0", mac: "0a:58:0a:01:00:01" },
    { name: "veth5d2c8f1a", mac: "6e:3c:91:a2:b4:07" },
    {
      name: "eth0",
      mac: "0a:58:0a:01:00:05",
      mtu: 1450,
      sandbox: "/var/run/netns/pod-1",
      socketPath: "/run/vhost-user/eth0.sock",
      pciID: "0000:3b:00.2",
    },
  ],
  ips: [
    { interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { interface: 2, address: "fd00:1::5/64", gateway: "fd00:1::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
    { dst: "::/0", gw: "fd00:1::1", mtu: 1400, advmss: 1340, priority: 200, table: 100, scope: 0 },
    { dst: "10.96.0.0/12", scope: 253 },
    { dst: "fd00:96::/108", scope: 253 },
  ],
  dns: {
    nameservers: ["10.1.0.1", "fd00:1::1"],
    domain: "cluster.local",
    search: ["default.svc.cluster.local", "svc.cluster.local"],
    options: ["ndots:5"],
  },
};

const BRIDGE_1X_BODY = {
  interfaces: [
    { name: "cni0", mac: "0a:58:0a:01:00:01" },
    { name: "veth5d2c8f1a", mac: "6e:3c:91:a2:b4:07" },
    {
      name: "eth0",
      mac: "0a:58:0a:01:00:05",
      mtu: 1450,
      sandbox: "/var/run/netns/pod-1",
      socketPath: "/run/vhost-user/eth0.sock",
      pciID: "0000:3b:00.2",
    },
  ],
  ips: [
    { interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { interface: 2, address: "fd00:1::5/64", gateway: "fd00:1::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
    { dst: "::/0", gw: "fd00:1::1", mtu: 1400, advmss: 1340, priority: 200, table: 100, scope: 0 },
    { dst: "10.96.0.0/12", scope: 253 },
    { dst: "fd00:96::/108", scope: 253 },
  ],
  dns: {
    nameservers: ["10.1.0.1", "fd00:1::1"],
    domain: "cluster.local",
    search: ["default.svc.cluster.local", "svc.cluster.local"],
    options: ["ndots:5"],
  },
};

const BRIDGE_04X_BODY = {
  interfaces: [
    { name: "cni0", mac: "0a:58:0a:01:00:01" },
    { name: "veth5d2c8f1a", mac: "6e:3c:91:a2:b4:07" },
    { name: "eth0", mac: "0a:58:0a:01:00:05", sandbox: "/var/run/netns/pod-1" },
  ],
  ips: [
    { version: "4", interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { version: "6", interface: 2, address: "fd00:1::5/64", gateway: "fd00:1::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
    { dst: "::/0", gw: "fd00:1::1", mtu: 1400, advmss: 1340, priority: 200, table: 100, scope: 0 },
    { dst: "10.96.0.0/12", scope: 253 },
    { dst: "fd00:96::/108", scope: 253 },
  ],
  dns: {
    nameservers: ["10.1.0.1", "fd00:1::1"],
    domain: "cluster.local",
    search: ["default.svc.cluster.local", "svc.cluster.local"],
    options: ["ndots:5"],
  },
};

const BRIDGE_02X_BODY = {
  ip4: {
    ip: "10.1.0.5/24",
    gateway: "10.1.0.1",
    routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "10.96.0.0/12" }],
  },
  ip6: {
    ip: "fd00:1::5/64",
    gateway: "fd00:1::1",
    routes: [{ dst: "::/0", gw: "fd00:1::1" }, { dst: "fd00:96::/108" }],
  },
  dns: {
    nameservers: ["10.1.0.1", "fd00:1::1"],
    domain: "cluster.local",
    search: ["default.svc.cluster.local", "svc.cluster.local"],
    options: ["ndots:5"],
  },
};

const BRIDGE_EXPECTED: Record<string, Record<string, unknown>> = {
  "0.1.0": { cniVersion: "0.1.0", ...BRIDGE_02X_BODY },
  "0.2.0": { cniVersion: "0.2.0", ...BRIDGE_02X_BODY },
  "0.3.0": { cniVersion: "0.3.0", ...BRIDGE_04X_BODY },
  "0.3.1": { cniVersion: "0.3.1", ...BRIDGE_04X_BODY },
  "0.4.0": { cniVersion: "0.4.0", ...BRIDGE_04X_BODY },
  "1.0.0": { cniVersion: "1.0.0", ...BRIDGE_1X_BODY },
  "1.1.0": { cniVersion: "1.1.0", ...BRIDGE_1X_BODY },
};

// An L2-only bridge (no IPAM): interfaces and nothing else.
const L2: Result = {
  interfaces: [
    { name: "br-l2", mac: "0a:58:00:00:00:01" },
    { name: "veth0a1b2c3d", mac: "ae:12:34:56:78:9a" },
    { name: "eth0", mac: "0a:58:00:00:00:02", mtu: 9000, sandbox: "/proc/4242/ns/net" },
  ],
};

const L2_1X_BODY = {
  interfaces: [
    { name: "br-l2", mac: "0a:58:00:00:00:01" },
    { name: "veth0a1b2c3d", mac: "ae:12:34:56:78:9a" },
    { name: "eth0", mac: "0a:58:00:00:00:02", mtu: 9000, sandbox: "/proc/4242/ns/net" },
  ],
};

const L2_04X_BODY = {
  interfaces: [
    { name: "br-l2", mac: "0a:58:00:00:00:01" },
    { name: "veth0a1b2c3d", mac: "ae:12:34:56:78:9a" },
    { name: "eth0", mac: "0a:58:00:00:00:02", sandbox: "/proc/4242/ns/net" },
  ],
  dns: {},
};

// Dual stack, one address per family, nothing a 0.2.0 result cannot carry: lossless between every pair of versions.
const DUAL_02X_BODY = {
  ip4: { ip: "192.168.50.10/24", gateway: "192.168.50.1", routes: [{ dst: "0.0.0.0/0", gw: "192.168.50.1" }] },
  ip6: { ip: "2001:db8:50::10/64", gateway: "2001:db8:50::1", routes: [{ dst: "::/0", gw: "2001:db8:50::1" }] },
  dns: { nameservers: ["192.168.50.1"], search: ["example.org"] },
};

const DUAL_04X_BODY = {
  ips: [
    { version: "4", address: "192.168.50.10/24", gateway: "192.168.50.1" },
    { version: "6", address: "2001:db8:50::10/64", gateway: "2001:db8:50::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "192.168.50.1" },
    { dst: "::/0", gw: "2001:db8:50::1" },
  ],
  dns: { nameservers: ["192.168.50.1"], search: ["example.org"] },
};

const DUAL_1X_BODY = {
  ips: [
    { address: "192.168.50.10/24", gateway: "192.168.50.1" },
    { address: "2001:db8:50::10/64", gateway: "2001:db8:50::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "192.168.50.1" },
    { dst: "::/0", gw: "2001:db8:50::1" },
  ],
  dns: { nameservers: ["192.168.50.1"], search: ["example.org"] },
};

const DUAL: Record<string, Record<string, unknown>> = {
  "0.1.0": { cniVersion: "0.1.0", ...DUAL_02X_BODY },
  "0.2.0": { cniVersion: "0.2.0", ...DUAL_02X_BODY },
  "0.3.0": { cniVersion: "0.3.0", ...DUAL_04X_BODY },
  "0.3.1": { cniVersion: "0.3.1", ...DUAL_04X_BODY },
  "0.4.0": { cniVersion: "0.4.0", ...DUAL_04X_BODY },
  "1.0.0": { cniVersion: "1.0.0", ...DUAL_1X_BODY },
  "1.1.0": { cniVersion: "1.1.0", ...DUAL_1X_BODY },
};

const ALL = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

// ---------------------------------------------------------------------------------------------------------------

describe("supported versions", () => {
  it("lists the seven released spec versions, newest 1.1.0", () => {
    expect(SUPPORTED_VERSIONS).toEqual(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    expect(LATEST_VERSION).toBe("1.1.0");
  });

  it("matches by exact string only", () => {
    for (const v of ALL) expect(isSupportedVersion(v)).toBe(true);
    for (const v of ["1.1", "v1.1.0", " 1.1.0", "1.1.0 ", "0.5.0", "1.2.0", "", "01.0.0"])
      expect(isSupportedVersion(v)).toBe(false);
  });
});

describe("compareVersions / versionAtLeast", () => {
  it("orders numerically, part by part", () => {
    expect(compareVersions("1.1.0", "1.1.0")).toBe(0);
    expect(compareVersions("0.4.0", "1.0.0")).toBe(-1);
    expect(compareVersions("1.0.0", "0.4.0")).toBe(1);
    expect(compareVersions("0.3.1", "0.3.0")).toBe(1);
    expect(compareVersions("0.10.0", "0.4.0")).toBe(1);
    expect(compareVersions("0.4.0", "0.10.0")).toBe(-1);
    expect(compareVersions("10.0.0", "9.9.9")).toBe(1);
    expect(compareVersions("1.0.10", "1.0.9")).toBe(1);
  });

  it("answers the version gates skel asks", () => {
    expect(versionAtLeast("0.4.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("0.3.1", "0.4.0")).toBe(false);
    expect(versionAtLeast("1.0.0", "0.4.0")).toBe(true);
    expect(versionAtLeast("1.0.0", "1.1.0")).toBe(false);
    expect(versionAtLeast("1.1.0", "1.1.0")).toBe(true);
  });

  it.each(["1.0", "v1.0.0", "", "1.0.0-rc1", "1.0.0.0", "a.b.c", "1..0", " 1.0.0"])(
    "throws code 1 on malformed %j",
    (bad) => {
      const err = cniErrorOf(() => compareVersions(bad, "1.0.0"));
      expect(err.code).toBe(ErrorCode.IncompatibleVersion);
      expect(err.message).toContain("invalid version");
      expect(cniErrorOf(() => compareVersions("1.0.0", bad)).code).toBe(ErrorCode.IncompatibleVersion);
      expect(cniErrorOf(() => versionAtLeast(bad, "0.4.0")).code).toBe(ErrorCode.IncompatibleVersion);
    },
  );
});

describe("ipFamily", () => {
  it("tells 4 from 6 for addresses and CIDRs", () => {
    expect(ipFamily("10.1.2.3")).toBe(4);
    expect(ipFamily("10.1.2.3/24")).toBe(4);
    expect(ipFamily("0.0.0.0/0")).toBe(4);
    expect(ipFamily("fd00::1")).toBe(6);
    expect(ipFamily("fd00:1::5/64")).toBe(6);
    expect(ipFamily("::/0")).toBe(6);
  });

  it("throws code 999 on something that is not an address", () => {
    for (const bad of ["", "bogus", "10.1.2/24", "10.1.2.3/33", "fd00::1/129"]) {
      expect(cniErrorOf(() => ipFamily(bad)).code).toBe(ErrorCode.Internal);
    }
  });
});

describe("formatResult: dual-stack bridge result at every version", () => {
  it.each(ALL)("%s", (version) => {
    expect(formatResult(BRIDGE, version)).toStrictEqual(BRIDGE_EXPECTED[version]);
  });

  it("1.x keys come out sorted at every depth (Go's MarshalJSON round-trips through a map)", () => {
    expect(JSON.stringify(formatResult(BRIDGE, "1.1.0"))).toBe(
      '{"cniVersion":"1.1.0",' +
        '"dns":{"domain":"cluster.local","nameservers":["10.1.0.1","fd00:1::1"],"options":["ndots:5"],' +
        '"search":["default.svc.cluster.local","svc.cluster.local"]},' +
        '"interfaces":[{"mac":"0a:58:0a:01:00:01","name":"cni0"},{"mac":"6e:3c:91:a2:b4:07","name":"veth5d2c8f1a"},' +
        '{"mac":"0a:58:0a:01:00:05","mtu":1450,"name":"eth0","pciID":"0000:3b:00.2","sandbox":"/var/run/netns/pod-1",' +
        '"socketPath":"/run/vhost-user/eth0.sock"}],' +
        '"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":2},' +
        '{"address":"fd00:1::5/64","gateway":"fd00:1::1","interface":2}],' +
        '"routes":[{"advmss":1360,"dst":"0.0.0.0/0","gw":"10.1.0.1","mtu":1400,"priority":100,"scope":0,"table":254},' +
        '{"advmss":1340,"dst":"::/0","gw":"fd00:1::1","mtu":1400,"priority":200,"scope":0,"table":100},' +
        '{"dst":"10.96.0.0/12","scope":253},{"dst":"fd00:96::/108","scope":253}]}',
    );
  });

  it("0.4.0 keys come out in Go struct order (version first in ips entries, dns last)", () => {
    expect(JSON.stringify(formatResult(BRIDGE, "0.4.0"))).toBe(
      '{"cniVersion":"0.4.0",' +
        '"interfaces":[{"name":"cni0","mac":"0a:58:0a:01:00:01"},{"name":"veth5d2c8f1a","mac":"6e:3c:91:a2:b4:07"},' +
        '{"name":"eth0","mac":"0a:58:0a:01:00:05","sandbox":"/var/run/netns/pod-1"}],' +
        '"ips":[{"version":"4","interface":2,"address":"10.1.0.5/24","gateway":"10.1.0.1"},' +
        '{"version":"6","interface":2,"address":"fd00:1::5/64","gateway":"fd00:1::1"}],' +
        '"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1","mtu":1400,"advmss":1360,"priority":100,"table":254,"scope":0},' +
        '{"dst":"::/0","gw":"fd00:1::1","mtu":1400,"advmss":1340,"priority":200,"table":100,"scope":0},' +
        '{"dst":"10.96.0.0/12","scope":253},{"dst":"fd00:96::/108","scope":253}],' +
        '"dns":{"nameservers":["10.1.0.1","fd00:1::1"],"domain":"cluster.local",' +
        '"search":["default.svc.cluster.local","svc.cluster.local"],"options":["ndots:5"]}}',
    );
  });

  it("0.2.0 keys come out in Go struct order (ip4, ip6, dns; ip, gateway, routes)", () => {
    expect(JSON.stringify(formatResult(BRIDGE, "0.2.0"))).toBe(
      '{"cniVersion":"0.2.0",' +
        '"ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"10.96.0.0/12"}]},' +
        '"ip6":{"ip":"fd00:1::5/64","gateway":"fd00:1::1","routes":[{"dst":"::/0","gw":"fd00:1::1"},{"dst":"fd00:96::/108"}]},' +
        '"dns":{"nameservers":["10.1.0.1","fd00:1::1"],"domain":"cluster.local",' +
        '"search":["default.svc.cluster.local","svc.cluster.local"],"options":["ndots:5"]}}',
    );
  });

  it("reproduces the measured host-local 0.4.0 output byte for byte", () => {
    const ipam: Result = {
      ips: [
        { address: "10.9.0.3/24", gateway: "10.9.0.1" },
        { address: "fd09::2/64", gateway: "fd09::1" },
      ],
    };
    expect(JSON.stringify(formatResult(ipam, "0.4.0"))).toBe(
      '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.9.0.3/24","gateway":"10.9.0.1"},' +
        '{"version":"6","address":"fd09::2/64","gateway":"fd09::1"}],"dns":{}}',
    );
    expect(JSON.stringify(formatResult(ipam, "0.4.0"), null, 4)).toBe(
      [
        "{",
        '    "cniVersion": "0.4.0",',
        '    "ips": [',
        "        {",
        '            "version": "4",',
        '            "address": "10.9.0.3/24",',
        '            "gateway": "10.9.0.1"',
        "        },",
        "        {",
        '            "version": "6",',
        '            "address": "fd09::2/64",',
        '            "gateway": "fd09::1"',
        "        }",
        "    ],",
        '    "dns": {}',
        "}",
      ].join("\n"),
    );
  });

  it("does not modify its input nor share arrays with it", () => {
    const input = structuredClone(BRIDGE);
    const out = formatResult(input, "1.1.0");
    expect(input).toStrictEqual(BRIDGE);
    (out.dns as { nameservers: string[] }).nameservers.push("9.9.9.9");
    expect(input.dns?.nameservers).toEqual(["10.1.0.1", "fd00:1::1"]);
  });
});

describe("formatResult: L2 result (interfaces only) at every version", () => {
  it.each(["1.0.0", "1.1.0"])("%s: interfaces only, no dns, no empty arrays", (version) => {
    expect(formatResult(L2, version)).toStrictEqual({ cniVersion: version, ...L2_1X_BODY });
  });

  it.each(["0.3.0", "0.3.1", "0.4.0"])("%s: interfaces without mtu, and an empty dns", (version) => {
    expect(formatResult(L2, version)).toStrictEqual({ cniVersion: version, ...L2_04X_BODY });
  });

  it.each(["0.1.0", "0.2.0"])("%s: cannot be expressed, code 1", (version) => {
    const err = cniErrorOf(() => formatResult(L2, version));
    expect(err.code).toBe(ErrorCode.IncompatibleVersion);
    expect(err.message).toBe("cannot convert: no valid IP addresses");
    expect(err.details).toContain(version);
  });

  it("an empty result is {cniVersion} at 1.x and carries dns {} at 0.3/0.4", () => {
    expect(formatResult({}, "1.1.0")).toStrictEqual({ cniVersion: "1.1.0" });
    expect(formatResult({ interfaces: [], ips: [], routes: [], dns: {} }, "1.0.0")).toStrictEqual({
      cniVersion: "1.0.0",
    });
    expect(formatResult({}, "0.3.1")).toStrictEqual({ cniVersion: "0.3.1", dns: {} });
    expect(cniErrorOf(() => formatResult({}, "0.1.0")).code).toBe(ErrorCode.IncompatibleVersion);
  });
});

describe("formatResult: 0.2.0 corner cases", () => {
  it("keeps only the first address of each family", () => {
    const r: Result = {
      ips: [
        { interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" },
        { interface: 0, address: "10.0.1.2/24", gateway: "10.0.1.1" },
        { interface: 0, address: "fd00::2/64", gateway: "fd00::1" },
      ],
    };
    expect(formatResult(r, "0.2.0")).toStrictEqual({
      cniVersion: "0.2.0",
      ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1" },
      ip6: { ip: "fd00::2/64", gateway: "fd00::1" },
      dns: {},
    });
  });

  it("the first IPv6 wins even when it is listed before a second IPv4", () => {
    const r: Result = {
      ips: [{ address: "fd00::7/64" }, { address: "fd00::8/64" }, { address: "10.0.0.7/8" }],
    };
    expect(formatResult(r, "0.1.0")).toStrictEqual({
      cniVersion: "0.1.0",
      ip4: { ip: "10.0.0.7/8" },
      ip6: { ip: "fd00::7/64" },
      dns: {},
    });
  });

  it("drops routes whose family has no address, and every route field but dst/gw", () => {
    const r: Result = {
      ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      routes: [
        { dst: "0.0.0.0/0", gw: "10.0.0.1", mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 0 },
        { dst: "::/0", gw: "fd00::1" },
        { dst: "fd00:96::/108" },
        { dst: "172.16.0.0/12", scope: 253 },
      ],
      dns: { nameservers: ["10.0.0.1"] },
    };
    expect(formatResult(r, "0.2.0")).toStrictEqual({
      cniVersion: "0.2.0",
      ip4: {
        ip: "10.0.0.2/24",
        gateway: "10.0.0.1",
        routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }, { dst: "172.16.0.0/12" }],
      },
      dns: { nameservers: ["10.0.0.1"] },
    });
  });

  it("an IPv6-only result has ip6 and no ip4", () => {
    const r: Result = { ips: [{ address: "fd00::2/64" }], routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }] };
    expect(formatResult(r, "0.2.0")).toStrictEqual({ cniVersion: "0.2.0", ip6: { ip: "fd00::2/64" }, dns: {} });
  });
});

describe("formatResult: Go marshalling details", () => {
  it("omits zero mtu/advmss/priority (plain ints) but prints table 0 and scope 0 (pointers)", () => {
    const r: Result = {
      interfaces: [{ name: "eth0", mtu: 0 }],
      routes: [{ dst: "10.0.0.0/8", mtu: 0, advmss: 0, priority: 0, table: 0, scope: 0 }],
    };
    expect(formatResult(r, "1.1.0")).toStrictEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0" }],
      routes: [{ dst: "10.0.0.0/8", table: 0, scope: 0 }],
    });
    expect(formatResult(r, "0.4.0")).toStrictEqual({
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0" }],
      routes: [{ dst: "10.0.0.0/8", table: 0, scope: 0 }],
      dns: {},
    });
  });

  it("omits empty strings and empty dns fields; the interface name is always printed", () => {
    const r: Result = {
      interfaces: [{ name: "", mac: "", sandbox: "", socketPath: "", pciID: "" }],
      ips: [{ address: "10.0.0.2/24", gateway: "" }],
      dns: { nameservers: [], domain: "", search: [], options: [] },
    };
    expect(formatResult(r, "1.1.0")).toStrictEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "" }],
      ips: [{ address: "10.0.0.2/24" }],
    });
    expect(formatResult(r, "0.3.0")).toStrictEqual({
      cniVersion: "0.3.0",
      interfaces: [{ name: "" }],
      ips: [{ version: "4", address: "10.0.0.2/24" }],
      dns: {},
    });
  });

  it("keeps interface index 0 and host bits of the address", () => {
    const r: Result = { ips: [{ interface: 0, address: "10.0.0.2/8" }] };
    expect(formatResult(r, "1.0.0")).toStrictEqual({
      cniVersion: "1.0.0",
      ips: [{ interface: 0, address: "10.0.0.2/8" }],
    });
  });

  it("prints addresses the way Go's net.IP.String spells them", () => {
    const r: Result = {
      ips: [{ address: "FD00:0001:0000:0000:0000:0000:0000:0005/64", gateway: "FD00:1:0::1" }],
      routes: [
        { dst: "2001:DB8:0:0:1:0:0:0/96", gw: "fd00:1::0:1" }, // the longer zero run is compressed
        { dst: "2001:db8:0:0:1:0:0:1/128" }, // on a tie, the first one
      ],
    };
    expect(formatResult(r, "1.1.0")).toStrictEqual({
      cniVersion: "1.1.0",
      ips: [{ address: "fd00:1::5/64", gateway: "fd00:1::1" }],
      routes: [{ dst: "2001:db8:0:0:1::/96", gw: "fd00:1::1" }, { dst: "2001:db8::1:0:0:1/128" }],
    });
  });

  it("0.3.0 and 0.3.1 print the same shape (both say ips)", () => {
    const { cniVersion: a, ...at030 } = formatResult(BRIDGE, "0.3.0");
    const { cniVersion: b, ...at031 } = formatResult(BRIDGE, "0.3.1");
    expect([a, b]).toEqual(["0.3.0", "0.3.1"]);
    expect(at030).toStrictEqual(at031);
  });

  it("throws code 1 for a version it cannot print", () => {
    for (const v of ["", "1.1", "0.5.0", "2.0.0"]) {
      const err = cniErrorOf(() => formatResult(BRIDGE, v));
      expect(err.code).toBe(ErrorCode.IncompatibleVersion);
    }
  });

  it("throws code 999 for an invalid address in the model (a plugin bug)", () => {
    expect(cniErrorOf(() => formatResult({ ips: [{ address: "10.0.0.2" }] }, "1.1.0")).code).toBe(ErrorCode.Internal);
    expect(cniErrorOf(() => formatResult({ routes: [{ dst: "default" }] }, "0.4.0")).code).toBe(ErrorCode.Internal);
  });
});

describe("convertResult: specific conversions", () => {
  it("0.2.0 -> 1.0.0: ip4 then ip6 become ips, their routes concatenated v4 first, no interface index", () => {
    const raw = {
      cniVersion: "0.2.0",
      ip6: { ip: "fd00:2::9/64", gateway: "fd00:2::1", routes: [{ dst: "::/0", gw: "fd00:2::1" }] },
      ip4: {
        ip: "10.2.0.9/16",
        gateway: "10.2.0.1",
        routes: [{ dst: "0.0.0.0/0", gw: "10.2.0.1" }, { dst: "10.96.0.0/12" }],
      },
      dns: { nameservers: ["10.2.0.1"], domain: "example.net" },
    };
    expect(convertResult(raw, "0.2.0", "1.0.0")).toStrictEqual({
      cniVersion: "1.0.0",
      ips: [
        { address: "10.2.0.9/16", gateway: "10.2.0.1" },
        { address: "fd00:2::9/64", gateway: "fd00:2::1" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.2.0.1" }, { dst: "10.96.0.0/12" }, { dst: "::/0", gw: "fd00:2::1" }],
      dns: { nameservers: ["10.2.0.1"], domain: "example.net" },
    });
  });

  it("0.4.0 -> 1.1.0: version dropped from ips, empty dns omitted", () => {
    const raw = {
      cniVersion: "0.4.0",
      interfaces: [
        { name: "cni0", mac: "0a:58:0a:03:00:01" },
        { name: "eth0", mac: "0a:58:0a:03:00:07", sandbox: "/var/run/netns/x" },
      ],
      ips: [{ version: "4", interface: 1, address: "10.3.0.7/24", gateway: "10.3.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.3.0.1", priority: 10 }],
      dns: {},
    };
    expect(convertResult(raw, "0.4.0", "1.1.0")).toStrictEqual({
      cniVersion: "1.1.0",
      interfaces: [
        { name: "cni0", mac: "0a:58:0a:03:00:01" },
        { name: "eth0", mac: "0a:58:0a:03:00:07", sandbox: "/var/run/netns/x" },
      ],
      ips: [{ interface: 1, address: "10.3.0.7/24", gateway: "10.3.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.3.0.1", priority: 10 }],
    });
  });

  it("1.1.0 -> 1.0.0 and 1.0.0 -> 1.1.0: only cniVersion changes", () => {
    const at110 = { cniVersion: "1.1.0", ...BRIDGE_1X_BODY };
    const at100 = { cniVersion: "1.0.0", ...BRIDGE_1X_BODY };
    expect(convertResult(at110, "1.1.0", "1.0.0")).toStrictEqual(at100);
    expect(convertResult(at100, "1.0.0", "1.1.0")).toStrictEqual(at110);
  });

  it("1.1.0 -> 0.4.0 -> 1.1.0 loses only interface mtu/socketPath/pciID", () => {
    const at110 = { cniVersion: "1.1.0", ...BRIDGE_1X_BODY };
    const at040 = convertResult(at110, "1.1.0", "0.4.0");
    expect(at040).toStrictEqual({ cniVersion: "0.4.0", ...BRIDGE_04X_BODY });
    expect(convertResult(at040, "0.4.0", "1.1.0")).toStrictEqual({
      cniVersion: "1.1.0",
      interfaces: [
        { name: "cni0", mac: "0a:58:0a:01:00:01" },
        { name: "veth5d2c8f1a", mac: "6e:3c:91:a2:b4:07" },
        { name: "eth0", mac: "0a:58:0a:01:00:05", sandbox: "/var/run/netns/pod-1" },
      ],
      ips: [
        { interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { interface: 2, address: "fd00:1::5/64", gateway: "fd00:1::1" },
      ],
      routes: [
        { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
        { dst: "::/0", gw: "fd00:1::1", mtu: 1400, advmss: 1340, priority: 200, table: 100, scope: 0 },
        { dst: "10.96.0.0/12", scope: 253 },
        { dst: "fd00:96::/108", scope: 253 },
      ],
      dns: {
        nameservers: ["10.1.0.1", "fd00:1::1"],
        domain: "cluster.local",
        search: ["default.svc.cluster.local", "svc.cluster.local"],
        options: ["ndots:5"],
      },
    });
  });

  it("an L2 result received at 1.1.0 cannot go down to 0.2.0", () => {
    const err = cniErrorOf(() => convertResult({ cniVersion: "1.1.0", ...L2_1X_BODY }, "1.1.0", "0.2.0"));
    expect(err.code).toBe(ErrorCode.IncompatibleVersion);
    expect(err.message).toBe("cannot convert: no valid IP addresses");
  });
});

describe("convertResult: every (from, to) pair, dual stack with one address per family", () => {
  for (const from of ALL) {
    for (const to of ALL) {
      it(`${from} -> ${to}`, () => {
        expect(convertResult(DUAL[from], from, to)).toStrictEqual(DUAL[to]);
      });
    }
  }
});

describe("parseResult", () => {
  it("null and undefined are an empty result", () => {
    expect(parseResult(null, "1.1.0")).toStrictEqual({});
    expect(parseResult(undefined, "0.2.0")).toStrictEqual({});
  });

  it("reads 1.x as is", () => {
    expect(parseResult({ cniVersion: "1.1.0", ...BRIDGE_1X_BODY }, "1.1.0")).toStrictEqual(BRIDGE);
  });

  it("reads a 0.2.0 result into ips and routes, v4 first", () => {
    expect(parseResult({ cniVersion: "0.2.0", ...BRIDGE_02X_BODY }, "0.2.0")).toStrictEqual({
      ips: [
        { address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { address: "fd00:1::5/64", gateway: "fd00:1::1" },
      ],
      routes: [
        { dst: "0.0.0.0/0", gw: "10.1.0.1" },
        { dst: "10.96.0.0/12" },
        { dst: "::/0", gw: "fd00:1::1" },
        { dst: "fd00:96::/108" },
      ],
      dns: {
        nameservers: ["10.1.0.1", "fd00:1::1"],
        domain: "cluster.local",
        search: ["default.svc.cluster.local", "svc.cluster.local"],
        options: ["ndots:5"],
      },
    });
  });

  it("reads 0.4.0 interfaces as name/mac/sandbox only, like Go's 040 decoder", () => {
    const raw = {
      cniVersion: "0.4.0",
      interfaces: [
        { name: "eth0", mac: "aa:bb:cc:dd:ee:ff", mtu: 1500, sandbox: "/ns", socketPath: "/s", pciID: "0000:00:01.0" },
      ],
      ips: [{ version: "4", interface: 0, address: "10.0.0.2/24" }],
    };
    expect(parseResult(raw, "0.4.0")).toStrictEqual({
      interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/ns" }],
      ips: [{ interface: 0, address: "10.0.0.2/24" }],
    });
  });

  it("the result's own cniVersion wins over the config's", () => {
    const raw = { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24" } };
    expect(parseResult(raw, "1.1.0")).toStrictEqual({ ips: [{ address: "10.0.0.2/24" }] });
    const raw040 = { cniVersion: "0.4.0", ips: [{ version: "6", address: "fd00::2/64" }] };
    expect(parseResult(raw040, "0.2.0")).toStrictEqual({ ips: [{ address: "fd00::2/64" }] });
  });

  it("a result without cniVersion (or with an empty one) is read at the config's version", () => {
    const raw = { ip4: { ip: "10.0.0.2/24" }, ips: [{ address: "10.0.0.3/24" }] };
    expect(parseResult(raw, "0.2.0")).toStrictEqual({ ips: [{ address: "10.0.0.2/24" }] });
    expect(parseResult(raw, "1.0.0")).toStrictEqual({ ips: [{ address: "10.0.0.3/24" }] });
    expect(parseResult({ ...raw, cniVersion: "" }, "0.1.0")).toStrictEqual({ ips: [{ address: "10.0.0.2/24" }] });
  });

  it("ignores unknown keys and treats null and empty strings as absent", () => {
    const raw = {
      cniVersion: "1.1.0",
      extra: { anything: true },
      interfaces: [{ name: "eth0", mac: "", sandbox: null, vendor: "x" }],
      ips: [{ address: "10.0.0.2/24", gateway: "", interface: null, note: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: null, table: null, realm: 7 }],
      dns: { nameservers: [], domain: "", search: null, options: [] },
    };
    expect(parseResult(raw, "1.1.0")).toStrictEqual({
      interfaces: [{ name: "eth0" }],
      ips: [{ address: "10.0.0.2/24" }],
      routes: [{ dst: "0.0.0.0/0" }],
    });
  });

  it("spells addresses the way Go prints them", () => {
    const raw = {
      ips: [{ address: "FD00:0001:0000:0000:0000:0000:0000:0005/064", gateway: "FD00:1::0:1" }],
      routes: [{ dst: "0.0.0.0/00", gw: "10.0.0.1" }],
    };
    expect(parseResult(raw, "1.1.0")).toStrictEqual({
      ips: [{ address: "fd00:1::5/64", gateway: "fd00:1::1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
    });
  });

  it.each<[string, unknown, string, string]>([
    ["a string", "10.0.0.2/24", "1.1.0", "result must be an object"],
    ["an array", [], "1.1.0", "result must be an object"],
    ["a number", 7, "0.4.0", "result must be an object"],
    ["cniVersion not a string", { cniVersion: 1 }, "1.1.0", "cniVersion must be a string"],
    ["interfaces not an array", { interfaces: {} }, "1.1.0", "interfaces must be an array"],
    ["interface not an object", { interfaces: [null] }, "1.1.0", "interfaces[0] must be an object"],
    [
      "interface without name",
      { interfaces: [{ mac: "aa:bb:cc:dd:ee:ff" }] },
      "1.1.0",
      "interfaces[0].name must be a string",
    ],
    [
      "interface mac not a string",
      { interfaces: [{ name: "eth0", mac: 5 }] },
      "0.4.0",
      "interfaces[0].mac must be a string",
    ],
    [
      "interface mtu negative",
      { interfaces: [{ name: "eth0", mtu: -5 }] },
      "1.1.0",
      "interfaces[0].mtu must be a non-negative integer",
    ],
    [
      "interface pciID not a string",
      { interfaces: [{ name: "eth0", pciID: 3 }] },
      "1.1.0",
      "interfaces[0].pciID must be a string",
    ],
    ["ips not an array", { ips: "10.0.0.2/24" }, "1.0.0", "ips must be an array"],
    ["ip entry not an object", { ips: ["10.0.0.2/24"] }, "1.0.0", "ips[0] must be an object"],
    ["address missing", { ips: [{ gateway: "10.0.0.1" }] }, "1.0.0", "ips[0].address must be a string"],
    ["address a number", { ips: [{ address: 5 }] }, "1.0.0", "ips[0].address must be a string"],
    [
      "address without prefix",
      { ips: [{ address: "10.0.0.2" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "address octet > 255",
      { ips: [{ address: "10.0.0.300/24" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "address with leading zero",
      { ips: [{ address: "010.0.0.2/24" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "IPv4 prefix > 32",
      { ips: [{ address: "10.0.0.2/33" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "IPv6 prefix > 128",
      { ips: [{ address: "fd00::2/129" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "IPv6 with a zone",
      { ips: [{ address: "fe80::1%eth0/64" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "IPv4-mapped IPv6",
      { ips: [{ address: "::ffff:10.0.0.2/120" }] },
      "1.0.0",
      "ips[0].address must be an address with a prefix",
    ],
    [
      "gateway not an IP",
      { ips: [{ address: "10.0.0.2/24", gateway: "10.0.0" }] },
      "1.0.0",
      "ips[0].gateway must be an IP address",
    ],
    [
      "gateway a CIDR",
      { ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1/24" }] },
      "1.0.0",
      "ips[0].gateway must be an IP address",
    ],
    ["gateway a number", { ips: [{ address: "10.0.0.2/24", gateway: 1 }] }, "1.0.0", "ips[0].gateway must be a string"],
    [
      "interface index negative",
      { ips: [{ address: "10.0.0.2/24", interface: -1 }] },
      "1.0.0",
      "ips[0].interface must be a non-negative integer",
    ],
    [
      "interface index fractional",
      { ips: [{ address: "10.0.0.2/24", interface: 1.5 }] },
      "1.0.0",
      "ips[0].interface must be a non-negative integer",
    ],
    [
      "interface index a string",
      { ips: [{ address: "10.0.0.2/24", interface: "2" }] },
      "0.4.0",
      "ips[0].interface must be a non-negative integer",
    ],
    [
      "0.4.0 version not a string",
      { ips: [{ version: 4, address: "10.0.0.2/24" }] },
      "0.4.0",
      "ips[0].version must be a string",
    ],
    [
      "0.4.0 version not the address family",
      { ips: [{ version: "6", address: "10.0.0.2/24" }] },
      "0.3.1",
      'ips[0].version must be "4"',
    ],
    ["routes not an array", { routes: { dst: "0.0.0.0/0" } }, "1.1.0", "routes must be an array"],
    ["route without dst", { routes: [{ gw: "10.0.0.1" }] }, "1.1.0", "routes[0].dst must be a string"],
    [
      "route dst not a CIDR",
      { routes: [{ dst: "default" }] },
      "1.1.0",
      "routes[0].dst must be an address with a prefix",
    ],
    [
      "route gw not an IP",
      { routes: [{ dst: "0.0.0.0/0", gw: "gateway" }] },
      "1.1.0",
      "routes[0].gw must be an IP address",
    ],
    [
      "route mtu a string",
      { routes: [{ dst: "0.0.0.0/0", mtu: "1500" }] },
      "1.1.0",
      "routes[0].mtu must be a non-negative integer",
    ],
    [
      "route table negative",
      { routes: [{ dst: "0.0.0.0/0", table: -1 }] },
      "1.1.0",
      "routes[0].table must be a non-negative integer",
    ],
    [
      "route scope fractional",
      { routes: [{ dst: "0.0.0.0/0", scope: 2.5 }] },
      "0.4.0",
      "routes[0].scope must be a non-negative integer",
    ],
    ["dns not an object", { dns: ["10.0.0.1"] }, "1.1.0", "dns must be an object"],
    ["dns nameservers not an array", { dns: { nameservers: "10.0.0.1" } }, "1.1.0", "dns.nameservers must be an array"],
    ["dns search entry not a string", { dns: { search: [1] } }, "0.4.0", "dns.search[0] must be a string"],
    ["dns domain not a string", { dns: { domain: ["a"] } }, "1.1.0", "dns.domain must be a string"],
    ["0.2.0 ip4 not an object", { ip4: "10.0.0.2/24" }, "0.2.0", "ip4 must be an object"],
    ["0.2.0 ip4 without ip", { ip4: { gateway: "10.0.0.1" } }, "0.2.0", "ip4.ip must be a string"],
    ["0.2.0 ip4 holding IPv6", { ip4: { ip: "fd00::2/64" } }, "0.2.0", "ip4.ip must be an IPv4 CIDR"],
    ["0.2.0 ip6 holding IPv4", { ip6: { ip: "10.0.0.2/24" } }, "0.1.0", "ip6.ip must be an IPv6 CIDR"],
    [
      "0.2.0 ip6 routes not an array",
      { ip6: { ip: "fd00::2/64", routes: {} } },
      "0.2.0",
      "ip6.routes must be an array",
    ],
    [
      "0.2.0 ip4 route dst bad",
      { ip4: { ip: "10.0.0.2/24", routes: [{ dst: "10/8" }] } },
      "0.2.0",
      "ip4.routes[0].dst must be an address",
    ],
  ])("%s -> code 6", (_name, raw, version, message) => {
    const err = cniErrorOf(() => parseResult(raw, version));
    expect(err.code).toBe(ErrorCode.DecodingFailure);
    expect(err.message).toContain(message);
    expect(err.details).toContain(version);
  });

  it("an unsupported version is code 1, whether from the config or the result", () => {
    expect(cniErrorOf(() => parseResult({}, "9.9.9")).code).toBe(ErrorCode.IncompatibleVersion);
    expect(cniErrorOf(() => parseResult({ cniVersion: "0.5.0" }, "1.1.0")).code).toBe(ErrorCode.IncompatibleVersion);
    expect(cniErrorOf(() => convertResult(DUAL["1.1.0"], "1.1.0", "1.2.0")).code).toBe(ErrorCode.IncompatibleVersion);
  });
});
