import { describe, expect, it } from "vitest";
import { normalizeRoute } from "../../lib/ip/routes.js";

describe("kernel routes as read", () => {
  it("normalises ip -json -N -d rows: numbers, canonical dst, metrics, IPv6 without scope", () => {
    expect(
      normalizeRoute(
        {
          type: "1",
          dst: "default",
          gateway: "10.9.0.1",
          dev: "d0",
          table: "254",
          protocol: "3",
          scope: "0",
          flags: [],
        },
        4,
      ),
    ).toEqual({
      family: 4,
      type: 1,
      dst: "0.0.0.0/0",
      gateway: "10.9.0.1",
      dev: "d0",
      table: 254,
      protocol: 3,
      scope: 0,
      metric: 0,
      metrics: {},
      onlink: false,
      multipath: false,
    });
    expect(
      normalizeRoute(
        {
          dst: "10.50.0.0/16",
          gateway: "10.9.0.1",
          table: "100",
          protocol: "207",
          metric: 5,
          metrics: [{ mtu: 1400, advmss: 1300 }],
          flags: ["onlink"],
        },
        4,
      ),
    ).toMatchObject({
      table: 100,
      protocol: 207,
      metric: 5,
      metrics: { mtu: 1400, advmss: 1300 },
      onlink: true,
    });
    expect(normalizeRoute({ dst: "FD50::/64", gateway: "FD09::1", metric: 1024, scope: "253" }, 6)).toMatchObject({
      dst: "fd50::/64",
      gateway: "fd09::1",
      scope: 0,
    });
    expect(normalizeRoute({ dst: "10.9.0.2", type: "2", table: "255" }, 4)).toMatchObject({
      dst: "10.9.0.2/32",
      type: 2,
      table: 255,
    });
  });

  it("understands names too (an iproute2 without -N, or a name from rt_protos)", () => {
    expect(
      normalizeRoute({ type: "blackhole", dst: "10.54.0.0/16", table: "main", protocol: "boot", scope: "link" }, 4),
    ).toMatchObject({ type: 6, table: 254, protocol: 3, scope: 253 });
    expect(normalizeRoute({ dst: "default", table: "local", protocol: "kernel", scope: "host" }, 6)).toMatchObject({
      dst: "::/0",
      table: 255,
      protocol: 2,
      scope: 0,
    });
    expect(normalizeRoute({ dst: "10.0.0.0/8", nexthops: [{}, {}] }, 4).multipath).toBe(true);
    expect(normalizeRoute({ dst: "10.0.0.0/8", metrics: [{ mtu: ["lock", 1300] }] }, 4).metrics).toEqual({ mtu: 1300 });
  });
});
