import { describe, expect, it } from "vitest";
import { parseCidr } from "../../lib/cidr.js";
import { parseSyncArgs } from "../../plugins/routes/cli.js";
import { SYNC_PROTO } from "../../plugins/routes/config.js";
import type { KernelRoute } from "../../lib/ip/routes.js";
import { InputError, parseNodeList } from "../../plugins/routes/nodelist.js";
import { describeChange, planSync, wantedRoutes, type LocalNet } from "../../plugins/routes/sync.js";

function node(
  name: string,
  podCIDRs: string[] | string | undefined,
  ips: string[],
  extra: Record<string, unknown> = {},
) {
  const spec: Record<string, unknown> = {};
  if (typeof podCIDRs === "string") spec.podCIDR = podCIDRs;
  else if (podCIDRs) {
    spec.podCIDR = podCIDRs[0];
    spec.podCIDRs = podCIDRs;
  }
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    spec,
    status: {
      addresses: [...ips.map((address) => ({ type: "InternalIP", address })), { type: "Hostname", address: name }],
      conditions: [],
    },
    ...extra,
  };
}
const list = (items: unknown[], kind = "List") =>
  JSON.stringify({ apiVersion: "v1", kind, items, metadata: { resourceVersion: "" } });

function inputError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof InputError) return e.message;
    throw e;
  }
  throw new Error("expected an InputError");
}

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
    dev: "eth1",
    ...o,
  };
}

const net = (cidr: string, ifname = "eth1"): LocalNet => ({ ifname, cidr: parseCidr(cidr)! });
const NETS = [net("172.31.250.1/24"), net("fd31:250::1/64"), net("10.244.1.1/24", "cni0")];

describe("NodeList parsing", () => {
  it("reads kubectl's List and the API's NodeList: name, podCIDRs (or podCIDR), InternalIPs", () => {
    const items = [
      node("node1", ["10.244.1.0/24", "fd44:1::/64"], ["172.31.250.1", "fd31:250::1"]),
      node("node2", "10.244.2.0/24", ["172.31.250.2"]),
      node("node3", undefined, []),
    ];
    const want = [
      { name: "node1", podCIDRs: ["10.244.1.0/24", "fd44:1::/64"], internalIPs: ["172.31.250.1", "fd31:250::1"] },
      { name: "node2", podCIDRs: ["10.244.2.0/24"], internalIPs: ["172.31.250.2"] },
      { name: "node3", podCIDRs: [], internalIPs: [] },
    ];
    expect(parseNodeList(list(items), "f")).toEqual(want);
    expect(parseNodeList(list(items, "NodeList"), "f")).toEqual(want);
  });

  it("only InternalIP addresses count (not ExternalIP, Hostname)", () => {
    const n = node("a", "10.1.0.0/24", []);
    n.status.addresses = [
      { type: "ExternalIP", address: "1.2.3.4" },
      { type: "InternalIP", address: "172.31.250.7" },
    ];
    expect(parseNodeList(list([n]), "f")[0]!.internalIPs).toEqual(["172.31.250.7"]);
  });

  const bad: Array<[string, string, string]> = [
    ["not JSON", "{nope", "f is not JSON"],
    ["empty", "", "f is not JSON"],
    ["an array", "[]", "f is not a JSON object; expected a NodeList"],
    ["a single Node", JSON.stringify(node("a", "10.1.0.0/24", [])), 'f is a "Node", not a NodeList'],
    ["a PodList", list([], "PodList"), 'f is a "PodList", not a NodeList'],
    ["no items", JSON.stringify({ kind: "List" }), 'f has no "items" array'],
    ["empty items", list([]), "f lists no nodes (items is empty)"],
    ["an item of another kind", list([{ kind: "Pod", metadata: { name: "x" } }]), 'f: items[0] is a "Pod", not a Node'],
    ["an item without a name", list([{ kind: "Node", metadata: {} }]), "f: items[0] has no metadata.name"],
    ["a node twice", list([node("a", "10.1.0.0/24", []), node("a", "10.2.0.0/24", [])]), 'f: node "a" is listed twice'],
  ];
  for (const [what, text, msg] of bad) {
    it(`${what}: an input error`, () => expect(inputError(() => parseNodeList(text, "f"))).toContain(msg));
  }
});

