import { describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import type { NetConf } from "../../lib/types.js";
import {
  effectiveMetric,
  effectiveTable,
  loadRoutesConfig,
  parseRoute,
  routeKey,
} from "../../plugins/routes/config.js";

const conf = (o: Record<string, unknown> = {}): NetConf =>
  ({ cniVersion: "1.1.0", name: "net1", type: "routes", ...o }) as NetConf;

function fails(o: Record<string, unknown>): CniError {
  try {
    loadRoutesConfig(conf(o));
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error("expected a CniError");
}

describe("routes config: keys and defaults", () => {
  it("defaults: nothing to add, delete or flush; CNI_IFNAME; no node routes", () => {
    expect(loadRoutesConfig(conf())).toEqual({
      addroutes: [],
      delroutes: [],
      flushroutes: false,
      flushgateway: false,
      skipcheck: false,
      interface: undefined,
      hostRoutes: [],
    });
  });

  it("reads every key", () => {
    const c = loadRoutesConfig(
      conf({
        addroutes: [{ dst: "10.96.0.0/12", gw: "10.1.0.1" }],
        delroutes: [{ dst: "0.0.0.0/0" }],
        flushroutes: true,
        flushgateway: true,
        skipcheck: true,
        interface: "net1",
        hostRoutes: [{ dst: "10.244.2.0/24", gw: "172.31.250.2", dev: "eth1" }],
      }),
    );
    expect(c).toEqual({
      addroutes: [{ dst: "10.96.0.0/12", gw: "10.1.0.1" }],
      delroutes: [{ dst: "0.0.0.0/0" }],
      flushroutes: true,
      flushgateway: true,
      skipcheck: true,
      interface: "net1",
      hostRoutes: [{ dst: "10.244.2.0/24", gw: "172.31.250.2", dev: "eth1" }],
    });
  });

  it("args.cni overrides the top-level keys (route-override's rule), key by key", () => {
    const c = loadRoutesConfig(
      conf({
        addroutes: [{ dst: "10.1.0.0/16" }],
        flushroutes: false,
        skipcheck: true,
        interface: "eth0",
        args: {
          cni: {
            addroutes: [{ dst: "10.2.0.0/16" }],
            delroutes: [{ dst: "10.3.0.0/16" }],
            flushroutes: true,
            flushgateway: true,
            interface: "eth1",
          },
        },
      }),
    );
    expect(c.addroutes).toEqual([{ dst: "10.2.0.0/16" }]);
    expect(c.delroutes).toEqual([{ dst: "10.3.0.0/16" }]);
    expect(c.flushroutes).toBe(true);
    expect(c.flushgateway).toBe(true);
    expect(c.skipcheck).toBe(true); // not overridden
    expect(c.interface).toBe("eth1");
  });

  it("args.cni.skipcheck overrides too, and unrelated args.cni keys of other plugins are ignored", () => {
    const c = loadRoutesConfig(
      conf({ skipcheck: false, args: { cni: { skipcheck: true, mac: "aa:bb:cc:dd:ee:ff" } } }),
    );
    expect(c.skipcheck).toBe(true);
  });

  it("args.cni.hostRoutes is refused (code 2): a pod's args must not change its node's routes", () => {
    const e = fails({ args: { cni: { hostRoutes: [{ dst: "10.0.0.0/8", gw: "10.1.0.1" }] } } });
    expect(e.code).toBe(2);
    expect(e.message).toContain("args.cni.hostRoutes");
  });

  it('booleans also as "true"/"false"; anything else is code 7 naming the key', () => {
    expect(loadRoutesConfig(conf({ flushroutes: "true", flushgateway: "false" }))).toMatchObject({
      flushroutes: true,
      flushgateway: false,
    });
    for (const key of ["flushroutes", "flushgateway", "skipcheck"]) {
      const e = fails({ [key]: "yes" });
      expect(e.code).toBe(7);
      expect(e.message).toBe(`${key} must be a boolean, got "yes"`);
    }
    expect(fails({ args: { cni: { flushgateway: 1 } } }).message).toBe(
      "args.cni.flushgateway must be a boolean, got 1",
    );
  });

  it("interface is validated like an interface name (code 7 naming the key)", () => {
    for (const bad of ["eth 0", "../x", "-eth0", "a-very-long-interface-name"]) {
      const e = fails({ interface: bad });
      expect(e.code).toBe(7);
      expect(e.message).toMatch(/^interface: /);
    }
    expect(fails({ interface: 3 }).message).toBe("interface must be an interface name, got 3");
    expect(fails({ args: { cni: { interface: "x y" } } }).message).toMatch(/^args\.cni\.interface: /);
  });

  it("route lists must be arrays", () => {
    expect(fails({ addroutes: { dst: "10.0.0.0/8" } }).message).toBe(
      "addroutes must be an array of routes, got an object",
    );
    expect(fails({ delroutes: "10.0.0.0/8" }).message).toBe('delroutes must be an array of routes, got "10.0.0.0/8"');
    expect(fails({ hostRoutes: 5 }).message).toBe("hostRoutes must be an array of routes, got 5");
    expect(loadRoutesConfig(conf({ addroutes: null })).addroutes).toEqual([]);
  });

  it("hostRoutes need gw or dev", () => {
    expect(fails({ hostRoutes: [{ dst: "10.0.0.0/8" }] }).message).toBe("hostRoutes[0] needs gw or dev");
    expect(loadRoutesConfig(conf({ hostRoutes: [{ dst: "10.0.0.0/8", dev: "cni0" }] })).hostRoutes).toEqual([
      { dst: "10.0.0.0/8", dev: "cni0" },
    ]);
  });

  it("two routes in one kernel slot (dst, table, priority) are refused: the second add would fail", () => {
    const e = fails({
      addroutes: [
        { dst: "10.0.0.0/8", gw: "10.1.0.1" },
        { dst: "10.0.0.0/8", gw: "10.1.0.2" },
      ],
    });
    expect(e.code).toBe(7);
    expect(e.message).toBe(
      "addroutes[1] has the same dst, table and priority as addroutes[0] (10.0.0.0/8 table 254 metric 0)",
    );
    // Another priority or table is another slot.
    expect(
      loadRoutesConfig(
        conf({
          addroutes: [{ dst: "10.0.0.0/8" }, { dst: "10.0.0.0/8", priority: 10 }, { dst: "10.0.0.0/8", table: 7 }],
        }),
      ).addroutes,
    ).toHaveLength(3);
    expect(
      fails({
        hostRoutes: [
          { dst: "fd00::/64", dev: "a" },
          { dst: "fd00::/64", dev: "b", priority: 1024 },
        ],
      }).message,
    ).toContain("hostRoutes[1]");
  });
});

describe("routes config: every spec 1.1 route field", () => {
  it("dst, gw, mtu, advmss, priority, table, scope are kept; addresses in canonical form", () => {
    expect(
      parseRoute(
        { dst: "FD00:0::/64", gw: "FD00::0001", mtu: 1400, advmss: 1300, priority: 5, table: 100, scope: 0 },
        "r",
      ),
    ).toEqual({
      dst: "fd00::/64",
      gw: "fd00::1",
      mtu: 1400,
      advmss: 1300,
      priority: 5,
      table: 100,
      scope: 0,
    });
    expect(parseRoute({ dst: "10.5.0.0/16", scope: 253 }, "r")).toEqual({ dst: "10.5.0.0/16", scope: 253 });
    expect(parseRoute({ dst: "10.5.0.0/16", gw: "10.1.0.1", scope: 200 }, "r")).toEqual({
      dst: "10.5.0.0/16",
      gw: "10.1.0.1",
      scope: 200,
    });
  });

  it("0 is 'not set' for mtu, advmss, priority (Go's plain ints), a value for table and scope; empty gw is no gw", () => {
    expect(parseRoute({ dst: "10.5.0.0/16", gw: "", mtu: 0, advmss: 0, priority: 0, table: 0, scope: 0 }, "r")).toEqual(
      { dst: "10.5.0.0/16", table: 0, scope: 0 },
    );
  });

  it("effective table and metric: unset/0 table is main; metric 0 for IPv4, 1024 for IPv6", () => {
    expect(effectiveTable({ dst: "10.0.0.0/8" })).toBe(254);
    expect(effectiveTable({ dst: "10.0.0.0/8", table: 0 })).toBe(254);
    expect(effectiveTable({ dst: "10.0.0.0/8", table: 7 })).toBe(7);
    expect(effectiveMetric({ dst: "10.0.0.0/8" })).toBe(0);
    expect(effectiveMetric({ dst: "fd00::/8" })).toBe(1024);
    expect(routeKey({ dst: "fd00::/8", table: 9, priority: 3 })).toBe("fd00::/8 table 9 metric 3");
  });

  const bad: Array<[string, Record<string, unknown>, number, string]> = [
    ["no dst", { gw: "10.1.0.1" }, 7, "addroutes[0].dst is required and must be a CIDR string, got undefined"],
    [
      "dst not a CIDR",
      { dst: "10.1.0.0" },
      7,
      'addroutes[0].dst: "10.1.0.0" is not a CIDR (address/prefix, e.g. 10.96.0.0/12)',
    ],
    ["dst garbage", { dst: "ten/8" }, 7, 'addroutes[0].dst: "ten/8" is not a CIDR (address/prefix, e.g. 10.96.0.0/12)'],
    [
      "dst prefix too long",
      { dst: "10.0.0.0/33" },
      7,
      'addroutes[0].dst: "10.0.0.0/33" is not a CIDR (address/prefix, e.g. 10.96.0.0/12)',
    ],
    ["dst with host bits", { dst: "10.1.2.3/16" }, 7, 'addroutes[0].dst: "10.1.2.3/16" is not a network address'],
    ["dst a number", { dst: 10 }, 7, "addroutes[0].dst is required and must be a CIDR string, got 10"],
    ["gw not an IP", { dst: "10.0.0.0/8", gw: "10.0.0.256" }, 7, 'addroutes[0].gw: "10.0.0.256" is not an IP address'],
    ["gw a CIDR", { dst: "10.0.0.0/8", gw: "10.1.0.1/24" }, 7, 'addroutes[0].gw: "10.1.0.1/24" is not an IP address'],
    [
      "gw wrong family",
      { dst: "10.0.0.0/8", gw: "fd00::1" },
      7,
      "addroutes[0].gw fd00::1 is IPv6 but dst 10.0.0.0/8 is IPv4",
    ],
    [
      "gw wrong family (6 via 4)",
      { dst: "fd00::/8", gw: "10.1.0.1" },
      7,
      "addroutes[0].gw 10.1.0.1 is IPv4 but dst fd00::/8 is IPv6",
    ],
    ["negative mtu", { dst: "10.0.0.0/8", mtu: -1 }, 7, "addroutes[0].mtu must be between 68 and 65535, got -1"],
    ["fractional mtu", { dst: "10.0.0.0/8", mtu: 1400.5 }, 7, "addroutes[0].mtu must be an integer, got 1400.5"],
    ["string mtu", { dst: "10.0.0.0/8", mtu: "1400" }, 7, 'addroutes[0].mtu must be an integer, got "1400"'],
    [
      "IPv6 mtu below 1280",
      { dst: "fd00::/8", mtu: 1000 },
      7,
      "addroutes[0].mtu must be between 1280 and 65535, got 1000",
    ],
    [
      "negative advmss",
      { dst: "10.0.0.0/8", advmss: -5 },
      7,
      "addroutes[0].advmss must be between 1 and 65535, got -5",
    ],
    [
      "negative priority",
      { dst: "10.0.0.0/8", priority: -1 },
      7,
      "addroutes[0].priority must be between 0 and 4294967295, got -1",
    ],
    [
      "huge priority",
      { dst: "10.0.0.0/8", priority: 2 ** 32 },
      7,
      "addroutes[0].priority must be between 0 and 4294967295, got 4294967296",
    ],
    [
      "negative table",
      { dst: "10.0.0.0/8", table: -3 },
      7,
      "addroutes[0].table must be between 0 and 4294967295, got -3",
    ],
    ["fractional table", { dst: "10.0.0.0/8", table: 1.5 }, 7, "addroutes[0].table must be an integer, got 1.5"],
    ["scope name", { dst: "10.0.0.0/8", scope: "link" }, 7, 'addroutes[0].scope must be an integer, got "link"'],
    ["unknown scope value", { dst: "10.0.0.0/8", scope: 42 }, 2, "addroutes[0].scope 42 is not supported"],
    ["scope nowhere", { dst: "10.0.0.0/8", scope: 255 }, 2, "addroutes[0].scope 255 is not supported"],
    ["IPv6 scope", { dst: "fd00::/8", scope: 253 }, 2, "addroutes[0].scope 253 is not supported for IPv6 routes"],
    [
      "gateway with link scope",
      { dst: "10.0.0.0/8", gw: "10.1.0.1", scope: 253 },
      7,
      "addroutes[0]: a route via a gateway cannot have link scope (253)",
    ],
    [
      "gateway with host scope",
      { dst: "10.0.0.0/8", gw: "10.1.0.1", scope: 254 },
      7,
      "addroutes[0]: a route via a gateway cannot have host scope (254)",
    ],
    ["unknown key", { dst: "10.0.0.0/8", via: "10.1.0.1" }, 7, 'addroutes[0]: unknown key "via"'],
    ["dev outside hostRoutes", { dst: "10.0.0.0/8", dev: "eth0" }, 7, 'addroutes[0]: unknown key "dev"'],
  ];
  for (const [what, route, code, msg] of bad) {
    it(`${what}: code ${code}, naming the key`, () => {
      const e = fails({ addroutes: [route] });
      expect({ code: e.code, msg: e.message }).toEqual({ code, msg });
    });
  }

  it("a route that is not an object", () => {
    expect(fails({ delroutes: ["10.0.0.0/8"] }).message).toBe(
      'delroutes[0] must be an object {dst, gw?, ...}, got "10.0.0.0/8"',
    );
    expect(fails({ delroutes: [null] }).message).toBe("delroutes[0] must be an object {dst, gw?, ...}, got null");
  });

  it("the 'not a network address' error suggests the network", () => {
    expect(fails({ addroutes: [{ dst: "10.1.2.3/16" }] }).details).toBe("host bits are set: did you mean 10.1.0.0/16?");
  });

  it("messages name where the route came from: delroutes, hostRoutes, args.cni.addroutes", () => {
    expect(fails({ delroutes: [{ dst: "10.0.0.1/8" }] }).message).toMatch(/^delroutes\[0\]\.dst: /);
    expect(fails({ hostRoutes: [{ dst: "10.0.0.0/8", gw: "x" }] }).message).toMatch(/^hostRoutes\[0\]\.gw: /);
    expect(fails({ hostRoutes: [{ dst: "10.0.0.0/8", dev: "a b" }] }).message).toMatch(/^hostRoutes\[0\]\.dev: /);
    expect(fails({ args: { cni: { addroutes: [{ dst: "x" }] } } }).message).toMatch(
      /^args\.cni\.addroutes\[0\]\.dst: /,
    );
  });

  it("args and args.cni must be objects", () => {
    expect(fails({ args: [] }).message).toBe("args must be an object");
    expect(fails({ args: { cni: "x" } }).message).toBe("args.cni must be an object");
  });
});
