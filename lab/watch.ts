/**
 * `npm run demo -- --watch`: the lab's routes kept by `routes sync --kubernetes` on every node instead of a
 * one-shot sync. A stand-in API server (kube-apiserver.ts) serves the lab's Nodes from a namespace of the lab
 * (172.31.250.250, on the underlay only). Then, while pods on the nodes that stay ping each other:
 *
 *   1. a fourth node joins (namespace, pod, controller, then its Node in the API);
 *   2. a node leaves (its pod DELeted, its controller stopped, its Node deleted from the API);
 *   3. the API goes away for a while (and a fifth Node appears in it meanwhile), then returns.
 *
 * For each event it prints how long until every node's routes followed, read from the kernel (ip -json route,
 * polled every 25 ms), and at the end how many pings were lost. The controllers are stopped with SIGTERM, and
 * the routes are shown to stay.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CniRuntime } from "../conformance/runner/index.js";
import { FakeApiServer, nodeObject } from "./kube-apiserver.js";
import { listenInNetns } from "./netns-listen.js";
import { progress } from "./report.js";
import type { LabNode, Topology } from "./topology.js";

const run = promisify(execFile);
const API_IP = "172.31.250.250";
const TOKEN = "lab-token";
const TARGET_MS = 2000;

export interface WatchPod {
  name: string;
  node: LabNode;
  netns: string;
  ip?: string;
}

export interface WatchLab {
  topo: Topology;
  nodes: LabNode[];
  pods: WatchPod[];
  work: string;
  outageSeconds: number;
  /** `--forward-accept` for every controller (the nodes' FORWARD policy is DROP), or none. */
  forwardAccept?: string | undefined;
  /** Create node i with its conflist and binaries (as the plain lab does), and its runtime. */
  addNode(i: number): LabNode;
  addPod(name: string, node: LabNode): Promise<WatchPod>;
  delPod(pod: WatchPod): Promise<void>;
  runtimes: Map<string, CniRuntime>;
}

interface Controller {
  node: LabNode;
  child: ChildProcess;
  exited: Promise<number | null>;
  log: string[];
}