describe("sync plan", () => {
  const nodes = parseNodeList(
    list([
      node("node1", ["10.244.1.0/24", "fd44:1::/64"], ["172.31.250.1", "fd31:250::1"]),
      node("node2", ["10.244.2.0/24", "fd44:2::/64"], ["172.31.250.2", "fd31:250::2"]),
      node("node3", ["10.244.3.0/24"], ["172.31.250.3"]),
    ]),
    "f",
  );

  it("every other node's podCIDR via its InternalIP of the same family; not our own", () => {
    expect(wantedRoutes(nodes, "node1", NETS)).toEqual({
      wanted: [
        { route: { dst: "10.244.2.0/24", gw: "172.31.250.2" }, label: "node node2" },
        { route: { dst: "fd44:2::/64", gw: "fd31:250::2" }, label: "node node2" },
        { route: { dst: "10.244.3.0/24", gw: "172.31.250.3" }, label: "node node3" },
      ],
      skipped: [],
      problems: [],
    });
  });

  it("from an empty table: adds only, with the sync proto", () => {
    const p = planSync(nodes, "node1", [], NETS);
    expect(p.host.changes.map(describeChange)).toEqual([
      "add 10.244.2.0/24 via 172.31.250.2 (node node2)",
      "add fd44:2::/64 via fd31:250::2 (node node2)",
      "add 10.244.3.0/24 via 172.31.250.3 (node node3)",
    ]);
    expect(p.host.changes[0]!.op.tokens.join(" ")).toBe(
      `route add 10.244.2.0/24 via 172.31.250.2 table 254 metric 0 proto ${SYNC_PROTO}`,
    );
  });

  it("in sync: nothing to do", () => {
    const current = [
      k("10.244.2.0/24", { gateway: "172.31.250.2", protocol: SYNC_PROTO }),
      k("fd44:2::/64", { gateway: "fd31:250::2", protocol: SYNC_PROTO }),
      k("10.244.3.0/24", { gateway: "172.31.250.3", protocol: SYNC_PROTO }),
    ];
    const p = planSync(nodes, "node1", current, NETS);
    expect(p.host.changes).toEqual([]);
    expect(p.host.unchanged).toHaveLength(3);
  });

  it("a node's new IP: our route replaced; a node gone: our route deleted; others' routes untouched", () => {
    const current = [
      k("10.244.2.0/24", { gateway: "172.31.250.22", protocol: SYNC_PROTO }),
      k("fd44:2::/64", { gateway: "fd31:250::2", protocol: SYNC_PROTO }),
      k("10.244.3.0/24", { gateway: "172.31.250.3", protocol: SYNC_PROTO }),
      k("10.244.9.0/24", { gateway: "172.31.250.9", protocol: SYNC_PROTO }),
      k("10.244.8.0/24", { gateway: "172.31.250.8", protocol: 3 }),
      k("10.244.7.0/24", { gateway: "172.31.250.7", protocol: 207 }),
    ];
    const p = planSync(nodes, "node1", current, NETS);
    expect(p.host.changes.map(describeChange)).toEqual([
      "delete 10.244.9.0/24 via 172.31.250.9 dev eth1 (no node in the list has this podCIDR any more)",
      "replace 10.244.2.0/24 via 172.31.250.2 (node node2; was 10.244.2.0/24 via 172.31.250.22 dev eth1)",
    ]);
    expect(p.problems).toEqual([]);
  });

  it("a route to a peer's podCIDR that is not ours is a conflict: reported, left alone", () => {
    const p = planSync(nodes, "node1", [k("10.244.3.0/24", { gateway: "172.31.250.99", protocol: 4 })], NETS);
    expect(p.host.changes.map(describeChange)).toEqual([
      "add 10.244.2.0/24 via 172.31.250.2 (node node2)",
      "add fd44:2::/64 via fd31:250::2 (node node2)",
    ]);
    expect(p.problems).toEqual([
      "conflict 10.244.3.0/24 via 172.31.250.3 (node node3): 10.244.3.0/24 via 172.31.250.99 dev eth1 proto 4 is in the way and was not installed by routes sync; left alone",
    ]);
  });

  it("an identical route that someone else installed is fine", () => {
    const p = planSync(nodes, "node1", [k("10.244.3.0/24", { gateway: "172.31.250.3", protocol: 4 })], NETS);
    expect(p.host.unchanged.map((u) => u.label)).toEqual(["node node3"]);
    expect(p.problems).toEqual([]);
  });

  it("skips: no podCIDR, no InternalIP of the family (reported, not a failure)", () => {
    const n = parseNodeList(
      list([
        node("node1", "10.244.1.0/24", ["172.31.250.1"]),
        node("new", undefined, ["172.31.250.4"]),
        node("v4only", ["10.244.5.0/24", "fd44:5::/64"], ["172.31.250.5"]),
      ]),
      "f",
    );
    const p = planSync(n, "node1", [], NETS);
    expect(p.skipped).toEqual([
      "skip node new: no spec.podCIDR",
      "skip node v4only: no IPv6 InternalIP for podCIDR fd44:5::/64",
    ]);
    expect(p.problems).toEqual([]);
    expect(p.wanted.map((w) => w.route.dst)).toEqual(["10.244.5.0/24"]);
  });

  it("problems: a peer off every connected network, a bad podCIDR, a podCIDR twice, our own address", () => {
    const n = parseNodeList(
      list([
        node("node1", "10.244.1.0/24", ["172.31.250.1"]),
        node("far", "10.244.6.0/24", ["192.168.77.6"]),
        node("bad", "10.244.7.1/24", ["172.31.250.7"]),
        node("dup", "10.244.1.0/24", ["172.31.250.8"]),
        node("me2", "10.244.9.0/24", ["172.31.250.1"]),
      ]),
      "f",
    );
    const p = planSync(n, "node1", [], NETS);
    expect(p.problems).toEqual([
      "skip node far: InternalIP 192.168.77.6 is not on a directly connected network of this node, so 10.244.6.0/24 via 192.168.77.6 would not work",
      'skip node bad: podCIDR "10.244.7.1/24" is not a network CIDR',
      "skip node dup: podCIDR 10.244.1.0/24 is also node node1's",
      "skip node me2: its InternalIP 172.31.250.1 is an address of this node",
    ]);
    expect(p.wanted).toEqual([]);
  });

  it("refused per node: a name that is not a node name, an InternalIP that is not an IP, a podCIDR over ours, over a peer's, or over a network of this node", () => {
    const n = parseNodeList(
      list([
        node("node1", ["10.244.1.0/24", "fd44:1::/64"], ["172.31.250.1", "fd31:250::1"]),
        node("node2", "10.244.2.0/24", ["172.31.250.2"]),
        node("evil\nadd 10.0.0.0/8 via 1.2.3.4 (node x)", "10.244.8.0/24", ["172.31.250.8"]),
        node("junkip", "10.244.3.0/24", ["172.31.250.3 dev eth0"]),
        node("wide", "10.244.0.0/16", ["172.31.250.4"]),
        node("inner", "10.244.2.128/25", ["172.31.250.5"]),
        node("underlay", "172.31.250.128/25", ["172.31.250.6"]),
        node("v6over", "fd44:1::/48", ["fd31:250::7"]),
        node("v4only", ["10.244.9.0/24", "fd44:9::/64"], ["172.31.250.9"]),
      ]),
      "f",
    );
    const nets = [...NETS, net("fd31:250::1/64")];
    const p = planSync(n, "node1", [], nets);
    expect(p.problems).toEqual([
      'skip node "evil\\nadd 10.0.0.0/8 via 1.2.3.4 (node x)": not a valid node name',
      'skip node junkip: InternalIP "172.31.250.3 dev eth0" is not an IP address',
      "skip node wide: podCIDR 10.244.0.0/16 overlaps node node1's podCIDR 10.244.1.0/24",
      "skip node inner: podCIDR 10.244.2.128/25 overlaps node node2's podCIDR 10.244.2.0/24",
      "skip node underlay: podCIDR 172.31.250.128/25 overlaps 172.31.250.0/24 on eth1, a network of this node",
      "skip node v6over: podCIDR fd44:1::/48 overlaps node node1's podCIDR fd44:1::/64",
    ]);
    expect(p.skipped).toEqual(["skip node v4only: no IPv6 InternalIP for podCIDR fd44:9::/64"]);
    expect(p.wanted.map((w) => `${w.route.dst} via ${w.route.gw}`)).toEqual([
      "10.244.2.0/24 via 172.31.250.2",
      "10.244.9.0/24 via 172.31.250.9",
    ]);
  });

  it("a /32 address is no directly connected network", () => {
    const n = parseNodeList(
      list([node("node1", "10.244.1.0/24", ["172.31.250.1"]), node("node2", "10.244.2.0/24", ["172.31.250.2"])]),
      "f",
    );
    expect(planSync(n, "node1", [], [net("172.31.250.1/32")]).problems).toHaveLength(1);
  });

  it("--node must be in the list", () => {
    expect(inputError(() => planSync(nodes, "node9", [], NETS))).toBe(
      'node "node9" is not in the node list (--node must name this node)',
    );
  });
});

