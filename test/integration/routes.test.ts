// The routes plugin chained after bridge (+ host-local), run like a runtime runs a conflist, only inside namespaces
// of this run:
//
//   node namespace: cni0 10.71.0.1/24 fd71::1/64 (bridge, isGateway), the plugins run here (ip netns exec)
//   pod namespaces: eth0 from bridge; IPAM routes 0.0.0.0/0, ::/0, 10.99.0.0/16 (via the gateway)
//
// ADD bridge, ADD routes with prevResult = bridge's result, CHECK both with the final result, DEL in reverse.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, installInto, requireBuilt } from "./helpers.js";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const PROTO = 207;
const sb = new Sandbox();
let bin = "";
let dataDir = "";
let node = { name: "", path: "" };
let seq = 0;

interface Ns {
  name: string;
  path: string;
}
type Conf = Record<string, unknown>;
interface Call {
  status: number | null;
  out: Record<string, any> | undefined;
  stdout: string;
  stderr: string;
}

/** One plugin run inside the node namespace with a clean environment, config on stdin. */
function cni(
  plugin: string,
  cmd: string,
  conf: Conf,
  pod: Ns | undefined,
  o: { ifname?: string; cid?: string } = {},
): Call {
  const env = [
    `PATH=${PATH}`,
    `CNI_COMMAND=${cmd}`,
    `CNI_CONTAINERID=${o.cid ?? (pod ? `c-${pod.name}` : "none")}`,
    `CNI_NETNS=${pod?.path ?? ""}`,
    `CNI_IFNAME=${o.ifname ?? "eth0"}`,
    `CNI_PATH=${bin}`,
  ];
  const r = spawnSync("ip", ["netns", "exec", node.name, "env", "-i", ...env, join(bin, plugin)], {
    input: JSON.stringify(conf),
    encoding: "utf8",
    timeout: 60_000,
  });
  const stdout = r.stdout ?? "";
  return {
    status: r.status,
    out: stdout.trim() ? (JSON.parse(stdout) as Record<string, any>) : undefined,
    stdout,
    stderr: r.stderr ?? "",
  };
}

function ok(c: Call, what: string): Record<string, any> | undefined {
  if (c.status !== 0) throw new Error(`${what} failed (${c.status}): ${c.stdout} ${c.stderr}`);
  return c.out;
}

function ip(nsName: string, ...args: string[]): string {
  const r = spawnSync("ip", ["netns", "exec", nsName, "ip", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

interface Row {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  metrics?: Array<Record<string, number>>;
}

/** `ip -json -d route show table all`, both families. */
function routes(nsName: string): Row[] {
  return [4, 6].flatMap(
    (f) => JSON.parse(ip(nsName, "-json", "-d", `-${f}`, "route", "show", "table", "all")) as Row[],
  );
}

/** Both namespaces' full route tables, for "nothing changed" comparisons. */
function snapshot(pod: Ns): { pod: Row[]; node: Row[] } {
  return { pod: routes(pod.name), node: routes(node.name) };
}

function find(rows: Row[], dst: string, o: Partial<Row> = {}): Row | undefined {
  return rows.find(
    (r) => r.dst === dst && Object.entries(o).every(([k, v]) => (r as unknown as Record<string, unknown>)[k] === v),
  );
}

function bridgeConf(version: string): Conf {
  return {
    cniVersion: version,
    name: "rnet",
    type: "bridge",
    bridge: "cni0",
    isGateway: true,
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: "10.71.0.0/24" }], [{ subnet: "fd71::/64" }]],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }, { dst: "10.99.0.0/16" }],
    },
  };
}

function routesConf(version: string, keys: Conf, prevResult?: unknown): Conf {
  return {
    cniVersion: version,
    name: "rnet",
    type: "routes",
    ...keys,
    ...(prevResult === undefined ? {} : { prevResult }),
  };
}

interface Chain {
  pod: Ns;
  version: string;
  bridge: Conf;
  keys: Conf;
  /** bridge's ADD result. */
  first: Record<string, any>;
  /** The chain's final result (routes' ADD output). */
  final: Record<string, any>;
}

