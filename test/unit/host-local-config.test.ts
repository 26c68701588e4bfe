import { describe, expect, it } from "vitest";
import { formatIP } from "../../lib/cidr.js";
import { CniError } from "../../lib/errors.js";
import { type HostLocalConfig, loadHostLocalConfig } from "../../ipam/host-local/config.js";
import { describeRange } from "../../ipam/host-local/range.js";

type Json = Record<string, unknown>;

function conf(ipam: Json, extra: Json = {}): Json {
  return { cniVersion: "1.0.0", name: "mynet", type: "bridge", ipam: { type: "host-local", ...ipam }, ...extra };
}

function sets(c: HostLocalConfig): ReturnType<typeof describeRange>[][] {
  return c.rangeSets.map((s) => s.map(describeRange));
}

function errorOf(input: unknown, cniArgsIP?: string): { code: number; msg: string } {
  try {
    loadHostLocalConfig(input, cniArgsIP);
  } catch (e) {
    if (e instanceof CniError) return { code: e.code, msg: e.message };
    throw e;
  }
  throw new Error("expected loadHostLocalConfig to throw");
}

describe("range defaults", () => {
  it("fills an IPv4 range like the reference: start .1, end .254, gateway .1", () => {
    const c = loadHostLocalConfig(conf({ ranges: [[{ subnet: "10.1.2.0/24" }]] }), undefined);
    expect(sets(c)).toEqual([
      [{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.1", rangeEnd: "10.1.2.254", gateway: "10.1.2.1" }],
    ]);
    expect(c).toMatchObject({ name: "mynet", dataDir: "/var/lib/cni/networks", routes: [], requestedIPs: [] });
    expect(c.resolvConf).toBeUndefined();
  });

  it("fills an IPv6 range up to the last address (no broadcast)", () => {
    const c = loadHostLocalConfig(conf({ ranges: [[{ subnet: "2001:DB8:1::/64" }]] }), undefined);
    expect(sets(c)).toEqual([
      [
        {
          subnet: "2001:db8:1::/64",
          rangeStart: "2001:db8:1::1",
          rangeEnd: "2001:db8:1:0:ffff:ffff:ffff:ffff",
          gateway: "2001:db8:1::1",
        },
      ],
    ]);
  });

  it("keeps explicit values, and a gateway outside the subnet (the reference does not check it)", () => {
    const c = loadHostLocalConfig(
      conf({
        ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.20", gateway: "10.9.9.9" }]],
      }),
      undefined,
    );
    expect(sets(c)).toEqual([
      [{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.20", gateway: "10.9.9.9" }],
    ]);
  });

  it("treats empty address strings and nulls as unset, like Go", () => {
    const c = loadHostLocalConfig(
      conf({
        ranges: [[{ subnet: "10.1.2.0/30", rangeStart: "", rangeEnd: null, gateway: "" }]],
        dataDir: "",
        resolvConf: null,
      }),
      "",
    );
    expect(sets(c)).toEqual([
      [{ subnet: "10.1.2.0/30", rangeStart: "10.1.2.1", rangeEnd: "10.1.2.2", gateway: "10.1.2.1" }],
    ]);
    expect(c.dataDir).toBe("/var/lib/cni/networks");
  });

  it("accepts rangeEnd = broadcast and rangeStart = network when written (the reference does)", () => {
    const c = loadHostLocalConfig(
      conf({ ranges: [[{ subnet: "10.1.2.0/29", rangeStart: "10.1.2.0", rangeEnd: "10.1.2.7" }]] }),
      undefined,
    );
    expect(sets(c)[0]?.[0]).toEqual({
      subnet: "10.1.2.0/29",
      rangeStart: "10.1.2.0",
      rangeEnd: "10.1.2.7",
      gateway: "10.1.2.1",
    });
  });
});

describe("range set order", () => {
  it("runtime ipRanges first, then the deprecated top-level range, then ipam.ranges", () => {
    const c = loadHostLocalConfig(
      conf(
        {
          subnet: "10.2.0.0/16",
          rangeStart: "10.2.0.5",
          gateway: "10.2.0.254",
          ranges: [[{ subnet: "10.3.0.0/16" }], [{ subnet: "fd00::/64" }]],
        },
        { runtimeConfig: { ipRanges: [[{ subnet: "10.1.0.0/16" }]] } },
      ),
      undefined,
    );
    expect(c.rangeSets.map((s) => s.map((r) => describeRange(r).subnet))).toEqual([
      ["10.1.0.0/16"],
      ["10.2.0.0/16"],
      ["10.3.0.0/16"],
      ["fd00::/64"],
    ]);
    expect(sets(c)[1]).toEqual([
      { subnet: "10.2.0.0/16", rangeStart: "10.2.0.5", rangeEnd: "10.2.255.254", gateway: "10.2.0.254" },
    ]);
  });

  it("keeps several ranges in one set in order", () => {
    const c = loadHostLocalConfig(
      conf({ ranges: [[{ subnet: "10.1.1.0/24" }, { subnet: "10.1.2.0/24", rangeStart: "10.1.2.100" }]] }),
      undefined,
    );
    expect(c.rangeSets[0]?.map((r) => describeRange(r).rangeStart)).toEqual(["10.1.1.1", "10.1.2.100"]);
  });

  it("ignores a top-level rangeStart without a subnet, as the reference does", () => {
    expect(errorOf(conf({ rangeStart: "10.1.2.3" }))).toEqual({ code: 7, msg: "no IP ranges specified" });
  });
});

describe("requested IPs, routes, resolvConf, dataDir", () => {
  it("combines CNI_ARGS IP, args.cni.ips and runtimeConfig.ips, drops prefixes and duplicates", () => {
    const c = loadHostLocalConfig(
      conf(
        { ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "2001:db8:1::/64" }]] },
        {
          args: { cni: { ips: ["10.1.2.20/24", "2001:db8:1::0020"] } },
          runtimeConfig: { ips: ["10.1.2.30", "10.1.2.20"] },
        },
      ),
      "10.1.2.10",
    );
    expect(c.requestedIPs.map(formatIP)).toEqual(["10.1.2.10", "10.1.2.20", "2001:db8:1::20", "10.1.2.30"]);
  });

  it("copies routes in Go's output form (canonical text, zero mtu dropped, table kept)", () => {
    const c = loadHostLocalConfig(
      conf({
        ranges: [[{ subnet: "10.1.2.0/24" }]],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "2001:DB8::/32", gw: "2001:db8:1::1", mtu: 0, advmss: 1400, table: 0 }],
        resolvConf: "/etc/resolv.conf",
        dataDir: "/run/cni/ipam",
      }),
      undefined,
    );
    expect(c.routes).toEqual([
      { dst: "0.0.0.0/0" },
      { dst: "2001:db8::/32", gw: "2001:db8:1::1", advmss: 1400, table: 0 },
    ]);
    expect(c.resolvConf).toBe("/etc/resolv.conf");
    expect(c.dataDir).toBe("/run/cni/ipam");
  });
});

