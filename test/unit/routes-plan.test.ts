import { describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import type { NetConf, Result } from "../../lib/types.js";
import { hostProblem, podProblem } from "../../plugins/routes/check.js";
import { loadRoutesConfig, ROUTES_PROTO } from "../../plugins/routes/config.js";
import { planHost } from "../../plugins/routes/hostplan.js";
import type { KernelRoute } from "../../lib/ip/routes.js";
import { deleteTokens, restoreTokens, routeTokens } from "../../plugins/routes/kernel.js";
import { nextHop, planPod, podResult } from "../../plugins/routes/podplan.js";

const NETNS = "/var/run/netns/pod";
const conf = (o: Record<string, unknown> = {}) =>
  loadRoutesConfig({ cniVersion: "1.1.0", name: "n", type: "routes", ...o } as NetConf);

/** A kernel route with the defaults `ip -N -d -json` would show for a plain unicast route. */
function k(dst: string, o: Partial<KernelRoute> = {}): KernelRoute {
  const family = dst.includes(":") ? 6 : 4;
  return {
    family,
    type: 1,
    dst,
    table: 254,
    protocol: 3,
    scope: 0,
    metric: family === 6 ? 1024 : 0,
    metrics: {},
    onlink: false,
    multipath: false,
    dev: "eth0",
    ...o,
  };
}

/** The bridge's result for a pod on 10.1.0.0/24 and fd01::/64, with IPAM's routes. */
const prev: Result = {
  interfaces: [
    { name: "cni0", mac: "aa:00:00:00:00:01" },
    { name: "veth1", mac: "aa:00:00:00:00:02" },
    { name: "eth0", mac: "aa:00:00:00:00:03", sandbox: NETNS },
  ],
  ips: [
    { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 2 },
    { address: "fd01::5/64", gateway: "fd01::1", interface: 2 },
  ],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "10.99.0.0/16" }, { dst: "::/0", gw: "fd01::1" }],
};

/** The pod's kernel routes after that bridge ADD. */
const kernel: KernelRoute[] = [
  k("0.0.0.0/0", { gateway: "10.1.0.1" }),
  k("10.99.0.0/16", { gateway: "10.1.0.1" }),
  k("10.1.0.0/24", { protocol: 2, scope: 253, prefsrc: "10.1.0.5" }),
  k("10.1.0.5/32", { type: 2, table: 255, protocol: 2, scope: 254 }),
  k("::/0", { gateway: "fd01::1" }),
  k("fd01::/64", { protocol: 2, metric: 256 }),
  k("fe80::/64", { protocol: 2, metric: 256 }),
];

describe("route command lines", () => {
  it("command tokens: add with every field and our proto; exact delete; faithful restore", () => {
    expect(
      routeTokens(
        "add",
        { dst: "10.50.0.0/16", mtu: 1400, advmss: 1300, priority: 5, table: 100, scope: 0 },
        "10.1.0.1",
        "eth0",
      ),
    ).toEqual([
      "route",
      "add",
      "10.50.0.0/16",
      "via",
      "10.1.0.1",
      "dev",
      "eth0",
      "table",
      100,
      "metric",
      5,
      "proto",
      ROUTES_PROTO,
      "scope",
      0,
      "mtu",
      1400,
      "advmss",
      1300,
    ]);
    expect(routeTokens("add", { dst: "fd50::/64" }, undefined, "eth0")).toEqual([
      "route",
      "add",
      "fd50::/64",
      "dev",
      "eth0",
      "table",
      254,
      "metric",
      1024,
      "proto",
      ROUTES_PROTO,
    ]);
    const r = k("10.50.0.0/16", {
      gateway: "10.1.0.1",
      table: 100,
      metric: 5,
      metrics: { mtu: 1400 },
      prefsrc: "10.1.0.5",
      onlink: true,
    });
    expect(deleteTokens(r)).toEqual([
      "route",
      "del",
      "unicast",
      "10.50.0.0/16",
      "table",
      100,
      "metric",
      5,
      "proto",
      3,
      "via",
      "10.1.0.1",
      "dev",
      "eth0",
    ]);
    expect(restoreTokens(r)).toEqual([
      "route",
      "add",
      "unicast",
      "10.50.0.0/16",
      "via",
      "10.1.0.1",
      "dev",
      "eth0",
      "table",
      100,
      "metric",
      5,
      "proto",
      3,
      "scope",
      0,
      "src",
      "10.1.0.5",
      "mtu",
      1400,
      "onlink",
    ]);
  });
});