/** A fresh pod, ADD bridge; the routes ADD is left to the caller when `addRoutes` is false. */
function addBridge(version: string): { pod: Ns; bridge: Conf; first: Record<string, any> } {
  const pod = quiet(sb.netns(`pod${++seq}`));
  const bridge = bridgeConf(version);
  const first = ok(cni("bridge", "ADD", bridge, pod), "bridge ADD")!;
  return { pod, bridge, first };
}

function chain(version: string, keys: Conf): Chain {
  const { pod, bridge, first } = addBridge(version);
  const final = ok(cni("routes", "ADD", routesConf(version, keys, first), pod), "routes ADD")!;
  return { pod, version, bridge, keys, first, final };
}

function check(c: Chain, plugin: "bridge" | "routes", keys: Conf = c.keys): Call {
  const conf = plugin === "bridge" ? { ...c.bridge, prevResult: c.final } : routesConf(c.version, keys, c.final);
  return cni(plugin, "CHECK", conf, c.pod);
}

/** DEL in reverse order, as a runtime does, with the final result as prevResult. */
function del(c: Chain): void {
  ok(cni("routes", "DEL", routesConf(c.version, c.keys, c.final), c.pod), "routes DEL");
  ok(cni("bridge", "DEL", { ...c.bridge, prevResult: c.final }, c.pod), "bridge DEL");
}

beforeAll(() => {
  requireBuilt();
  bin = installInto(join(sb.tmpdir("bin"), "bin"));
  dataDir = sb.tmpdir("data");
  node = quiet(sb.netns("node"));
});

/** No IPv6 DAD in a namespace: a new veth's link-local address (and its local route) appears at once, not a second
 * later in the middle of a before/after comparison. */
function quiet(ns: Ns): Ns {
  for (const key of ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]) {
    const r = spawnSync("ip", ["netns", "exec", ns.name, "sysctl", "-qw", key], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`sysctl ${key}: ${r.stderr}`);
  }
  return ns;
}
afterAll(() => sb.cleanup());

const EVERY_FIELD: Conf = {
  addroutes: [
    { dst: "10.50.0.0/16", gw: "10.71.0.1", table: 100, priority: 5, mtu: 1400, advmss: 1300 },
    { dst: "10.51.0.0/16", scope: 253 },
    { dst: "10.52.0.0/16", priority: 7, scope: 200 },
    { dst: "fd50::/64", gw: "fd71::1", table: 100, priority: 9, mtu: 1380, advmss: 1280 },
    { dst: "fd51::/64" },
  ],
  delroutes: [{ dst: "10.99.0.0/16" }],
  hostRoutes: [{ dst: "10.245.0.0/16", gw: "10.71.0.200", mtu: 1450 }],
};

