// `routes sync --kubernetes` against a stand-in API server that speaks the Node list/watch protocol
// (lab/kube-apiserver.ts), only inside namespaces of this run:
//
//   underlay: bridge br0 ── node1 eth1 172.31.250.1/24 fd31:250::1/64 (the controller runs here)
//                      ├── node2 eth1 172.31.250.2/24 fd31:250::2/64
//                      └── api   eth1 172.31.250.250/24  (the API server's socket lives in this namespace)
//
// Peers without a namespace of their own (node3, node4, ...) are addresses on the underlay's subnet: the routes
// to them are what is checked, read back from the kernel (ip -json route) after every event.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeApiServer, nodeObject } from "../../lab/kube-apiserver.js";
import { listenInNetns } from "../../lab/netns-listen.js";
import { plug, switchIn } from "../../sandbox/topology.js";
import { DIST_BIN, Sandbox, requireBuilt } from "./helpers.js";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const TOKEN = "test-token-0123";
const API_IP = "172.31.250.250";
const sb = new Sandbox();
let node1 = "";
let node2 = "";
let apiNs = { name: "", path: "" };
let dir = "";
let kubeconfig = "";
let healthFile = "";
const api = new FakeApiServer({ token: TOKEN, bookmarkMs: 500, pageSize: 2 });
let controller: ChildProcess | undefined;
let exited: Promise<number | null> | undefined;
const logs: Array<Record<string, unknown>> = [];
let rawErr = "";

function ip(ns: string, ...args: string[]): string {
  const r = spawnSync("ip", ["-n", ns, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`[${ns}] ip ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** This node's routes of routes sync, as "dst via gw", sorted. */
function ours(ns = node1): string[] {
  return [4, 6]
    .flatMap(
      (f) =>
        JSON.parse(ip(ns, "-json", `-${f}`, "route", "show", "proto", "208")) as Array<{
          dst: string;
          gateway?: string;
        }>,
    )
    .map((r) => `${r.dst} via ${r.gateway}`)
    .sort();
}

/** The subnets this node's forward chain (--forward-accept auto) accepts, both families, sorted. */
function accepted(ns = node1): string[] {
  return ["iptables", "ip6tables"]
    .flatMap((tool) =>
      spawnSync("ip", ["netns", "exec", ns, tool, "-S", "CNI-TS-FORWARD"], { encoding: "utf8" }).stdout.split("\n"),
    )
    .flatMap((l) => /^-A CNI-TS-FORWARD -s (\S+) -j ACCEPT$/.exec(l)?.slice(1) ?? [])
    .sort();
}

function allRoutes(ns = node1): string {
  return ip(ns, "-d", "route", "show", "table", "all") + ip(ns, "-6", "-d", "route", "show", "table", "all");
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}\ncontroller log:\n${rawErr.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function curl(path: string): { code: string; body: string } {
  const r = spawnSync(
    "ip",
    ["netns", "exec", node1, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", `http://127.0.0.1:9808${path}`],
    { encoding: "utf8" },
  );
  const lines = r.stdout.split("\n");
  return { code: lines.pop() ?? "", body: lines.join("\n") };
}

function metric(name: string): number {
  const line = curl("/metrics")
    .body.split("\n")
    .find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

const logged = (re: RegExp) => logs.some((l) => re.test(String(l.msg)));

function peer(n: number, o: { ip4?: string; podCIDRs?: string[] } = {}) {
  return nodeObject(`node${n}`, o.podCIDRs ?? [`10.244.${n}.0/24`, `fd44:${n}::/64`], [
    o.ip4 ?? `172.31.250.${n}`,
    `fd31:250::${n}`,
  ]);
}

beforeAll(async () => {
  requireBuilt();
  dir = sb.tmpdir("ctl");
  const ul = sb.netns("underlay");
  switchIn(ul.name, "br0");
  const attach = (ns: string, i: string, addrs: string[]) => plug(ul.name, "br0", `ul${i}`, ns, "eth1", addrs);
  node1 = sb.netns("node1").name;
  node2 = sb.netns("node2").name;
  apiNs = sb.netns("api");
  attach(node1, "1", ["172.31.250.1/24", "fd31:250::1/64"]);
  attach(node2, "2", ["172.31.250.2/24", "fd31:250::2/64"]);
  attach(apiNs.name, "a", [`${API_IP}/24`]);
  for (const n of [1, 2, 3]) api.upsert(peer(n));
  await api.start(() => listenInNetns(apiNs.path, API_IP, 6443));
  kubeconfig = join(dir, "kubeconfig");
  // YAML, as kubeadm writes it.
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- cluster:",
      `    server: http://${API_IP}:6443`,
      "  name: lab",
      "contexts:",
      "- context:",
      "    cluster: lab",
      "    user: routes",
      "  name: lab",
      "current-context: lab",
      "users:",
      "- name: routes",
      "  user:",
      `    token: ${TOKEN}`,
      "",
    ].join("\n"),
  );
  healthFile = join(dir, "healthy");
  controller = spawn(
    "ip",
    [
      "netns",
      "exec",
      node1,
      "env",
      "-i",
      `PATH=${PATH}`,
      join(DIST_BIN, "routes"),
      "sync",
      "--kubeconfig",
      kubeconfig,
      "--node",
      "node1",
      "--listen",
      "127.0.0.1:9808",
      "--health-file",
      healthFile,
      "--resync",
      "3600",
      "--request-timeout",
      "2",
      "--forward-accept",
      "auto",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  exited = new Promise((resolve) => controller!.on("exit", (code) => resolve(code)));
  let buf = "";
  controller.stderr!.on("data", (d: Buffer) => {
    rawErr += d.toString();
    buf += d.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: `NOT JSON: ${line}` });
      }
    }
  });
});