describe("pod plan", () => {
  it("no keys: nothing to do, result = prevResult", () => {
    const c = conf();
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.ops).toEqual([]);
    expect(podResult(prev, c, plan, kernel)).toEqual(prev);
  });

  it("addroutes: every field, next hop from gw, else prevResult's gateway of the family, else on-link with link scope", () => {
    const c = conf({
      addroutes: [
        { dst: "10.50.0.0/16", gw: "10.1.0.254", table: 100, priority: 5, mtu: 1400, advmss: 1300 },
        { dst: "10.51.0.0/16" },
        { dst: "10.52.0.0/16", scope: 253 },
        { dst: "fd50::/64" },
      ],
    });
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.ifindex).toBe(2);
    expect(plan.deletes).toEqual([]);
    expect(plan.adds.map((a) => a.via)).toEqual(["10.1.0.254", "10.1.0.1", undefined, "fd01::1"]);
    expect(plan.ops.map((o) => o.tokens.join(" "))).toEqual([
      `route add 10.50.0.0/16 via 10.1.0.254 dev eth0 table 100 metric 5 proto ${ROUTES_PROTO} mtu 1400 advmss 1300`,
      `route add 10.51.0.0/16 via 10.1.0.1 dev eth0 table 254 metric 0 proto ${ROUTES_PROTO}`,
      `route add 10.52.0.0/16 dev eth0 table 254 metric 0 proto ${ROUTES_PROTO} scope 253`,
      `route add fd50::/64 via fd01::1 dev eth0 table 254 metric 1024 proto ${ROUTES_PROTO}`,
    ]);
    expect(plan.ops[0]!.undo!.join(" ")).toBe(
      `route del 10.50.0.0/16 table 100 metric 5 proto ${ROUTES_PROTO} dev eth0`,
    );
    const result = podResult(prev, c, plan, kernel);
    expect(result.routes).toEqual([...prev.routes!, ...c.addroutes]);
    expect(result.ips).toEqual(prev.ips);
  });

  it("the gateway of another interface is not used; without any gateway the route is on-link", () => {
    const two: Result = {
      ...prev,
      interfaces: [...prev.interfaces!, { name: "net1", sandbox: NETNS }],
      ips: [
        { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 2 },
        { address: "192.168.5.2/24", interface: 3 },
      ],
    };
    expect(nextHop({ dst: "10.50.0.0/16" }, two, 3)).toBeUndefined();
    expect(nextHop({ dst: "10.50.0.0/16" }, two, 2)).toBe("10.1.0.1");
    // IPAM-style ips without an interface index apply to any interface.
    expect(nextHop({ dst: "10.50.0.0/16" }, { ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1" }] }, -1)).toBe(
      "10.1.0.1",
    );
  });

  it("an added route that is already there exactly is not added again (and still reported)", () => {
    const c = conf({ addroutes: [{ dst: "10.99.0.0/16", gw: "10.1.0.1" }] });
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.ops).toEqual([]);
    expect(plan.present).toHaveLength(1);
    expect(podResult(prev, c, plan, kernel).routes).toEqual([...prev.routes!, { dst: "10.99.0.0/16", gw: "10.1.0.1" }]);
  });

  it("an added route whose slot holds a different route that stays is code 102, naming both", () => {
    const c = conf({ addroutes: [{ dst: "10.99.0.0/16", gw: "10.1.0.77" }] });
    let err: unknown;
    try {
      planPod(c, prev, "eth0", NETNS, kernel);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(102);
    expect((err as CniError).message).toBe(
      "addroutes[0] 10.99.0.0/16 via 10.1.0.77: the pod already has a different route with that dst, table and priority",
    );
    expect((err as CniError).details).toContain("existing: 10.99.0.0/16 via 10.1.0.1 dev eth0 proto 3");
  });

  it("... unless delroutes removes it first: delete, then add", () => {
    const c = conf({ delroutes: [{ dst: "10.99.0.0/16" }], addroutes: [{ dst: "10.99.0.0/16", gw: "10.1.0.77" }] });
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.ops.map((o) => o.tokens[1])).toEqual(["del", "add"]);
    expect(podResult(prev, c, plan, kernel).routes).toEqual([
      { dst: "0.0.0.0/0" },
      { dst: "::/0", gw: "fd01::1" },
      { dst: "10.99.0.0/16", gw: "10.1.0.77" },
    ]);
  });

  it("delroutes: exact dst only (the default route is not 'covering' it); gw, table, priority narrow it; unset table = main", () => {
    const many = [
      ...kernel,
      k("10.99.0.0/16", { gateway: "10.1.0.1", table: 100 }),
      k("10.99.0.0/16", { gateway: "10.1.0.2", metric: 50 }),
    ];
    const pick = (d: Record<string, unknown>) =>
      planPod(conf({ delroutes: [d] }), prev, "eth0", NETNS, many).deletes.map(
        (x) => `${x.dst} ${x.gateway} t${x.table} m${x.metric}`,
      );
    expect(pick({ dst: "10.99.0.0/16" })).toEqual(["10.99.0.0/16 10.1.0.1 t254 m0", "10.99.0.0/16 10.1.0.2 t254 m50"]);
    expect(pick({ dst: "10.99.0.0/16", gw: "10.1.0.2" })).toEqual(["10.99.0.0/16 10.1.0.2 t254 m50"]);
    expect(pick({ dst: "10.99.0.0/16", priority: 50 })).toEqual(["10.99.0.0/16 10.1.0.2 t254 m50"]);
    expect(pick({ dst: "10.99.0.0/16", table: 100 })).toEqual(["10.99.0.0/16 10.1.0.1 t100 m0"]);
    expect(pick({ dst: "10.98.0.0/16" })).toEqual([]);
    expect(pick({ dst: "10.0.0.0/8" })).toEqual([]);
  });

  it("delroutes picks routes on the target interface only, not ECMP routes", () => {
    const other = [
      ...kernel,
      k("10.97.0.0/16", { gateway: "192.168.5.1", dev: "net1" }),
      k("10.96.0.0/16", { multipath: true }),
    ];
    expect(
      planPod(conf({ delroutes: [{ dst: "10.97.0.0/16" }, { dst: "10.96.0.0/16" }] }), prev, "eth0", NETNS, other)
        .deletes,
    ).toEqual([]);
    expect(
      planPod(conf({ interface: "net1", delroutes: [{ dst: "10.97.0.0/16" }] }), prev, "net1", NETNS, other).deletes,
    ).toHaveLength(1);
  });

  it("a delroute that matches nothing is fine (already absent) and drops the route from the result", () => {
    const c = conf({ delroutes: [{ dst: "10.88.0.0/16" }] });
    const withStale: Result = { ...prev, routes: [...prev.routes!, { dst: "10.88.0.0/16" }] };
    const plan = planPod(c, withStale, "eth0", NETNS, kernel);
    expect(plan.ops).toEqual([]);
    expect(podResult(withStale, c, plan, kernel).routes).toEqual(prev.routes);
  });

  it("delete ops restore the route on undo", () => {
    const plan = planPod(conf({ delroutes: [{ dst: "10.99.0.0/16" }] }), prev, "eth0", NETNS, kernel);
    expect(plan.ops[0]!.tokens.join(" ")).toBe(
      "route del unicast 10.99.0.0/16 table 254 metric 0 proto 3 via 10.1.0.1 dev eth0",
    );
    expect(plan.ops[0]!.undo!.join(" ")).toBe(
      "route add unicast 10.99.0.0/16 via 10.1.0.1 dev eth0 table 254 metric 0 proto 3 scope 0",
    );
  });

  it("flushgateway: every default route on the interface goes, gateways leave the target's ips (not 0.0.0.0)", () => {
    const c = conf({ flushgateway: true });
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.deletes.map((x) => x.dst)).toEqual(["0.0.0.0/0", "::/0"]);
    const result = podResult(prev, c, plan, kernel);
    expect(result.routes).toEqual([{ dst: "10.99.0.0/16" }]);
    expect(result.ips).toEqual([
      { address: "10.1.0.5/24", interface: 2 },
      { address: "fd01::5/64", interface: 2 },
    ]);
    expect(prev.ips![0]!.gateway).toBe("10.1.0.1"); // prevResult itself untouched
  });

  it("flushgateway keeps the gateways of other interfaces' addresses", () => {
    const two: Result = {
      ...prev,
      ips: [...prev.ips!, { address: "192.168.5.2/24", gateway: "192.168.5.1", interface: 1 }],
    };
    const c = conf({ flushgateway: true });
    expect(podResult(two, c, planPod(c, two, "eth0", NETNS, kernel), kernel).ips![2]).toEqual({
      address: "192.168.5.2/24",
      gateway: "192.168.5.1",
      interface: 1,
    });
  });

  it("flushroutes: every route via a gateway on the interface (defaults included), connected routes stay", () => {
    const c = conf({ flushroutes: true, addroutes: [{ dst: "10.60.0.0/16", gw: "10.1.0.1" }] });
    const plan = planPod(c, prev, "eth0", NETNS, kernel);
    expect(plan.deletes.map((x) => x.dst)).toEqual(["0.0.0.0/0", "10.99.0.0/16", "::/0"]);
    expect(plan.ops.map((o) => o.tokens[1])).toEqual(["del", "del", "del", "add"]);
    const result = podResult(prev, c, plan, kernel);
    expect(result.routes).toEqual([{ dst: "10.60.0.0/16", gw: "10.1.0.1" }]);
    expect(result.ips).toEqual(prev.ips); // flushroutes alone keeps the gateways (route-override too)
  });

  it("a result route is kept while a route it describes stays in the kernel (another interface, another gw)", () => {
    const more = [...kernel, k("10.99.0.0/16", { gateway: "192.168.5.1", dev: "net1" })];
    const c = conf({ delroutes: [{ dst: "10.99.0.0/16" }] });
    expect(podResult(prev, c, planPod(c, prev, "eth0", NETNS, more), more).routes).toContainEqual({
      dst: "10.99.0.0/16",
    });
  });

  it("no routes left: the result has no routes key", () => {
    const c = conf({ flushroutes: true });
    expect(podResult(prev, c, planPod(c, prev, "eth0", NETNS, kernel), kernel).routes).toBeUndefined();
  });
});