const r24 = { ranges: [[{ subnet: "10.1.2.0/24" }]] };

describe("validation messages (code 7)", () => {
  it.each<[string, unknown, string]>([
    ["no ranges", conf({}), "no IP ranges specified"],
    ["no ipam", { cniVersion: "1.0.0", name: "mynet" }, "IPAM config missing 'ipam' key"],
    [
      "host bits",
      conf({ ranges: [[{ subnet: "10.1.2.3/24" }]] }),
      "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.1.2.0",
    ],
    [
      "host bits v6",
      conf({ ranges: [[{ subnet: "2001:db8:1::5/64" }]] }),
      "invalid range set 0: Network has host bits set. For a subnet mask of length 64 the network address is 2001:db8:1::",
    ],
    [
      "/31",
      conf({ ranges: [[{ subnet: "10.1.2.0/31" }]] }),
      "invalid range set 0: Network 10.1.2.0/31 too small to allocate from",
    ],
    [
      "/32",
      conf({ ranges: [[{ subnet: "10.1.2.3/32" }]] }),
      "invalid range set 0: Network 10.1.2.3/32 too small to allocate from",
    ],
    [
      "/127",
      conf({ ranges: [[{ subnet: "fd00::/127" }]] }),
      "invalid range set 0: Network fd00::/127 too small to allocate from",
    ],
    [
      "/128",
      conf({ ranges: [[{ subnet: "fd00::1/128" }]] }),
      "invalid range set 0: Network fd00::1/128 too small to allocate from",
    ],
    [
      "rangeStart outside",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.3.1" }]] }),
      "invalid range set 0: RangeStart 10.1.3.1 not in network 10.1.2.0/24",
    ],
    [
      "rangeEnd outside",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeEnd: "10.1.3.1" }]] }),
      "invalid range set 0: RangeEnd 10.1.3.1 not in network 10.1.2.0/24",
    ],
    [
      "rangeEnd of the other family",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeEnd: "fd00::1" }]] }),
      "invalid range set 0: RangeEnd fd00::1 not in network 10.1.2.0/24",
    ],
    [
      "start > end (reported on rangeStart, as Go does)",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.50", rangeEnd: "10.1.2.40" }]] }),
      "invalid range set 0: RangeStart 10.1.2.50 not in network 10.1.2.0/24",
    ],
    [
      "start > default end",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.255" }]] }),
      "invalid range set 0: RangeEnd 10.1.2.254 not in network 10.1.2.0/24",
    ],
    [
      "mixed families",
      conf({ ranges: [[{ subnet: "10.1.2.0/24" }, { subnet: "fd00::/64" }]] }),
      "invalid range set 0: mixed address families",
    ],
    ["empty set", conf({ ranges: [[{ subnet: "10.1.2.0/24" }], []] }), "invalid range set 1: empty range set"],
    [
      "overlap within a set",
      conf({ ranges: [[{ subnet: "10.1.0.0/16" }, { subnet: "10.1.2.0/24" }]] }),
      "invalid range set 0: subnets 10.1.0.1-10.1.255.254 and 10.1.2.1-10.1.2.254 overlap",
    ],
    [
      "overlap across sets",
      conf({ ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "fd00::/64" }], [{ subnet: "10.1.0.0/16" }]] }),
      "range set 0 overlaps with 2",
    ],
    [
      "overlap with a runtime range",
      conf(r24, { runtimeConfig: { ipRanges: [[{ subnet: "10.1.2.128/25" }]] } }),
      "range set 0 overlaps with 1",
    ],
    [
      "two v4 sets at 0.2.0",
      conf({ ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "10.1.3.0/24" }]] }, { cniVersion: "0.2.0" }),
      "CNI version 0.2.0 does not support more than 1 address per family",
    ],
    [
      "two v6 sets with no cniVersion (0.1.0)",
      { name: "mynet", ipam: { ranges: [[{ subnet: "fd00::/64" }], [{ subnet: "fd01::/64" }]] } },
      "CNI version  does not support more than 1 address per family",
    ],
    [
      "missing subnet",
      conf({ ranges: [[{ rangeStart: "10.1.2.1" }]] }),
      "invalid range set 0: ipam.ranges[0][0].subnet is required",
    ],
    [
      "bad CIDR",
      conf({ ranges: [[{ subnet: "10.1.2.0/33" }]] }),
      "invalid CIDR address: 10.1.2.0/33 (ipam.ranges[0][0].subnet)",
    ],
    ["empty legacy subnet", conf({ subnet: "" }), "invalid CIDR address:  (ipam.subnet)"],
    [
      "bad rangeStart",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2" }]] }),
      "invalid IP address: 10.1.2 (ipam.ranges[0][0].rangeStart)",
    ],
    [
      "v4-mapped gateway",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", gateway: "::ffff:10.1.2.1" }]] }),
      "invalid IP address: ::ffff:10.1.2.1 (ipam.ranges[0][0].gateway)",
    ],
    ["bad route dst", conf({ ...r24, routes: [{ dst: "nope" }] }), "invalid CIDR address: nope (ipam.routes[0].dst)"],
    ["route without dst", conf({ ...r24, routes: [{ gw: "10.1.2.1" }] }), "ipam.routes[0].dst is required"],
  ])("%s", (_title, input, msg) => {
    expect(errorOf(input)).toEqual({ code: 7, msg });
  });

  it("accepts several sets per family from 0.3.0 on, and one per family before", () => {
    const two = { ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "10.1.3.0/24" }]] };
    expect(loadHostLocalConfig(conf(two, { cniVersion: "0.3.0" }), undefined).rangeSets).toHaveLength(2);
    const dual = { ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "fd00::/64" }]] };
    expect(loadHostLocalConfig(conf(dual, { cniVersion: "0.2.0" }), undefined).rangeSets).toHaveLength(2);
  });

  it.each<[string, unknown, string]>([
    ["config not an object", [1], "network configuration must be a JSON object"],
    ["ipam not an object", { name: "mynet", ipam: "host-local" }, "config.ipam must be an object"],
    ["ranges not an array", conf({ ranges: { subnet: "10.1.2.0/24" } }), "ipam.ranges must be an array"],
    ["set not an array", conf({ ranges: [{ subnet: "10.1.2.0/24" }] }), "ipam.ranges[0] must be an array of ranges"],
    ["range not an object", conf({ ranges: [["10.1.2.0/24"]] }), 'ipam.ranges[0][0] must be an object with a "subnet"'],
    ["subnet a number", conf({ ranges: [[{ subnet: 10 }]] }), "ipam.ranges[0][0].subnet must be a string"],
    [
      "rangeStart a number",
      conf({ ranges: [[{ subnet: "10.1.2.0/24", rangeStart: 5 }]] }),
      "ipam.ranges[0][0].rangeStart must be a string",
    ],
    ["ipam.type a number", conf({ ...r24, type: 1 }), "ipam.type must be a string"],
    ["cniVersion a number", conf(r24, { cniVersion: 1 }), "config.cniVersion must be a string"],
    ["dataDir a number", conf({ ...r24, dataDir: 1 }), "ipam.dataDir must be a string"],
    ["resolvConf an array", conf({ ...r24, resolvConf: [] }), "ipam.resolvConf must be a string"],
    ["routes an object", conf({ ...r24, routes: {} }), "ipam.routes must be an array"],
    [
      "route mtu a string",
      conf({ ...r24, routes: [{ dst: "0.0.0.0/0", mtu: "1500" }] }),
      "ipam.routes[0].mtu must be an integer",
    ],
    ["runtimeConfig a string", conf(r24, { runtimeConfig: "x" }), "config.runtimeConfig must be an object"],
    ["ipRanges an object", conf(r24, { runtimeConfig: { ipRanges: {} } }), "runtimeConfig.ipRanges must be an array"],
    [
      "runtimeConfig.ips a string",
      conf(r24, { runtimeConfig: { ips: "10.1.2.3" } }),
      "runtimeConfig.ips must be an array",
    ],
    ["args.cni not an object", conf(r24, { args: { cni: [] } }), "args.cni must be an object"],
    ["args.cni.ips element a number", conf(r24, { args: { cni: { ips: [7] } } }), "args.cni.ips[0] must be a string"],
    [
      "requested IP not an IP",
      conf(r24, { runtimeConfig: { ips: ["10.1.2.x"] } }),
      "invalid IP address: 10.1.2.x (runtimeConfig.ips[0])",
    ],
    ["requested IP empty", conf(r24, { runtimeConfig: { ips: [""] } }), "invalid IP address:  (runtimeConfig.ips[0])"],
    [
      "requested IP bad prefix",
      conf(r24, { args: { cni: { ips: ["10.1.2.3/40"] } } }),
      "invalid IP address: 10.1.2.3/40 (args.cni.ips[0])",
    ],
    [
      "requested IP v4-mapped",
      conf(r24, { runtimeConfig: { ips: ["::ffff:10.1.2.3"] } }),
      "invalid IP address: ::ffff:10.1.2.3 (runtimeConfig.ips[0])",
    ],
    [
      "dataDir relative",
      conf({ ...r24, dataDir: "var/lib/cni" }),
      'ipam.dataDir must be an absolute path, got "var/lib/cni"',
    ],
    [
      "dataDir with ..",
      conf({ ...r24, dataDir: "/var/lib/../../etc" }),
      'ipam.dataDir must not contain "..", got "/var/lib/../../etc"',
    ],
    ["dataDir with NUL", conf({ ...r24, dataDir: "/var/lib\0/x" }), "ipam.dataDir must not contain a NUL byte"],
  ])("wrong type or value: %s", (_title, input, msg) => {
    expect(errorOf(input)).toEqual({ code: 7, msg });
  });

  it("refuses a bad CNI_ARGS IP", () => {
    expect(errorOf(conf(r24), "10.1.2.300")).toEqual({ code: 7, msg: "invalid IP address: 10.1.2.300 (CNI_ARGS IP)" });
  });

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["empty", ""],
    ["a number", 5],
    ["a path", "../etc"],
    ["a slash", "a/b"],
    ["a leading dot", ".hidden"],
    ["a space", "my net"],
    ["256 bytes", "a".repeat(256)],
  ])("refuses a network name that is %s", (_title, name) => {
    expect(errorOf({ ...conf(r24), name }).code).toBe(7);
  });

  it("accepts a 255-byte name with dots, dashes and underscores", () => {
    const name = `a-b_c.d${"x".repeat(248)}`;
    expect(loadHostLocalConfig({ ...conf(r24), name }, undefined).name).toBe(name);
  });
});