describe.each(["0.4.0", "1.0.0", "1.1.0"])("bridge + routes chain at %s", (version) => {
  let c: Chain;
  beforeAll(() => {
    c = chain(version, EVERY_FIELD);
  });

  it("adds every route with every field, as ip -json -d shows it", () => {
    const pod = routes(c.pod.name);
    expect(find(pod, "10.50.0.0/16")).toMatchObject({
      gateway: "10.71.0.1",
      dev: "eth0",
      table: "100",
      metric: 5,
      protocol: String(PROTO),
      scope: "global",
      metrics: [{ mtu: 1400, advmss: 1300 }],
    });
    expect(find(pod, "10.51.0.0/16")).toMatchObject({ dev: "eth0", table: "main", scope: "link" });
    expect(find(pod, "10.51.0.0/16")!.gateway).toBeUndefined();
    // No gw: prevResult's gateway of the family (the spec's "default gateway ... as determined by the plugin").
    expect(find(pod, "10.52.0.0/16")).toMatchObject({ gateway: "10.71.0.1", dev: "eth0", metric: 7, scope: "site" });
    expect(find(pod, "fd50::/64")).toMatchObject({
      gateway: "fd71::1",
      dev: "eth0",
      table: "100",
      metric: 9,
      metrics: [{ mtu: 1380, advmss: 1280 }],
    });
    expect(find(pod, "fd51::/64")).toMatchObject({ gateway: "fd71::1", dev: "eth0", table: "main", metric: 1024 });
  });

  it("deletes exactly the delroutes, and the node gets hostRoutes with its proto", () => {
    const pod = routes(c.pod.name);
    expect(find(pod, "10.99.0.0/16")).toBeUndefined();
    expect(find(pod, "default", { gateway: "10.71.0.1" })).toBeDefined();
    expect(find(routes(node.name), "10.245.0.0/16")).toMatchObject({
      gateway: "10.71.0.200",
      dev: "cni0",
      protocol: String(PROTO),
      metrics: [{ mtu: 1450 }],
    });
  });

  it("outputs prevResult with its routes as the pod has them, in the config's version", () => {
    expect(c.final.cniVersion).toBe(version);
    expect(c.final.interfaces).toEqual(c.first.interfaces);
    expect(c.final.ips).toEqual(c.first.ips);
    expect(c.final.routes).toEqual([
      { dst: "0.0.0.0/0" },
      { dst: "::/0" },
      { advmss: 1300, dst: "10.50.0.0/16", gw: "10.71.0.1", mtu: 1400, priority: 5, table: 100 },
      { dst: "10.51.0.0/16", scope: 253 },
      { dst: "10.52.0.0/16", priority: 7, scope: 200 },
      { advmss: 1280, dst: "fd50::/64", gw: "fd71::1", mtu: 1380, priority: 9, table: 100 },
      { dst: "fd51::/64" },
    ]);
  });

  it("CHECK of both plugins passes with the final result", () => {
    expect(check(c, "bridge")).toMatchObject({ status: 0, stdout: "" });
    expect(check(c, "routes")).toMatchObject({ status: 0, stdout: "" });
  });

  it("DEL in reverse succeeds; the node's hostRoutes stay (shared by every pod of the node)", () => {
    del(c);
    expect(find(routes(node.name), "10.245.0.0/16")).toBeDefined();
    expect(cni("routes", "DEL", routesConf(version, EVERY_FIELD, c.final), c.pod).status).toBe(0); // again: still fine
  });
});