describe("CHECK decisions", () => {
  const c = conf({
    addroutes: [
      { dst: "10.50.0.0/16", gw: "10.1.0.1", table: 100, priority: 5, mtu: 1400, advmss: 1300 },
      { dst: "10.51.0.0/16" },
    ],
    delroutes: [{ dst: "10.99.0.0/16" }],
  });
  const plan = planPod(c, prev, "eth0", NETNS, kernel);
  const final = podResult(prev, c, plan, kernel);
  const after = [
    ...kernel.filter((x) => x.dst !== "10.99.0.0/16"),
    k("10.50.0.0/16", {
      gateway: "10.1.0.1",
      table: 100,
      metric: 5,
      protocol: ROUTES_PROTO,
      metrics: { mtu: 1400, advmss: 1300 },
    }),
    k("10.51.0.0/16", { gateway: "10.1.0.1", protocol: ROUTES_PROTO }),
  ];

  it("passes on the state ADD leaves", () => {
    expect(podProblem(c, final, "eth0", after)).toBeUndefined();
  });

  it("an added route that is missing, or differs in any field, fails naming it", () => {
    expect(
      podProblem(
        c,
        final,
        "eth0",
        after.filter((x) => x.dst !== "10.50.0.0/16"),
      ),
    ).toBe("route 10.50.0.0/16 via 10.1.0.1 table 100 metric 5 mtu 1400 advmss 1300 (addroutes[0]) is missing on eth0");
    const wrongMtu = after.map((x) => (x.dst === "10.50.0.0/16" ? { ...x, metrics: { mtu: 1500, advmss: 1300 } } : x));
    expect(podProblem(c, final, "eth0", wrongMtu)).toMatch(/addroutes\[0\]/);
    const wrongTable = after.map((x) => (x.dst === "10.50.0.0/16" ? { ...x, table: 254 } : x));
    expect(podProblem(c, final, "eth0", wrongTable)).toMatch(/addroutes\[0\]/);
    const otherDev = after.map((x) => (x.dst === "10.51.0.0/16" ? { ...x, dev: "eth9" } : x));
    expect(podProblem(c, final, "eth0", otherDev)).toBe("route 10.51.0.0/16 (addroutes[1]) is missing on eth0");
  });

  it("a deleted route that is back fails, naming it and the key", () => {
    expect(podProblem(c, final, "eth0", [...after, k("10.99.0.0/16", { gateway: "10.1.0.1" })])).toBe(
      "route 10.99.0.0/16 via 10.1.0.1 dev eth0 proto 3 is present, but delroutes[0] (10.99.0.0/16) removes it",
    );
  });

  it("the default route does not make a deleted route look present (no ip route get)", () => {
    expect(after.some((x) => x.dst === "0.0.0.0/0")).toBe(true);
    expect(podProblem(c, final, "eth0", after)).toBeUndefined();
  });

  it("a route that a later plugin reported in the final result is not mistaken for a deleted one", () => {
    const later = { ...final, routes: [...final.routes!, { dst: "10.99.0.0/16", gw: "10.1.0.9" }] };
    expect(podProblem(c, later, "eth0", [...after, k("10.99.0.0/16", { gateway: "10.1.0.9" })])).toBeUndefined();
  });

  it("flushgateway and flushroutes: a default / gateway route not in the result fails", () => {
    const fg = conf({ flushgateway: true });
    const fgFinal = podResult(prev, fg, planPod(fg, prev, "eth0", NETNS, kernel), kernel);
    const noDefaults = kernel.filter((x) => !x.dst.endsWith("/0"));
    expect(podProblem(fg, fgFinal, "eth0", noDefaults)).toBeUndefined();
    expect(podProblem(fg, fgFinal, "eth0", kernel)).toBe(
      "default route 0.0.0.0/0 via 10.1.0.1 dev eth0 proto 3 is present, but flushgateway removes default routes",
    );
    const fr = conf({ flushroutes: true });
    const frFinal = podResult(prev, fr, planPod(fr, prev, "eth0", NETNS, kernel), kernel);
    const connectedOnly = kernel.filter((x) => x.gateway === undefined);
    expect(podProblem(fr, frFinal, "eth0", connectedOnly)).toBeUndefined();
    expect(podProblem(fr, frFinal, "eth0", [...connectedOnly, k("10.5.0.0/16", { gateway: "10.1.0.1" })])).toBe(
      "route 10.5.0.0/16 via 10.1.0.1 dev eth0 proto 3 is present, but flushroutes removes routes via a gateway",
    );
  });

  it("hostRoutes must be on the node exactly", () => {
    const h = conf({ hostRoutes: [{ dst: "10.244.2.0/24", gw: "172.31.250.2" }] });
    expect(
      hostProblem(h, [k("10.244.2.0/24", { gateway: "172.31.250.2", dev: "eth1", protocol: ROUTES_PROTO })]),
    ).toBeUndefined();
    expect(hostProblem(h, [k("10.244.2.0/24", { gateway: "172.31.250.3", dev: "eth1" })])).toBe(
      "route 10.244.2.0/24 via 172.31.250.2 (hostRoutes[0]) is missing on the node",
    );
  });
});