function startController(node: LabNode, kubeconfig: string, forwardAccept: string | undefined): Controller {
  const extra = forwardAccept === undefined ? [] : ["--forward-accept", forwardAccept];
  const child = spawn(
    "nsenter",
    [
      `--net=/var/run/netns/${node.netns}`,
      "--",
      join(node.binDir, "routes"),
      "sync",
      "--kubeconfig",
      kubeconfig,
      "--node",
      node.name,
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
  );
  const c: Controller = {
    node,
    child,
    log: [],
    exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
  };
  child.stderr!.on("data", (d: Buffer) => c.log.push(...d.toString().split("\n").filter(Boolean)));
  return c;
}

/** The node's routes of routes sync, "dst via gw". Asynchronous: the API server lives in this process. */
async function syncRoutes(node: LabNode): Promise<string[]> {
  const { stdout } = await run("ip", ["-n", node.netns, "-json", "route", "show", "proto", "208"]);
  return (JSON.parse(stdout) as Array<{ dst: string; gateway?: string }>)
    .map((r) => `${r.dst} via ${r.gateway}`)
    .sort();
}

/** Per node, ms from `t0` until `cond` held for that node (polled every 25 ms); undefined when it never did. */
async function follow(
  nodes: LabNode[],
  cond: (routes: string[], node: LabNode) => boolean,
  t0: number,
  timeoutMs = 30_000,
): Promise<Map<string, number | undefined>> {
  const done = new Map<string, number | undefined>();
  while (done.size < nodes.length && Date.now() - t0 < timeoutMs) {
    await Promise.all(
      nodes
        .filter((n) => !done.has(n.name))
        .map(async (n) => {
          if (cond(await syncRoutes(n), n)) done.set(n.name, Date.now() - t0);
        }),
    );
    await new Promise((r) => setTimeout(r, 25));
  }
  for (const n of nodes) if (!done.has(n.name)) done.set(n.name, undefined);
  return done;
}

const wantsAll = (peers: LabNode[]) => (routes: string[], self: LabNode) =>
  peers.every((p) => p === self || routes.includes(`${p.podCIDR} via ${p.nodeIP}`));

/** A ping running from pod `from` to `to` until stopped; the counts come from ping's own summary. */
function pinger(from: WatchPod, to: WatchPod) {
  const child = spawn("ip", ["netns", "exec", from.netns, "ping", "-i", "0.2", "-W", "1", to.ip!], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    label: `${from.name} (${from.node.name}) -> ${to.name} (${to.node.name})`,
    async stop(): Promise<{ sent: number; received: number }> {
      child.kill("SIGINT");
      await exited;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
    },
  };
}

function row(what: string, times: Map<string, number | undefined>, all: LabNode[]): string[] {
  return [
    what,
    ...all.map((n) =>
      times.has(n.name) ? (times.get(n.name) === undefined ? "NEVER" : `${times.get(n.name)} ms`) : "-",
    ),
  ];
}

/** Runs the scenario; returns the report lines and whether everything held. Controllers are stopped at the end. */
export async function watchScenario(
  lab: WatchLab,
): Promise<{ ok: boolean; report: string[]; table: string[][]; header: string[] }> {
  const report: string[] = [];
  let ok = true;
  const api = new FakeApiServer({ token: TOKEN, bookmarkMs: 10_000 });
  const controllers = new Map<string, Controller>();
  const pingers: Array<ReturnType<typeof pinger>> = [];
  const apiNs = lab.topo.addHost("api", 250, API_IP);
  const kubeconfig = join(lab.work, "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify(
      {
        apiVersion: "v1",
        kind: "Config",
        "current-context": "lab",
        clusters: [{ name: "lab", cluster: { server: `http://${API_IP}:6443` } }],
        contexts: [{ name: "lab", context: { cluster: "lab", user: "routes" } }],
        users: [{ name: "routes", user: { token: TOKEN } }],
      },
      null,
      2,
    ),
  );
  const nodeObj = (n: LabNode) => nodeObject(n.name, [n.podCIDR], [n.nodeIP]);
  const all = [...lab.nodes];
  const rows: string[][] = [];
  try {
    for (const n of lab.nodes) api.upsert(nodeObj(n));
    await api.start(() => listenInNetns(`/var/run/netns/${apiNs}`, API_IP, 6443));
    progress("starting routes sync --kubernetes on every node");
    let t0 = Date.now();
    for (const n of lab.nodes) controllers.set(n.name, startController(n, kubeconfig, lab.forwardAccept));
    rows.push(row("controllers start: list, first sync", await follow(lab.nodes, wantsAll(lab.nodes), t0), all));

    const stay = lab.nodes.filter((n) => n.name !== "node3");
    const podsOn = (n: LabNode) => lab.pods.filter((p) => p.node === n);
    const [a1, a2] = [podsOn(stay[0]!), podsOn(stay[1]!)];
    pingers.push(pinger(a1[0]!, a2[0]!), pinger(a2[0]!, a1[0]!), pinger(a2[1] ?? a2[0]!, a1[1] ?? a1[0]!));

    progress("node4 joins: namespace, pod, controller, then its Node in the API");
    const node4 = lab.addNode(4);
    all.push(node4);
    const pod4 = await lab.addPod("web-4", node4);
    controllers.set(node4.name, startController(node4, kubeconfig, lab.forwardAccept));
    await new Promise((r) => setTimeout(r, 500)); // its controller has listed (it sees no change yet)
    t0 = Date.now();
    api.upsert(nodeObj(node4));
    const everyone = [...lab.nodes, node4];
    rows.push(row("node4 added to the API", await follow(everyone, wantsAll(everyone), t0), all));
    pingers.push(pinger(pod4, a1[0]!));

    progress("node3 leaves: its pod DELeted, its controller stopped, its Node deleted from the API");
    const node3 = lab.nodes.find((n) => n.name === "node3")!;
    for (const p of podsOn(node3)) await lab.delPod(p);
    const c3 = controllers.get("node3")!;
    c3.child.kill("SIGTERM");
    await c3.exited;
    controllers.delete("node3");
    const remaining = everyone.filter((n) => n !== node3);
    t0 = Date.now();
    api.delete("node3");
    rows.push(
      row(
        "node3 deleted from the API",
        await follow(remaining, (r) => !r.some((x) => x.startsWith(node3.podCIDR)), t0),
        all,
      ),
    );

    progress(`the API goes away for ${lab.outageSeconds} s (node5 appears in it meanwhile)`);
    const before = await Promise.all(remaining.map(syncRoutes));
    await api.stop();
    const away = Date.now();
    api.upsert(nodeObject("node5", ["10.244.5.0/24"], ["172.31.250.15"]));
    let changed = false;
    while (Date.now() - away < lab.outageSeconds * 1000) {
      const now = await Promise.all(remaining.map(syncRoutes));
      if (JSON.stringify(now) !== JSON.stringify(before)) changed = true;
      await new Promise((r) => setTimeout(r, 500));
    }
    report.push(`API away for ${lab.outageSeconds} s: ${changed ? "ROUTES CHANGED" : "no route changed on any node"}`);
    ok &&= !changed;
    await api.start(() => listenInNetns(`/var/run/netns/${apiNs}`, API_IP, 6443));
    t0 = Date.now();
    const back = await follow(remaining, (r) => r.includes("10.244.5.0/24 via 172.31.250.15"), t0, 60_000);
    rows.push(row("API back: node5 (added while away) routed", back, all));
    report.push(
      "(after the API returns, a controller reconnects on its backoff schedule: 0.5 s doubling to 30 s, with jitter)",
    );
    api.delete("node5");
    await follow(remaining, (r) => !r.some((x) => x.startsWith("10.244.5.")), Date.now());

    let lost = 0;
    for (const p of pingers.splice(0)) {
      const r = await p.stop();
      lost += r.sent - r.received;
      report.push(`ping ${p.label}: ${r.sent} sent, ${r.received} answered`);
    }
    report.push(`pings between the nodes that stay: ${lost} lost`);
    ok &&= lost === 0;
    for (const [what, ...cells] of rows) {
      const slow = cells.some((c) => c === "NEVER" || (c.endsWith(" ms") && Number(c.split(" ")[0]) > TARGET_MS));
      if ((what ?? "").startsWith("API back")) ok &&= !cells.includes("NEVER");
      else ok &&= !slow;
    }

    progress("SIGTERM to every controller");
    const kept = await Promise.all(remaining.map(syncRoutes));
    for (const c of controllers.values()) c.child.kill("SIGTERM");
    const codes = await Promise.all([...controllers.values()].map((c) => c.exited));
    controllers.clear();
    const after = await Promise.all(remaining.map(syncRoutes));
    const same = JSON.stringify(kept) === JSON.stringify(after);
    report.push(
      `controllers stopped with SIGTERM (exit ${[...new Set(codes)].join(", ")}): ${same ? "every route stayed in place" : "ROUTES CHANGED"}`,
    );
    ok &&= same && codes.every((c) => c === 0);
    lab.nodes.splice(0, lab.nodes.length, ...remaining);
    return {
      ok,
      report,
      table: rows,
      header: ["event (time until the node's routes followed)", ...all.map((n) => n.name)],
    };
  } finally {
    for (const p of pingers) await p.stop();
    for (const c of controllers.values()) {
      c.child.kill("SIGKILL");
      await c.exited;
    }
    await api.stop();
  }
}