describe("keys", () => {
  it("flushgateway: default routes of both families go; the result's ips lose their gateway; CHECK passes", () => {
    const c = chain("1.1.0", { flushgateway: true });
    const pod = routes(c.pod.name);
    expect(pod.filter((r) => r.dst === "default")).toEqual([]);
    expect(find(pod, "10.99.0.0/16")).toBeDefined();
    expect(c.final.routes).toEqual([{ dst: "10.99.0.0/16" }]);
    expect(c.final.ips.map((i: Record<string, unknown>) => i.gateway)).toEqual([undefined, undefined]);
    expect(check(c, "bridge").status).toBe(0);
    expect(check(c, "routes").status).toBe(0);
    del(c);
  });

  it("flushroutes: every route via a gateway goes, connected routes stay, addroutes come after", () => {
    const keys = { flushroutes: true, addroutes: [{ dst: "10.60.0.0/16", gw: "10.71.0.1" }] };
    const c = chain("1.1.0", keys);
    const pod = routes(c.pod.name).filter((r) => r.dev === "eth0");
    expect(pod.filter((r) => r.gateway !== undefined).map((r) => r.dst)).toEqual(["10.60.0.0/16"]);
    expect(find(pod, "10.71.0.0/24")).toBeDefined();
    expect(find(pod, "fd71::/64")).toBeDefined();
    expect(c.final.routes).toEqual([{ dst: "10.60.0.0/16", gw: "10.71.0.1" }]);
    expect(check(c, "bridge").status).toBe(0);
    expect(check(c, "routes").status).toBe(0);
    del(c);
  });

  it("delroutes then addroutes: a route replaced by one via another gateway", () => {
    const keys = { delroutes: [{ dst: "0.0.0.0/0" }], addroutes: [{ dst: "0.0.0.0/0", gw: "10.71.0.254" }] };
    const c = chain("1.1.0", keys);
    expect(
      routes(c.pod.name).filter((r) => r.dst === "default" && !r.dst.includes(":") && r.gateway?.includes(".")),
    ).toMatchObject([{ gateway: "10.71.0.254" }]);
    expect(c.final.routes).toEqual([{ dst: "::/0" }, { dst: "10.99.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.71.0.254" }]);
    expect(check(c, "routes").status).toBe(0);
    del(c);
  });

  it("args.cni wins over the top-level keys", () => {
    const keys = {
      addroutes: [{ dst: "10.61.0.0/16" }],
      args: { cni: { addroutes: [{ dst: "10.62.0.0/16", gw: "10.71.0.1" }] } },
    };
    const c = chain("1.1.0", keys);
    const pod = routes(c.pod.name);
    expect(find(pod, "10.61.0.0/16")).toBeUndefined();
    expect(find(pod, "10.62.0.0/16")).toMatchObject({ gateway: "10.71.0.1" });
    expect(check(c, "routes").status).toBe(0);
    del(c);
  });

  it("interface: routes go on the named interface, not CNI_IFNAME", () => {
    const { pod, bridge, first } = addBridge("1.1.0");
    ip(pod.name, "link", "add", "net1", "type", "veth", "peer", "name", "net1p");
    ip(pod.name, "addr", "add", "192.168.70.2/24", "dev", "net1");
    ip(pod.name, "link", "set", "net1", "up");
    ip(pod.name, "link", "set", "net1p", "up");
    const keys = {
      interface: "net1",
      addroutes: [{ dst: "10.63.0.0/16", gw: "192.168.70.1" }, { dst: "10.64.0.0/16" }],
    };
    const final = ok(cni("routes", "ADD", routesConf("1.1.0", keys, first), pod), "routes ADD")!;
    const rows = routes(pod.name);
    expect(find(rows, "10.63.0.0/16")).toMatchObject({ gateway: "192.168.70.1", dev: "net1" });
    // The gateway in prevResult belongs to eth0: on net1 a route without gw is on-link.
    expect(find(rows, "10.64.0.0/16")).toMatchObject({ dev: "net1", scope: "link" });
    const c: Chain = { pod, version: "1.1.0", bridge, keys, first, final };
    expect(check(c, "routes").status).toBe(0);
    const missing = cni(
      "routes",
      "ADD",
      routesConf("1.1.0", { interface: "net9", addroutes: [{ dst: "10.65.0.0/16" }] }, first),
      pod,
    );
    expect(missing.out).toMatchObject({ code: 7, msg: `interface net9 does not exist in ${pod.path}` });
    del(c);
  });

  it("hostRoutes: the same routes from a second pod are fine; ours are replaced when changed; someone else's are a 102", () => {
    const keys = { hostRoutes: [{ dst: "10.246.0.0/16", gw: "10.71.0.201" }] };
    const a = chain("1.1.0", keys);
    const b = chain("1.1.0", keys);
    expect(routes(node.name).filter((r) => r.dst === "10.246.0.0/16")).toHaveLength(1);
    const moved = chain("1.1.0", { hostRoutes: [{ dst: "10.246.0.0/16", gw: "10.71.0.202" }] });
    expect(routes(node.name).filter((r) => r.dst === "10.246.0.0/16")).toMatchObject([
      { gateway: "10.71.0.202", protocol: String(PROTO) },
    ]);

    ip(node.name, "route", "add", "10.247.0.0/16", "via", "10.71.0.203");
    const { pod, first } = addBridge("1.1.0");
    const before = snapshot(pod);
    const r = cni(
      "routes",
      "ADD",
      routesConf(
        "1.1.0",
        { delroutes: [{ dst: "10.99.0.0/16" }], hostRoutes: [{ dst: "10.247.0.0/16", gw: "10.71.0.204" }] },
        first,
      ),
      pod,
    );
    expect(r.out).toMatchObject({ code: 102 });
    expect(r.out!.msg).toContain("hostRoutes[0] 10.247.0.0/16 via 10.71.0.204");
    expect(snapshot(pod)).toEqual(before);
    for (const c of [a, b, moved]) del(c);
  });

  it("skipcheck: CHECK succeeds whatever the pod looks like", () => {
    const keys = { skipcheck: true, addroutes: [{ dst: "10.66.0.0/16" }] };
    const c = chain("1.1.0", keys);
    ip(c.pod.name, "route", "del", "10.66.0.0/16");
    expect(check(c, "routes")).toMatchObject({ status: 0, stdout: "" });
    del(c);
  });
});

