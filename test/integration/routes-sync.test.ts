// `routes sync` (node mode) on three nodes joined by an underlay, only inside namespaces of this run:
//
//   underlay: bridge br0 ── veth ── nodeN eth1 172.31.250.N/24 fd31:250::N/64   (N = 1, 2, 3; forwarding on)
//   nodeN: cni0 10.244.N.1/24 fd44:N::1/64 ── veth ── podN eth0 10.244.N.2/24 fd44:N::2/64 (default via cni0)
//
// Pods on different nodes reach each other only through the routes that sync installs on the nodes.
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIST_BIN, Sandbox, requireBuilt } from "./helpers.js";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const SYNC_PROTO = "208";
const sb = new Sandbox();
const nodes: Array<{ name: string; path: string }> = [];
const pods: Array<{ name: string; path: string }> = [];
let dir = "";

function run(nsName: string, cmd: string, args: string[], input?: string) {
  return spawnSync("ip", ["netns", "exec", nsName, cmd, ...args], { encoding: "utf8", input, timeout: 30_000 });
}

function ip(nsName: string, ...args: string[]): string {
  const r = run(nsName, "ip", args);
  if (r.status !== 0) throw new Error(`[${nsName}] ip ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

interface Row {
  dst: string;
  gateway?: string;
  protocol?: string;
}

function routes(nsName: string): Row[] {
  return [4, 6].flatMap(
    (f) => JSON.parse(ip(nsName, "-json", "-d", `-${f}`, "route", "show", "table", "all")) as Row[],
  );
}

function allTables(): Row[][] {
  return nodes.map((n) => routes(n.name));
}

/** `routes sync ARGS` in node i (1-based), the executable by its plugin name, with a clean environment. */
function sync(i: number, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    "ip",
    ["netns", "exec", nodes[i - 1]!.name, "env", "-i", `PATH=${PATH}`, join(DIST_BIN, "routes"), "sync", ...args],
    { encoding: "utf8", input, timeout: 30_000 },
  );
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

function ping(from: number, to: string): boolean {
  return run(pods[from - 1]!.name, "ping", [to.includes(":") ? "-6" : "-4", "-c1", "-W1", to]).status === 0;
}

/** The NodeList as `kubectl get nodes -o json` prints it (kind List), for nodes given as [N, ip4?, ip6?]. */
function nodeList(entries: Array<{ n: number; ip4?: string; ip6?: string; podCIDRs?: string[] }>): string {
  const items = entries.map(
    ({ n, ip4 = `172.31.250.${n}`, ip6 = `fd31:250::${n}`, podCIDRs = [`10.244.${n}.0/24`, `fd44:${n}::/64`] }) => ({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `node${n}`, labels: { "kubernetes.io/os": "linux" } },
      spec: { podCIDR: podCIDRs[0], podCIDRs },
      status: {
        addresses: [
          { type: "InternalIP", address: ip4 },
          { type: "InternalIP", address: ip6 },
          { type: "Hostname", address: `node${n}` },
        ],
      },
    }),
  );
  return JSON.stringify({ apiVersion: "v1", kind: "List", items, metadata: { resourceVersion: "" } }, null, 2);
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const ALL = [{ n: 1 }, { n: 2 }, { n: 3 }];

/** No IPv6 DAD in a namespace: link-local addresses (and their local routes) then appear at once instead of
 * seconds later, in the middle of a before/after comparison or a first ping. */
function quiet(ns: { name: string; path: string }): { name: string; path: string } {
  for (const key of ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]) {
    const r = run(ns.name, "sysctl", ["-qw", key]);
    if (r.status !== 0) throw new Error(`sysctl ${key}: ${r.stderr}`);
  }
  return ns;
}

beforeAll(() => {
  requireBuilt();
  dir = sb.tmpdir("nodes");
  const ul = quiet(sb.netns("underlay"));
  ip(ul.name, "link", "add", "br0", "type", "bridge");
  ip(ul.name, "link", "set", "br0", "up");
  for (const n of [1, 2, 3]) {
    const node = quiet(sb.netns(`node${n}`));
    const pod = quiet(sb.netns(`pod${n}`));
    nodes.push(node);
    pods.push(pod);
    ip(node.name, "link", "add", "eth1", "type", "veth", "peer", "name", `ul${n}`, "netns", ul.name);
    ip(ul.name, "link", "set", `ul${n}`, "master", "br0", "up");
    ip(node.name, "addr", "add", `172.31.250.${n}/24`, "dev", "eth1");
    ip(node.name, "addr", "add", `fd31:250::${n}/64`, "dev", "eth1", "nodad");
    ip(node.name, "link", "set", "eth1", "up");
    ip(node.name, "link", "add", "cni0", "type", "bridge");
    ip(node.name, "addr", "add", `10.244.${n}.1/24`, "dev", "cni0");
    ip(node.name, "addr", "add", `fd44:${n}::1/64`, "dev", "cni0", "nodad");
    ip(node.name, "link", "set", "cni0", "up");
    ip(node.name, "link", "add", "vethp", "type", "veth", "peer", "name", "eth0", "netns", pod.name);
    ip(node.name, "link", "set", "vethp", "master", "cni0", "up");
    ip(pod.name, "addr", "add", `10.244.${n}.2/24`, "dev", "eth0");
    ip(pod.name, "addr", "add", `fd44:${n}::2/64`, "dev", "eth0", "nodad");
    ip(pod.name, "link", "set", "eth0", "up");
    ip(pod.name, "route", "add", "default", "via", `10.244.${n}.1`);
    ip(pod.name, "-6", "route", "add", "default", "via", `fd44:${n}::1`);
    for (const key of ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]) {
      const r = run(node.name, "sysctl", ["-qw", key]);
      if (r.status !== 0) throw new Error(`sysctl ${key}: ${r.stderr}`);
    }
  }
});
afterAll(() => sb.cleanup());

describe("routes sync on three nodes", () => {
  it("before any sync, pods on different nodes cannot reach each other", () => {
    expect(ping(1, "10.244.1.1")).toBe(true);
    expect(ping(1, "10.244.2.2")).toBe(false);
  });

  it("--dry-run prints the plan and changes nothing", () => {
    const f = file("all.json", nodeList(ALL));
    const before = allTables();
    const r = sync(1, ["--nodes", f, "--node", "node1", "--dry-run"]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([
      "add 10.244.2.0/24 via 172.31.250.2 (node node2)",
      "add fd44:2::/64 via fd31:250::2 (node node2)",
      "add 10.244.3.0/24 via 172.31.250.3 (node node3)",
      "add fd44:3::/64 via fd31:250::3 (node node3)",
      "dry run: 4 change(s) planned, 0 route(s) already in place; nothing changed",
    ]);
    expect(allTables()).toEqual(before);
  });

  it("a sync on each node: routes with the sync proto, and every pod reaches every other (IPv4 and IPv6)", () => {
    const f = file("all.json", nodeList(ALL));
    for (const n of [1, 2, 3]) {
      const r = sync(n, ["--nodes", f, "--node", `node${n}`]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("4 change(s) applied, 0 route(s) already in place");
    }
    expect(
      routes(nodes[0]!.name)
        .filter((r) => r.protocol === SYNC_PROTO)
        .map((r) => `${r.dst} via ${r.gateway}`),
    ).toEqual([
      "10.244.2.0/24 via 172.31.250.2",
      "10.244.3.0/24 via 172.31.250.3",
      "fd44:2::/64 via fd31:250::2",
      "fd44:3::/64 via fd31:250::3",
    ]);
    for (const [from, to] of [
      [1, 2],
      [1, 3],
      [2, 3],
      [3, 1],
    ] as const) {
      expect(ping(from, `10.244.${to}.2`), `pod${from} -> pod${to}`).toBe(true);
      expect(ping(from, `fd44:${to}::2`), `pod${from} -> pod${to} (IPv6)`).toBe(true);
    }
  });

  it("a second sync changes nothing", () => {
    const f = file("all.json", nodeList(ALL));
    const before = allTables();
    const r = sync(2, ["--nodes", f, "--node", "node2"]);
    expect(r).toMatchObject({ status: 0, stdout: "in sync: 4 route(s) in place, nothing to change\n" });
    expect(allTables()).toEqual(before);
  });

  it("a node's new InternalIP: the route of ours is replaced", () => {
    ip(nodes[1]!.name, "addr", "add", "172.31.250.12/24", "dev", "eth1");
    const f = file("moved.json", nodeList([{ n: 1 }, { n: 2, ip4: "172.31.250.12" }, { n: 3 }]));
    const r = sync(1, ["--nodes", f, "--node", "node1"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      "replace 10.244.2.0/24 via 172.31.250.12 (node node2; was 10.244.2.0/24 via 172.31.250.2 dev eth1)",
    );
    expect(routes(nodes[0]!.name).find((x) => x.dst === "10.244.2.0/24")).toMatchObject({
      gateway: "172.31.250.12",
      protocol: SYNC_PROTO,
    });
    expect(ping(1, "10.244.2.2")).toBe(true);
    expect(sync(1, ["--nodes", file("all.json", nodeList(ALL)), "--node", "node1"]).status).toBe(0);
  });

  it("a node removed from the file loses its routes on the next sync; a route that is not ours survives", () => {
    ip(nodes[0]!.name, "route", "add", "10.250.0.0/16", "via", "172.31.250.3");
    const f = file("two.json", nodeList([{ n: 1 }, { n: 2 }]));
    const r = sync(1, ["--nodes", f, "--node", "node1"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([
      "delete 10.244.3.0/24 via 172.31.250.3 dev eth1 (no node in the list has this podCIDR any more)",
      "delete fd44:3::/64 via fd31:250::3 dev eth1 (no node in the list has this podCIDR any more)",
      "2 change(s) applied, 2 route(s) already in place",
    ]);
    const table = routes(nodes[0]!.name);
    expect(table.find((x) => x.dst === "10.244.3.0/24")).toBeUndefined();
    expect(table.find((x) => x.dst === "10.250.0.0/16")).toMatchObject({ gateway: "172.31.250.3", protocol: "boot" });
    expect(ping(1, "10.244.3.2")).toBe(false);
    expect(ping(1, "10.244.2.2")).toBe(true);
    expect(sync(1, ["--nodes", file("all.json", nodeList(ALL)), "--node", "node1"]).status).toBe(0);
    expect(ping(1, "10.244.3.2")).toBe(true);
  });

  it("a route to a peer's podCIDR that is not ours is reported and left alone (exit 1); the rest is applied", () => {
    ip(nodes[2]!.name, "route", "del", "10.244.1.0/24");
    ip(nodes[2]!.name, "route", "add", "10.244.1.0/24", "via", "172.31.250.2");
    ip(nodes[2]!.name, "route", "del", "10.244.2.0/24");
    const r = sync(3, ["--nodes", file("all.json", nodeList(ALL)), "--node", "node3"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "conflict 10.244.1.0/24 via 172.31.250.1 (node node1): 10.244.1.0/24 via 172.31.250.2 dev eth1 proto 3 is in the way and was not installed by routes sync; left alone",
    );
    expect(r.stdout).toContain("add 10.244.2.0/24 via 172.31.250.2 (node node2)");
    const table = routes(nodes[2]!.name);
    expect(table.find((x) => x.dst === "10.244.1.0/24")).toMatchObject({ gateway: "172.31.250.2", protocol: "boot" });
    expect(table.find((x) => x.dst === "10.244.2.0/24")).toMatchObject({ protocol: SYNC_PROTO });
    ip(nodes[2]!.name, "route", "del", "10.244.1.0/24");
    expect(sync(3, ["--nodes", file("all.json", nodeList(ALL)), "--node", "node3"]).status).toBe(0);
  });

  it("a node without podCIDR is skipped (exit 0); a peer off the connected networks is reported (exit 1), no route to it", () => {
    const text = JSON.parse(nodeList([...ALL, { n: 5, ip4: "192.168.50.5", ip6: "fd31:999::5" }])) as {
      items: Array<Record<string, any>>;
    };
    text.items.push({
      kind: "Node",
      metadata: { name: "fresh" },
      spec: {},
      status: { addresses: [{ type: "InternalIP", address: "172.31.250.9" }] },
    });
    const before = allTables();
    const r = sync(1, ["--nodes", file("odd.json", JSON.stringify(text)), "--node", "node1"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("skip node fresh: no spec.podCIDR");
    expect(r.stderr).toContain(
      "skip node node5: InternalIP 192.168.50.5 is not on a directly connected network of this node, so 10.244.5.0/24 via 192.168.50.5 would not work",
    );
    expect(r.stderr).toContain("skip node node5: InternalIP fd31:999::5 is not on a directly connected network");
    expect(allTables()).toEqual(before);
    const fresh = JSON.parse(nodeList(ALL)) as { items: unknown[] };
    fresh.items.push(text.items[text.items.length - 1]);
    expect(sync(1, ["--nodes", file("fresh.json", JSON.stringify(fresh)), "--node", "node1"])).toMatchObject({
      status: 0,
    });
  });

  it("the node list on stdin (--nodes -)", () => {
    const r = sync(2, ["--nodes", "-", "--node", "node2"], nodeList(ALL));
    expect(r).toMatchObject({ status: 0, stdout: "in sync: 4 route(s) in place, nothing to change\n" });
  });
});

describe("routes sync: bad input is exit 2 with a message, nothing changed", () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ["not JSON", () => ["--nodes", file("bad1.json", "<html>"), "--node", "node1"], /is not JSON/],
    [
      "no items",
      () => ["--nodes", file("bad2.json", JSON.stringify({ kind: "List", items: [] })), "--node", "node1"],
      /lists no nodes/,
    ],
    [
      "wrong kind",
      () => [
        "--nodes",
        file("bad3.json", JSON.stringify({ kind: "PodList", items: [{ kind: "Pod" }] })),
        "--node",
        "node1",
      ],
      /is a "PodList", not a NodeList/,
    ],
    [
      "a missing file",
      () => ["--nodes", join(dir, "nope.json"), "--node", "node1"],
      /cannot read .*nope\.json: ENOENT/,
    ],
    [
      "--node not in the list",
      () => ["--nodes", file("all.json", nodeList(ALL)), "--node", "node7"],
      /node "node7" is not in the node list/,
    ],
    ["no --node", () => ["--nodes", file("all.json", nodeList(ALL))], /--node NAME is required/],
    [
      "an unknown option",
      () => ["--nodes", file("all.json", nodeList(ALL)), "--node", "node1", "--yes"],
      /unknown argument "--yes"/,
    ],
  ];
  for (const [what, argv, msg] of cases) {
    it(what, () => {
      ip(nodes[0]!.name, "route", "del", "10.244.2.0/24"); // something sync would change, if it ran
      const before = allTables();
      const r = sync(1, argv());
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stdout).toBe("");
      expect(allTables()).toEqual(before);
      expect(sync(1, ["--nodes", file("all.json", nodeList(ALL)), "--node", "node1"]).status).toBe(0);
    });
  }
});

describe("routes sync --interval", () => {
  it("re-reads the file each round and stops cleanly on SIGTERM", async () => {
    const f = file("loop.json", nodeList([{ n: 1 }, { n: 2 }]));
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        nodes[0]!.name,
        "env",
        "-i",
        `PATH=${PATH}`,
        join(DIST_BIN, "routes"),
        "sync",
        "--nodes",
        f,
        "--node",
        "node1",
        "--interval",
        "1",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const until = async (cond: () => boolean, ms = 8000) => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      return cond();
    };
    const has = (dst: string) => routes(nodes[0]!.name).some((x) => x.dst === dst);
    expect(await until(() => !has("10.244.3.0/24")), err).toBe(true);
    writeFileSync(f, nodeList(ALL));
    expect(await until(() => has("10.244.3.0/24")), err).toBe(true);
    child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 5000))]);
    expect(code).toBe(0);
    expect(err).toContain("routes sync: stopped");
    expect(out).toContain("delete 10.244.3.0/24 via 172.31.250.3 dev eth1");
    expect(out).toContain("add 10.244.3.0/24 via 172.31.250.3 (node node3)");
  });
});