afterAll(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGKILL");
    await exited;
  }
  await api.stop();
  sb.cleanup();
});

describe("routes sync --kubernetes (a controller watching the Node API)", () => {
  it("lists (paged), then routes every other node's podCIDRs (IPv4 and IPv6), and says so: /readyz, /metrics, the health file", async () => {
    const all = [
      "10.244.2.0/24 via 172.31.250.2",
      "10.244.3.0/24 via 172.31.250.3",
      "fd44:2::/64 via fd31:250::2",
      "fd44:3::/64 via fd31:250::3",
    ];
    await until(() => ours().length === 4, "the first sync");
    expect(ours()).toEqual(all);
    await until(() => curl("/readyz").code === "200", "readiness");
    expect(api.requests.filter((r) => r.startsWith("GET /api/v1/nodes?limit=")).length).toBeGreaterThanOrEqual(2);
    expect(metric('cni_ts_routes_sync_routes_applied_total{change="add"}')).toBe(4);
    expect(metric("cni_ts_routes_sync_routes")).toBe(4);
    expect(metric("cni_ts_routes_sync_nodes")).toBe(3);
    expect(metric("cni_ts_routes_sync_last_success_timestamp_seconds")).toBeGreaterThan(1.6e9);
    // --forward-accept auto: every node's podCIDRs, this node's included, one restore per family.
    expect(accepted()).toEqual([
      "10.244.1.0/24",
      "10.244.2.0/24",
      "10.244.3.0/24",
      "fd44:1::/64",
      "fd44:2::/64",
      "fd44:3::/64",
    ]);
    expect(metric("cni_ts_routes_sync_forward_changes_total")).toBe(2);
    expect(metric("cni_ts_routes_sync_forward_errors_total")).toBe(0);
    expect(curl("/healthz").code).toBe("200");
    expect(existsSync(healthFile)).toBe(true);
    expect(logs.every((l) => typeof l.time === "string" && typeof l.level === "string")).toBe(true);
    await until(() => api.watchRequests.length > 0, "the first watch");
    expect(api.watchRequests[0]).toMatchObject({ bookmarks: true });
    expect(api.watchRequests[0]!.timeoutSeconds).toBeGreaterThanOrEqual(300);
  });

  it("ADDED: the new node is routed", async () => {
    api.upsert(peer(4));
    await until(
      () => ours().includes("10.244.4.0/24 via 172.31.250.4") && ours().includes("fd44:4::/64 via fd31:250::4"),
      "node4's routes",
    );
    expect(ours()).toHaveLength(6);
    await until(
      () => accepted().includes("10.244.4.0/24") && accepted().includes("fd44:4::/64"),
      "node4's subnets accepted",
    );
  });

  it("MODIFIED: a status heartbeat changes nothing; a new InternalIP replaces the route", async () => {
    const syncs = metric("cni_ts_routes_sync_syncs_total");
    api.upsert(
      nodeObject("node4", ["10.244.4.0/24", "fd44:4::/64"], ["172.31.250.4", "fd31:250::4"], {
        status: { conditions: [{ type: "Ready", status: "False" }] },
      }),
    );
    api.upsert(peer(4, { ip4: "172.31.250.44" }));
    await until(() => ours().includes("10.244.4.0/24 via 172.31.250.44"), "node4's new next hop");
    expect(metric('cni_ts_routes_sync_routes_applied_total{change="replace"}')).toBe(1);
    // Two events, one of which mattered: one sync for both at most.
    expect(metric("cni_ts_routes_sync_syncs_total") - syncs).toBeLessThanOrEqual(2);
  });

  it("DELETED: the node's routes go", async () => {
    api.delete("node4");
    await until(() => !ours().some((r) => r.startsWith("10.244.4.") || r.startsWith("fd44:4:")), "node4's routes gone");
    expect(ours()).toHaveLength(4);
    await until(() => accepted().length === 6, "node4's subnets no longer accepted");
    expect(accepted().some((c) => c.startsWith("10.244.4.") || c.startsWith("fd44:4:"))).toBe(false);
  });

  it("a dropped connection: the watch resumes from the last resourceVersion (bookmarks included), and what happened meanwhile arrives", async () => {
    const rvBefore = Number(api.resourceVersion);
    await new Promise((r) => setTimeout(r, 1200)); // at least one bookmark
    const lists = metric("cni_ts_routes_sync_lists_total");
    const watches = api.watchRequests.length;
    api.dropWatches();
    api.upsert(peer(5));
    await until(() => ours().includes("10.244.5.0/24 via 172.31.250.5"), "node5 after the reconnect");
    const resumed = api.watchRequests[watches]!;
    expect(Number(resumed.resourceVersion)).toBe(rvBefore);
    expect(metric("cni_ts_routes_sync_lists_total")).toBe(lists);
    expect(metric('cni_ts_routes_sync_watch_restarts_total{reason="error"}')).toBeGreaterThanOrEqual(1);
  });

  it("410 Gone (an ERROR event, or the HTTP status): the controller lists again and catches up", async () => {
    const lists = metric("cni_ts_routes_sync_lists_total");
    api.dropWatches();
    api.upsert(peer(6));
    api.compact(); // node6's event left the window: resuming from before it cannot work
    await until(() => ours().includes("10.244.6.0/24 via 172.31.250.6"), "node6 after a relist");
    expect(metric("cni_ts_routes_sync_lists_total")).toBe(lists + 1);
    expect(metric('cni_ts_routes_sync_watch_restarts_total{reason="gone"}')).toBe(1);
    api.faults.gone410Count = 1;
    api.dropWatches();
    api.delete("node6");
    await until(() => !ours().some((r) => r.startsWith("10.244.6.")), "node6 gone after another relist");
    expect(metric('cni_ts_routes_sync_watch_restarts_total{reason="gone"}')).toBe(2);
  });

  it("a malformed event line: the watch is dropped and started again; nothing wrong is applied", async () => {
    const before = allRoutes();
    api.faults.malformedNextWatch = true;
    api.dropWatches();
    await until(() => logged(/watch failed: a watch line is not JSON/), "the malformed line to be noticed");
    expect(allRoutes()).toBe(before);
    api.upsert(peer(7));
    await until(() => ours().includes("10.244.7.0/24 via 172.31.250.7"), "node7 after the bad line");
  });

  it("a slow answer (longer than --request-timeout) and a failing list: given up on, retried with backoff", async () => {
    api.faults.slowMs = 4000;
    api.faults.slowCount = 1;
    api.dropWatches();
    await until(() => logged(/within 2 s/), "the slow answer to time out");
    api.faults.listStatus = 500;
    api.faults.gone410Count = 1;
    api.dropWatches();
    await until(() => logged(/HTTP 500 InternalError/), "the failing list");
    api.upsert(peer(8));
    await until(() => ours().includes("10.244.8.0/24 via 172.31.250.8"), "node8 once the server answers well again");
  });

  it("bad input is refused per node, logged, never applied; the good nodes beside it are routed", async () => {
    api.upsert(nodeObject("inject", ["10.244.20.0/24 dev eth1\nroute flush table main"], ["172.31.250.20"]));
    api.upsert(nodeObject("v6only", ["10.244.21.0/24"], ["fd31:250::21"]));
    api.upsert(nodeObject("thief", ["10.244.1.0/24"], ["172.31.250.22"]));
    api.upsert(nodeObject("underlay", ["172.31.250.128/25"], ["172.31.250.23"]));
    api.upsert(nodeObject("badip", ["10.244.24.0/24"], ["172.31.250.24 dev lo"]));
    api.upsert(peer(9));
    await until(() => ours().includes("10.244.9.0/24 via 172.31.250.9"), "node9 beside the bad ones");
    const table = allRoutes();
    for (const dst of ["10.244.20.", "10.244.21.", "10.244.1.0/24 via", "172.31.250.128", "10.244.24."])
      expect(table).not.toContain(dst);
    for (const re of [
      /skip node inject: podCIDR "10.244.20.0\/24 dev eth1\\nroute flush table main" is not a network CIDR/,
      /skip node v6only: no IPv4 InternalIP/,
      /skip node thief: podCIDR 10.244.1.0\/24 is also node node1's/,
      /skip node underlay: podCIDR 172.31.250.128\/25 overlaps 172.31.250.0\/24 on eth1/,
      /skip node badip: InternalIP "172.31.250.24 dev lo" is not an IP address/,
    ]) {
      await until(() => logged(re), `a log line ${re}`);
    }
    expect(metric("cni_ts_routes_sync_nodes_refused")).toBe(4);
    for (const n of ["inject", "v6only", "thief", "underlay", "badip"]) api.delete(n);
  });

  it("cni-ts conflist reads this node's pod subnets with the same client", async () => {
    const template = join(dir, "t.json");
    const out = join(dir, "10-cni-ts.conflist");
    writeFileSync(
      template,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "k8s",
        plugins: [{ type: "bridge", ipam: { type: "host-local", ranges: "__RANGES__" } }],
      }),
    );
    // Not spawnSync: the API server answering it lives in this process.
    const r = await runAsync("ip", [
      "netns",
      "exec",
      node2,
      "env",
      "-i",
      `PATH=${PATH}`,
      join(DIST_BIN, "cni-ts"),
      "conflist",
      "--template",
      template,
      "--out",
      out,
      "--node",
      "node2",
      "--kubeconfig",
      kubeconfig,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(
      (JSON.parse(readFileSync(out, "utf8")) as { plugins: Array<{ ipam: { ranges: unknown } }> }).plugins[0]!.ipam
        .ranges,
    ).toEqual([[{ subnet: "10.244.2.0/24" }], [{ subnet: "fd44:2::/64" }]]);
  });

  it("the API going away changes no route; a change made while it was away arrives when it returns", async () => {
    await until(
      () => !ours().some((r) => r.startsWith("10.244.20.")) && metric("cni_ts_routes_sync_nodes_refused") === 0,
      "the bad nodes gone",
    );
    const before = allRoutes();
    const failures = logs.filter((l) => /watch failed/.test(String(l.msg))).length;
    await api.stop();
    await until(
      () => logs.filter((l) => /watch failed/.test(String(l.msg))).length >= failures + 3,
      "three failed reconnects",
      30_000,
    );
    expect(allRoutes()).toBe(before);
    expect(curl("/healthz").code).toBe("200");
    api.delete("node5");
    api.compact();
    await api.start(() => listenInNetns(apiNs.path, API_IP, 6443));
    await until(
      () => !ours().some((r) => r.startsWith("10.244.5.")),
      "node5's routes gone after the API returned",
      60_000,
    );
  });

  it("SIGTERM stops it with status 0 and leaves the routes in place; --cleanup removes ours and nothing else", async () => {
    const before = ours();
    expect(before.length).toBeGreaterThan(0);
    ip(node1, "route", "add", "10.250.0.0/16", "via", "172.31.250.2");
    controller!.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(logged(/SIGTERM: stopping; the routes stay in place/)).toBe(true);
    expect(ours()).toEqual(before);
    expect(accepted().length).toBeGreaterThan(0);
    const dry = spawnSync(
      "ip",
      ["netns", "exec", node1, "env", "-i", `PATH=${PATH}`, join(DIST_BIN, "routes"), "sync", "--cleanup", "--dry-run"],
      { encoding: "utf8" },
    );
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`dry run: ${before.length} route(s) of routes sync would be deleted`);
    expect(ours()).toEqual(before);
    const r = spawnSync(
      "ip",
      ["netns", "exec", node1, "env", "-i", `PATH=${PATH}`, join(DIST_BIN, "routes"), "sync", "--cleanup"],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${before.length} route(s) of routes sync deleted`);
    expect(ours()).toEqual([]);
    expect(accepted()).toEqual([]);
    expect(ip(node1, "route", "show", "10.250.0.0/16")).toContain("via 172.31.250.2");
  });
});