describe("CHECK fails for the right reasons", () => {
  const keys = {
    addroutes: [{ dst: "10.67.0.0/16", gw: "10.71.0.1", table: 100 }],
    delroutes: [{ dst: "10.99.0.0/16" }],
  };

  it("an added route deleted by hand: code 103 naming it", () => {
    const c = chain("1.1.0", keys);
    ip(c.pod.name, "route", "del", "10.67.0.0/16", "table", "100");
    expect(check(c, "routes").out).toMatchObject({
      code: 103,
      msg: "route 10.67.0.0/16 via 10.71.0.1 table 100 (addroutes[0]) is missing on eth0",
    });
    del(c);
  });

  it("an added route changed by hand (other gateway): 103", () => {
    const c = chain("1.1.0", keys);
    ip(c.pod.name, "route", "replace", "10.67.0.0/16", "via", "10.71.0.9", "table", "100");
    expect(check(c, "routes").out).toMatchObject({ code: 103 });
    del(c);
  });

  it("a deleted route re-added by hand: 103 naming it and the key", () => {
    const c = chain("1.1.0", keys);
    ip(c.pod.name, "route", "add", "10.99.0.0/16", "via", "10.71.0.1");
    expect(check(c, "routes").out).toMatchObject({
      code: 103,
      msg: "route 10.99.0.0/16 via 10.71.0.1 dev eth0 proto 3 is present, but delroutes[0] (10.99.0.0/16) removes it",
    });
    del(c);
  });

  it("the default route does not fool the delroutes check", () => {
    const c = chain("1.1.0", keys);
    // A route lookup for 10.99.0.1 would answer with the default route; CHECK must not read that as "present".
    expect(ip(c.pod.name, "route", "get", "10.99.0.1")).toContain("via 10.71.0.1");
    expect(check(c, "routes").status).toBe(0);
    del(c);
  });

  it("a hostRoute removed from the node: 103", () => {
    const c = chain("1.1.0", { hostRoutes: [{ dst: "10.248.0.0/16", gw: "10.71.0.205" }] });
    ip(node.name, "route", "del", "10.248.0.0/16");
    expect(check(c, "routes").out).toMatchObject({
      code: 103,
      msg: "route 10.248.0.0/16 via 10.71.0.205 (hostRoutes[0]) is missing on the node",
    });
    del(c);
  });

  it("without prevResult: code 7", () => {
    const c = chain("1.1.0", keys);
    expect(cni("routes", "CHECK", routesConf("1.1.0", keys), c.pod).out).toMatchObject({
      code: 7,
      msg: "Required prevResult missing",
    });
    del(c);
  });
});

describe("GC and STATUS", () => {
  it("are answered (exit 0, no output) at 1.1.0", () => {
    const gc = cni("routes", "GC", { ...routesConf("1.1.0", EVERY_FIELD), "cni.dev/valid-attachments": [] }, undefined);
    expect(gc).toMatchObject({ status: 0, stdout: "" });
    expect(cni("routes", "STATUS", routesConf("1.1.0", EVERY_FIELD), undefined)).toMatchObject({
      status: 0,
      stdout: "",
    });
  });

  it("STATUS reports an invalid config (code 7), since ADD could not work", () => {
    expect(cni("routes", "STATUS", routesConf("1.1.0", { addroutes: [{ dst: "nope" }] }), undefined).out).toMatchObject(
      { code: 7 },
    );
  });
});

