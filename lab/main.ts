/**
 * The cluster lab (`npm run demo`): a kubenet-style cluster in network namespaces. Three nodes on an underlay,
 * each with its own pod subnet, our executables in a relocated /opt/cni/bin and a conflist in a relocated
 * /etc/cni/net.d; five pods ADDed through a runtime with libcni's semantics; node routes to the other nodes' pod
 * subnets installed by `routes sync` from a generated NodeList; then every pod pings every other pod.
 *
 * The conflist chains bridge (+ host-local), portmap and firewall, as a real one would; web-0 maps hostPort 8080.
 *
 *   lab [--keep] [--forward-drop]
 *                       run the lab (and leave it up with --keep). --forward-drop: the nodes' FORWARD policy is
 *                       DROP (as Docker sets it): the matrix with routes only, then `routes sync --forward-accept
 *                       auto` on every node, then the matrix again (lab/forward.ts)
 *   lab --watch [--outage SECONDS] [--forward-drop]
 *                       the node routes kept by `routes sync --kubernetes` on every node against a stand-in API
 *                       server, while a node joins, a node leaves and the API goes away (lab/watch.ts); with
 *                       --forward-drop the controllers run with --forward-accept auto
 *   lab --remove ID     remove a lab left up with --keep
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CniRuntime, loadConfDir } from "../conformance/runner/index.js";
import { endProgress, progress, table } from "./report.js";
import { listNetns, Sandbox } from "../sandbox/netns.js";
import { Topology, sh, type LabNode } from "./topology.js";
import {
  bridgedThroughForward,
  closeForward,
  filterRules,
  HOST_PORT,
  hostPortCheck,
  matrixSummary,
  pingMatrix,
  portmapRules,
  type Matrix,
} from "./forward.js";
import { watchScenario } from "./watch.js";

const EXE = resolve(process.env.CNI_TS_EXE ?? "dist/bin/cni-ts");
const PODS: Array<{ name: string; node: number }> = [
  { name: "web-0", node: 1 },
  { name: "web-1", node: 2 },
  { name: "db-0", node: 3 },
  { name: "cache-0", node: 1 },
  { name: "api-0", node: 2 },
];

interface Pod {
  name: string;
  node: LabNode;
  netns: string;
  containerID: string;
  ip?: string;
}

/** Bridge (+ host-local), then portmap and firewall, as a real conflist chains them (podman's stock order). */
function kubenetConflist(node: LabNode): object {
  return {
    cniVersion: "1.0.0",
    name: "kubenet",
    plugins: [
      {
        type: "bridge",
        bridge: "cbr0",
        isGateway: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: node.dataDir,
          ranges: [[{ subnet: node.podCIDR }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall" },
    ],
  };
}

function nodeList(nodes: LabNode[]): object {
  return {
    apiVersion: "v1",
    kind: "NodeList",
    items: nodes.map((n) => ({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: n.name },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: {
        addresses: [
          { type: "InternalIP", address: n.nodeIP },
          { type: "Hostname", address: n.name },
        ],
      },
    })),
  };
}

function runtimeFor(node: LabNode): CniRuntime {
  return new CniRuntime({
    cniPath: [node.binDir],
    cacheDir: node.cacheDir,
    wrapper: ["nsenter", `--net=/var/run/netns/${node.netns}`, "--"],
    timeoutMs: 30_000,
  });
}

function routesOf(node: LabNode): string {
  return sh("ip", ["-n", node.netns, "route", "show"])
    .trim()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

/** The routes sync of one node from the lab's NodeList (with `extra` flags); its output, indented for the report. */
function routesSync(n: LabNode, nodesFile: string, extra: string[]): string {
  const r = spawnSync(
    "nsenter",
    [
      `--net=/var/run/netns/${n.netns}`,
      "--",
      join(n.binDir, "routes"),
      "sync",
      "--nodes",
      nodesFile,
      "--node",
      n.name,
      ...extra,
    ],
    { encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
  );
  if (r.status !== 0)
    throw new Error(`routes sync ${extra.join(" ")} on ${n.name} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return `  ${n.name}: ${(r.stdout + r.stderr).trim().split("\n").join("\n           ")}`;
}

const indent = (lines: string[]) => lines.map((l) => `    ${l}`).join("\n");

function printMatrix(title: string, pods: Pod[], m: Matrix, hostPort: string): void {
  console.log(`\nping matrix${title ? ` ${title}` : ""} (from row to column, round-trip time):\n`);
  console.log(table(["FROM \\ TO", ...pods.map((p) => p.name)], m.rows));
  console.log(`${matrixSummary(m)}; ${hostPort}`);
}

interface LabOptions {
  keep: boolean;
  watch: { outageSeconds: number } | undefined;
  /** The nodes' FORWARD policy DROP, and the step that lets the cluster's pod traffic through. */
  forwardDrop: boolean;
}

async function run({ keep, watch, forwardDrop }: LabOptions): Promise<boolean> {
  if (!existsSync(EXE)) throw new Error(`${EXE} is missing: run npm run build`);
  const id = `ctslab${process.pid.toString(36)}`;
  const work = mkdtempSync(join(tmpdir(), `${id}-`));
  const topo = new Topology(id, work);
  const started = Date.now();
  let ok = false;
  const onSignal = () => {
    endProgress();
    const left = topo.destroy();
    process.stderr.write(`\ninterrupted: lab removed${left.length ? ` except ${left.join(", ")}` : ""}\n`);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const pods: Pod[] = [];
  let watchOk = true;
  let firstResult: Record<string, unknown> | undefined;
  try {
    progress("creating the underlay and 3 nodes");
    topo.createUnderlay();
    const newNode = (i: number) => {
      const n = topo.addNode(i, EXE, kubenetConflist);
      if (forwardDrop) closeForward(n);
      return n;
    };
    const nodes = [1, 2, 3].map(newNode);
    const runtimes = new Map(nodes.map((n) => [n.name, runtimeFor(n)]));

    for (const p of PODS) {
      const node = nodes[p.node - 1]!;
      progress(`ADD ${p.name} on ${node.name}`);
      const pod: Pod = { name: p.name, node, netns: topo.addPod(p.name), containerID: `${id}-${p.name}` };
      pods.push(pod);
      const list = loadConfDir(node.confDir);
      // The first pod maps a hostPort (portmap's capability), as a pod spec's ports[].hostPort does.
      const rt = {
        containerID: pod.containerID,
        netns: `/var/run/netns/${pod.netns}`,
        ifname: "eth0",
        ...(pods.length === 1
          ? { capabilityArgs: { portMappings: [{ hostPort: HOST_PORT, containerPort: HOST_PORT, protocol: "tcp" }] } }
          : {}),
      };
      const result = await runtimes.get(node.name)!.addNetworkList(list, rt);
      firstResult ??= result;
      pod.ip = ((result.ips as Array<{ address: string }>)[0]?.address ?? "").split("/")[0];
      await runtimes.get(node.name)!.checkNetworkList(list, rt);
    }

    // What the chained plugins wrote, read before any other step adds to the same tables.
    const n1 = nodes[0]!;
    const added = { portmap: portmapRules(n1), firewall: filterRules(n1, ["CNI-FORWARD"]) };
    const syncs: string[] = [];
    const acceptSyncs: string[] = [];
    let closed: { matrix: Matrix; hostPort: string } | undefined;
    let watchReport: { report: string[]; table: string[][]; header: string[] } | undefined;
    if (watch) {
      const r = await watchScenario({
        topo,
        nodes,
        pods,
        work,
        runtimes,
        outageSeconds: watch.outageSeconds,
        forwardAccept: forwardDrop ? "auto" : undefined,
        addNode: (i) => {
          const n = newNode(i);
          runtimes.set(n.name, runtimeFor(n));
          return n;
        },
        addPod: async (name, node) => {
          const pod: Pod = { name, node, netns: topo.addPod(name), containerID: `${id}-${name}` };
          pods.push(pod);
          const result = await runtimes.get(node.name)!.addNetworkList(loadConfDir(node.confDir), {
            containerID: pod.containerID,
            netns: `/var/run/netns/${pod.netns}`,
            ifname: "eth0",
          });
          pod.ip = ((result.ips as Array<{ address: string }>)[0]?.address ?? "").split("/")[0];
          return pod;
        },
        delPod: async (p) => {
          const pod = p as Pod;
          await runtimes.get(pod.node.name)!.delNetworkList(loadConfDir(pod.node.confDir), {
            containerID: pod.containerID,
            netns: `/var/run/netns/${pod.netns}`,
            ifname: "eth0",
          });
          pods.splice(pods.indexOf(pod), 1);
        },
      });
      watchReport = r;
      if (!r.ok) console.log("the watch scenario did not hold (see below)");
      watchOk = r.ok;
    } else {
      const nodesFile = join(work, "nodes.json");
      writeFileSync(nodesFile, JSON.stringify(nodeList(nodes), null, 2));
      for (const n of nodes) {
        progress(`routes sync on ${n.name}`);
        syncs.push(routesSync(n, nodesFile, []));
      }
      if (forwardDrop) {
        progress("ping matrix with FORWARD policy DROP, routes only");
        const matrix = await pingMatrix(pods);
        const hp = await hostPortCheck(pods[0]!, nodes[1]!, false);
        closed = { matrix, hostPort: hp.line };
        for (const n of nodes) {
          progress(`routes sync --forward-accept auto on ${n.name}`);
          acceptSyncs.push(routesSync(n, nodesFile, ["--forward-accept", "auto"]));
        }
      }
    }

    progress("ping matrix");
    const matrix = await pingMatrix(pods);
    const hostPod = pods.find((p) => p.name === PODS[0]!.name);
    const hostPeer = nodes.find((n) => n !== hostPod?.node);
    const hostPort =
      hostPod && hostPeer
        ? await hostPortCheck(hostPod, hostPeer, true)
        : { ok: true, line: "hostPort: its pod left with its node" };
    endProgress();

    const distinct = new Set(pods.map((p) => p.ip)).size === pods.length;
    console.log(
      `\ncni-ts cluster lab ${id}: ${nodes.length} nodes (network namespaces) on an underlay, kubenet-style pod subnets\n`,
    );
    console.log(
      table(
        ["NAME", "READY", "STATUS", "IP", "NODE"],
        pods.map((p) => [p.name, "1/1", "Running", p.ip ?? "?", p.node.name]),
      ),
    );
    console.log(
      `\nthe CNI result of ADD ${pods[0]!.name} (bridge + host-local, as the runtime received it):\n${JSON.stringify(firstResult, null, 2)}`,
    );
    if (watchReport) {
      console.log(
        `\nnode routes kept by routes sync --kubernetes (one controller per node, a stand-in API server at 172.31.250.250):\n`,
      );
      console.log(table(watchReport.header, watchReport.table));
      console.log(`(target: every node within 2000 ms of the API change)\n${watchReport.report.join("\n")}`);
    } else {
      console.log(`\nnode routes (routes sync from a NodeList of ${nodes.length} nodes):`);
      console.log(syncs.join("\n"));
    }
    for (const n of nodes) console.log(`\n  ${n.name} (${n.nodeIP}, pods ${n.podCIDR}):\n${routesOf(n)}`);
    console.log(
      `\nwhat portmap and firewall (chained after bridge) added on ${n1.name} at ADD, for its pods ${pods
        .filter((p) => p.node === n1)
        .map((p) => `${p.name} ${p.ip}`)
        .join(", ")}:`,
    );
    console.log(`  portmap, hostPort DNAT (nat table):\n${indent(added.portmap)}`);
    console.log(`  firewall, per-pod accept rules (filter table):\n${indent(added.firewall)}`);
    if (closed) {
      console.log(
        `\nFORWARD policy DROP on every node (iptables -P FORWARD DROP inside the node's namespace, as Docker sets it):`,
      );
      console.log(
        "firewall accepts what a node's pods send and the replies to them; a new connection into a pod from another node meets the DROP.",
      );
      console.log(
        bridgedThroughForward(n1)
          ? "(bridged traffic between two pods of a node meets FORWARD too, net.bridge.bridge-nf-call-iptables = 1: firewall's rules are what let same-node pairs through)"
          : "(bridged traffic between two pods of a node does not meet FORWARD here: net.bridge.bridge-nf-call-iptables is not 1 in the node)",
      );
      printMatrix("with FORWARD policy DROP, routes and firewall only", pods, closed.matrix, closed.hostPort);
      console.log(
        `\nthe firewall step: routes sync --forward-accept auto on every node (the podCIDRs of every node of the NodeList):`,
      );
      console.log(acceptSyncs.join("\n"));
      console.log(`  ${n1.name}, filter table now:\n${indent(filterRules(n1, ["CNI-TS-FORWARD"]))}`);
    } else if (forwardDrop) {
      console.log(
        `\nFORWARD policy DROP on every node; the controllers keep CNI-TS-FORWARD (--forward-accept auto). ${n1.name}, filter table:\n${indent(filterRules(n1, ["CNI-TS-FORWARD"]))}`,
      );
    }
    printMatrix(closed ? "after the firewall step" : "", pods, matrix, hostPort.line);
    const good = matrix.sameNode.good + matrix.crossNode.good;
    const total = matrix.sameNode.total + matrix.crossNode.total;
    ok = distinct && good === total && hostPort.ok && watchOk;
    console.log(
      `${distinct ? `${pods.length} pods, ${pods.length} distinct addresses` : "DUPLICATE ADDRESSES"}; ${good}/${total} pings answered`,
    );

    if (keep) {
      console.log(`\nthe lab stays up (--keep). Enter a pod:   ip netns exec ${pods[0]!.netns} sh`);
      console.log(`                          a node:  ip netns exec ${nodes[0]!.netns} sh`);
      console.log(`remove it later with:     npm run demo -- --remove ${id}`);
      writeFileSync(join(tmpdir(), `${id}.lab`), JSON.stringify({ namespaces: topo.namespaces, work }));
      console.log(`verdict: ${ok ? "OK" : "FAILED"} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      return ok;
    }

    for (const p of [...pods].reverse()) {
      progress(`DEL ${p.name}`);
      const list = loadConfDir(p.node.confDir);
      await runtimes
        .get(p.node.name)!
        .delNetworkList(list, { containerID: p.containerID, netns: `/var/run/netns/${p.netns}`, ifname: "eth0" });
    }
    endProgress();
    const leftovers = nodes.flatMap((n) => {
      const links = sh("ip", ["-n", n.netns, "-o", "link", "show"])
        .split("\n")
        .filter((l) => /^\d+: veth/.test(l))
        .map((l) => `${n.name}: ${l.split(":")[1]!.trim()}`);
      const netDir = join(n.dataDir, "kubenet");
      const reservations = existsSync(netDir)
        ? readdirSync(netDir)
            .filter((f) => /^[0-9a-f.:]+$/.test(f))
            .map((f) => `${n.name}: reservation ${f}`)
        : [];
      const cache = existsSync(join(n.cacheDir, "results"))
        ? readdirSync(join(n.cacheDir, "results")).map((f) => `${n.name}: cache ${f}`)
        : [];
      // portmap's DNAT and firewall's per-pod rules go with their pods (the chains and jumps stay, as the reference's).
      const rules = [
        ...portmapRules(n),
        ...filterRules(n, ["CNI-FORWARD"]).filter((l) => / -[sd] [0-9a-f.:]+\/(32|128) /.test(l)),
      ].map((l) => `${n.name}: rule ${l}`);
      return [...links, ...reservations, ...cache, ...rules];
    });
    console.log(
      leftovers.length === 0
        ? "after DEL: no veth, no reservation, no cache entry, no hostPort or per-pod firewall rule left"
        : `after DEL, left behind: ${leftovers.join(", ")}`,
    );
    ok &&= leftovers.length === 0;
    return ok;
  } finally {
    endProgress();
    if (!keep || !ok) {
      const left = topo.destroy();
      console.log(
        `lab removed${left.length ? `, except ${left.join(", ")}` : ""} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      );
      if (left.length) ok = false;
    }
    if (!keep) console.log(`verdict: ${ok ? "OK" : "FAILED"}`);
  }
}

function remove(id: string): boolean {
  if (!/^ctslab[0-9a-z]+$/.test(id)) throw new Error(`not a lab id: ${id}`);
  const file = join(tmpdir(), `${id}.lab`);
  const namespaces = listNetns().filter((n) => n.startsWith(`${id}-`));
  new Sandbox("", { id, onExit: false }).cleanup();
  if (existsSync(file)) {
    const { work } = JSON.parse(String(spawnSync("cat", [file]).stdout)) as { work: string };
    if (work.startsWith(join(tmpdir(), id))) rmSync(work, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
  console.log(`removed ${namespaces.length} namespaces of ${id}`);
  return true;
}

const args = process.argv.slice(2);
try {
  const i = args.indexOf("--remove");
  const o = args.indexOf("--outage");
  const outageSeconds = o >= 0 ? Number(args[o + 1]) : 60;
  if (!(outageSeconds >= 1 && outageSeconds <= 600)) throw new Error("--outage takes a number of seconds, 1-600");
  const ok =
    i >= 0
      ? remove(args[i + 1] ?? "")
      : await run({
          keep: args.includes("--keep"),
          watch: args.includes("--watch") ? { outageSeconds } : undefined,
          forwardDrop: args.includes("--forward-drop"),
        });
  process.exit(ok ? 0 : 1);
} catch (e) {
  endProgress();
  console.error(`lab: ${(e as Error).message}`);
  process.exit(1);
}