describe("sync command line", () => {
  it("parses every option, both spellings", () => {
    expect(parseSyncArgs(["--nodes", "f.json", "--node", "n1"])).toEqual({
      mode: "file",
      nodes: "f.json",
      node: "n1",
      dryRun: false,
      intervalMs: undefined,
    });
    expect(parseSyncArgs(["--nodes=-", "--node=n1", "--dry-run"])).toEqual({
      mode: "file",
      nodes: "-",
      node: "n1",
      dryRun: true,
      intervalMs: undefined,
    });
    expect(parseSyncArgs(["--nodes", "f", "--node", "n1", "--interval", "2.5"])).toEqual({
      mode: "file",
      nodes: "f",
      node: "n1",
      dryRun: false,
      intervalMs: 2500,
    });
    expect(parseSyncArgs(["--node", "n1", "--help"])).toBe("help");
  });

  const bad: Array<[string[], string]> = [
    [["--node", "n1"], "--nodes FILE|- is required"],
    [["--nodes", "f"], "--node NAME is required"],
    [["--nodes"], "--nodes needs a value"],
    [["--nodes", "f", "--node", "n", "--interval", "0"], "--interval must be a number of seconds between 1 and 86400"],
    [["--nodes", "f", "--node", "n", "--interval", "soon"], "--interval must be a number of seconds"],
    [
      ["--nodes", "-", "--node", "n", "--interval", "5"],
      "--interval re-reads the node list each time: give a file, not -",
    ],
    [["--nodes", "f", "--node", "n", "--force"], 'unknown argument "--force"'],
    [["f"], 'unknown argument "f"'],
  ];
  for (const [argv, msg] of bad) {
    it(`${argv.join(" ")}: usage error`, () => expect(inputError(() => parseSyncArgs(argv))).toContain(msg));
  }
});