describe("bad input: the right code, and nothing changed in the pod or on the node", () => {
  const cases: Array<[string, Conf, number, string]> = [
    [
      "malformed route (dst not a CIDR)",
      { addroutes: [{ dst: "10.68.0.0" }] },
      7,
      'addroutes[0].dst: "10.68.0.0" is not a CIDR',
    ],
    [
      "dst not a network address",
      { delroutes: [{ dst: "10.0.0.0/8" }], addroutes: [{ dst: "10.68.1.0/16" }] },
      7,
      'addroutes[0].dst: "10.68.1.0/16" is not a network address',
    ],
    [
      "gw not an IP",
      { addroutes: [{ dst: "10.68.0.0/16", gw: "gateway" }] },
      7,
      'addroutes[0].gw: "gateway" is not an IP address',
    ],
    [
      "gw of the other family",
      { addroutes: [{ dst: "10.68.0.0/16", gw: "fd71::1" }] },
      7,
      "addroutes[0].gw fd71::1 is IPv6 but dst 10.68.0.0/16 is IPv4",
    ],
    [
      "negative priority",
      { addroutes: [{ dst: "10.68.0.0/16", priority: -1 }] },
      7,
      "addroutes[0].priority must be between 0 and 4294967295",
    ],
    [
      "unknown scope value",
      { addroutes: [{ dst: "10.68.0.0/16", scope: 42 }] },
      2,
      "addroutes[0].scope 42 is not supported",
    ],
    ["unknown route key", { addroutes: [{ dst: "10.68.0.0/16", metric: 5 }] }, 7, 'addroutes[0]: unknown key "metric"'],
    ["flag that is not a boolean", { flushroutes: "always" }, 7, 'flushroutes must be a boolean, got "always"'],
    [
      "hostRoutes from args.cni",
      { args: { cni: { hostRoutes: [{ dst: "10.0.0.0/8", gw: "10.71.0.1" }] } } },
      2,
      "args.cni.hostRoutes is not accepted",
    ],
    [
      "an added route's slot taken",
      { addroutes: [{ dst: "10.99.0.0/16", gw: "10.71.0.9" }] },
      102,
      "addroutes[0] 10.99.0.0/16 via 10.71.0.9",
    ],
    // The kernel refuses the third line: the delete and the first add before it are undone.
    [
      "a route the kernel refuses, after others",
      {
        delroutes: [{ dst: "10.99.0.0/16" }],
        addroutes: [
          { dst: "10.68.0.0/16", gw: "10.71.0.1" },
          { dst: "10.69.0.0/16", gw: "192.168.99.1" },
        ],
      },
      100,
      "ip route add 10.69.0.0/16 via 192.168.99.1 dev eth0",
    ],
    // The pod part succeeds, the node part fails: the pod part is undone.
    [
      "a node route the kernel refuses",
      {
        flushgateway: true,
        addroutes: [{ dst: "10.68.0.0/16" }],
        hostRoutes: [{ dst: "10.249.0.0/16", gw: "192.168.98.1" }],
      },
      100,
      "ip route add 10.249.0.0/16 via 192.168.98.1",
    ],
  ];
  let pod: Ns;
  let first: Record<string, any>;
  beforeAll(() => {
    ({ pod, first } = addBridge("1.1.0"));
  });

  for (const [what, keys, code, msg] of cases) {
    it(`${what}: code ${code}`, () => {
      const before = snapshot(pod);
      const r = cni("routes", "ADD", routesConf("1.1.0", keys, first), pod);
      expect(r.status).toBe(1);
      expect(r.out).toMatchObject({ cniVersion: "1.1.0", code });
      expect(r.out!.msg).toContain(msg);
      expect(snapshot(pod)).toEqual(before);
    });
  }

  it("without prevResult: code 7, nothing changed", () => {
    const before = snapshot(pod);
    expect(cni("routes", "ADD", routesConf("1.1.0", { addroutes: [{ dst: "10.68.0.0/16" }] }), pod).out).toMatchObject({
      code: 7,
      msg: "Required prevResult missing",
    });
    expect(snapshot(pod)).toEqual(before);
  });
});