describe("node routes plan (hostRoutes and sync share it)", () => {
  const want = (dst: string, gw: string, o: Record<string, unknown> = {}) => ({
    route: { dst, gw, ...o },
    label: `to ${dst}`,
  });

  it("absent: add with our proto; identical (anyone's): nothing", () => {
    const p = planHost(
      [want("10.244.2.0/24", "172.31.250.2"), want("10.244.3.0/24", "172.31.250.3")],
      [k("10.244.3.0/24", { gateway: "172.31.250.3", protocol: 3 })],
      ROUTES_PROTO,
      false,
    );
    expect(p.changes.map((c) => c.kind)).toEqual(["add"]);
    expect(p.changes[0]!.op.tokens.join(" ")).toBe(
      `route add 10.244.2.0/24 via 172.31.250.2 table 254 metric 0 proto ${ROUTES_PROTO}`,
    );
    expect(p.unchanged.map((u) => u.route.dst)).toEqual(["10.244.3.0/24"]);
    expect(p.conflicts).toEqual([]);
  });

  it("ours but different: replaced in place (same slot), undo puts the old one back", () => {
    const old = k("10.244.2.0/24", { gateway: "172.31.250.9", protocol: ROUTES_PROTO, dev: "eth1" });
    const p = planHost([want("10.244.2.0/24", "172.31.250.2")], [old], ROUTES_PROTO, false);
    expect(p.changes.map((c) => c.kind)).toEqual(["replace"]);
    expect(p.changes[0]!.op.tokens.join(" ")).toBe(
      `route replace 10.244.2.0/24 via 172.31.250.2 table 254 metric 0 proto ${ROUTES_PROTO}`,
    );
    expect(p.changes[0]!.op.undo!.join(" ")).toBe(
      `route replace unicast 10.244.2.0/24 via 172.31.250.9 dev eth1 table 254 metric 0 proto ${ROUTES_PROTO} scope 0`,
    );
  });

  it("ours in another slot (metric): deleted, and the new one added", () => {
    const p = planHost(
      [want("10.244.2.0/24", "172.31.250.2")],
      [k("10.244.2.0/24", { gateway: "172.31.250.2", protocol: ROUTES_PROTO, metric: 7 })],
      ROUTES_PROTO,
      false,
    );
    expect(p.changes.map((c) => c.kind)).toEqual(["delete", "add"]);
  });

  it("not ours and different: a conflict, never touched", () => {
    const foreign = k("10.244.2.0/24", { gateway: "172.31.250.9", protocol: 3 });
    const p = planHost([want("10.244.2.0/24", "172.31.250.2")], [foreign], ROUTES_PROTO, true);
    expect(p.changes).toEqual([]);
    expect(p.conflicts).toEqual([{ want: want("10.244.2.0/24", "172.31.250.2"), existing: foreign }]);
  });

  it("every field of a wanted route counts for 'identical'", () => {
    const have = k("10.244.2.0/24", {
      gateway: "172.31.250.2",
      protocol: ROUTES_PROTO,
      table: 100,
      metric: 5,
      metrics: { mtu: 1400 },
    });
    expect(
      planHost(
        [want("10.244.2.0/24", "172.31.250.2", { table: 100, priority: 5, mtu: 1400 })],
        [have],
        ROUTES_PROTO,
        false,
      ).changes,
    ).toEqual([]);
    expect(
      planHost(
        [want("10.244.2.0/24", "172.31.250.2", { table: 100, priority: 5, mtu: 1300 })],
        [have],
        ROUTES_PROTO,
        false,
      ).changes.map((c) => c.kind),
    ).toEqual(["replace"]);
    expect(
      planHost(
        [want("10.244.2.0/24", "172.31.250.2", { table: 100, priority: 5, dev: "eth2" })],
        [have],
        ROUTES_PROTO,
        false,
      ).changes.map((c) => c.kind),
    ).toEqual(["replace"]);
  });

  it("prune deletes ours in main that nobody wants; leaves others' routes and ours in other tables", () => {
    const stale = k("10.244.9.0/24", { gateway: "172.31.250.9", protocol: ROUTES_PROTO });
    const p = planHost(
      [],
      [
        stale,
        k("10.244.8.0/24", { gateway: "172.31.250.8" }),
        k("10.244.7.0/24", { gateway: "172.31.250.7", protocol: ROUTES_PROTO, table: 100 }),
      ],
      ROUTES_PROTO,
      true,
      "gone",
    );
    expect(p.changes).toMatchObject([{ kind: "delete", old: stale, why: "gone" }]);
    expect(planHost([], [stale], ROUTES_PROTO, false).changes).toEqual([]);
  });
});
