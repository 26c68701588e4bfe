// `npm run bench -- pod [--n 20] [--ports] [--json FILE]`: a pod's whole life as containerd's CRI drives the CNI
// plugins, ours beside the reference (Debian containernetworking-plugins in /usr/lib/cni), alternating pod by pod.
//
//   RunPodSandbox     loopback ADD (its own network, cniVersion 0.3.1, ifname lo) at the same time as the conflist's
//                     chain (go-cni attaches the networks concurrently): bridge ADD (with host-local), then
//                     portmap ADD with the bridge's result as prevResult and runtimeConfig.portMappings
//   StopPodSandbox    loopback DEL, then the chain in reverse: portmap DEL, bridge DEL (prevResult from libcni's
//                     cache); then the runtime removes the pod's netns
//   RemovePodSandbox  the same DELs again, with CNI_NETNS empty and no prevResult (everything is already released)
//
// Each implementation has a node namespace of its own; every call goes through `ip netns exec NODE` (as in the
// bridge benchmark). The conflist is containerd's (bridge cni0, isGateway, ipMasq, promiscMode, host-local
// with a default route; portmap with the portMappings capability); by default the pod maps no port (most pods),
// --ports gives it one hostPort. --count runs every call under strace instead and prints how many processes each
// call started (its own chain: ip, nsenter, iptables ..., delegates), not times. --exe FILE: another build of ours.
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import {
  checkN,
  parseOptions,
  OURS_EXE,
  REFERENCE_BIN,
  ensureBuilt,
  ensureReference,
  fmtMs,
  fmtRatio,
  machineInfo,
  markdownTable,
  median,
  mustSucceed,
  oursVersion,
  parseResult,
  referenceVersion,
  runPlugin,
  targetLine,
  withTmpRoot,
} from "./lib.mjs";
import { ensureDeps } from "../scripts/deps.mjs";
import { Sandbox } from "../sandbox/netns.ts";

export const usage = "npm run bench -- pod [--n 20] [--ports] [--count] [--exe FILE] [--json FILE]";
const PHASES = ["RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"];

function parseArgs(argv) {
  const opts = { n: 20, ports: false, count: false, exe: OURS_EXE, json: undefined };
  parseOptions(argv, usage, (a, next) => {
    if (a === "--n") opts.n = Number(next());
    else if (a === "--ports") opts.ports = true;
    else if (a === "--count") opts.count = true;
    else if (a === "--exe") opts.exe = next();
    else if (a === "--json") opts.json = next();
    else return false;
    return true;
  });
  checkN(opts.n, 2, 200);
  return opts;
}

/** The chain's plugin configs, as libcni hands them out (name and cniVersion copied into each). */
function chain(dataDir) {
  const name = "containerd-net";
  const cniVersion = "1.0.0";
  return [
    {
      cniVersion,
      name,
      type: "bridge",
      bridge: "cni0",
      isGateway: true,
      ipMasq: true,
      promiscMode: true,
      ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "10.88.0.0/16" }]], routes: [{ dst: "0.0.0.0/0" }] },
    },
    { cniVersion, name, type: "portmap", capabilities: { portMappings: true }, snat: true },
  ];
}
const LOOPBACK = { cniVersion: "0.3.1", name: "cni-loopback", type: "loopback" };

export async function main(argv) {
  const opts = parseArgs(argv);
  if (opts.exe === OURS_EXE) ensureBuilt();
  for (const p of ["bridge", "host-local", "loopback", "portmap"]) ensureReference(p);
  if (opts.count) ensureDeps(["strace"]);
  await withTmpRoot("cni-ts-bench-pod-", async (tmp) => {
    const oursBin = join(tmp, "ours-bin");
    mkdirSync(oursBin);
    for (const p of ["bridge", "host-local", "loopback", "portmap"]) symlinkSync(opts.exe, join(oursBin, p));
    // lo stays down in the pods: the loopback plugin's ADD brings it up, as on a node.
    const sb = new Sandbox("ctspod");
    const netns = (label) => sb.netns(label, false).name;
    const dropNetns = (name) => sb.delNetns(name);
    try {
      const impls = [
        { label: "cni-ts", cniPath: oursBin, node: netns("o"), chain: chain(join(tmp, "ours-data")) },
        { label: "reference", cniPath: REFERENCE_BIN, node: netns("r"), chain: chain(join(tmp, "ref-data")) },
      ];
      const samples = {};
      const record = (impl, what, ms) => {
        samples[what] ??= {};
        samples[what][impl.label] ??= [];
        samples[what][impl.label].push(ms);
      };

      async function call(impl, pod, plugin, verb, conf, { netns: podNetns, ifname = "eth0" }) {
        const env = {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          CNI_COMMAND: verb,
          CNI_CONTAINERID: pod.id,
          CNI_NETNS: podNetns,
          CNI_IFNAME: ifname,
          CNI_PATH: impl.cniPath,
          CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.id};K8S_POD_UID=${pod.uid}`,
        };
        const file = join(impl.cniPath, plugin);
        const trace = join(tmp, `trace-${impl.label}-${pod.name}-${plugin}-${verb}`);
        // -ff: one output file per process, so that no execve line is split into "unfinished" and "resumed" halves.
        const argv = opts.count ? ["strace", "-ff", "-qq", "-e", "trace=execve", "-o", trace, file] : [file];
        const r = await runPlugin("ip", env, JSON.stringify(conf), { args: ["netns", "exec", impl.node, ...argv] });
        mustSucceed(r, `${impl.label} ${plugin} ${verb} (${pod.name})`);
        const what = `${plugin} ${verb}${podNetns === "" ? " (no netns)" : ""}`;
        if (opts.count) {
          // Successful execs other than the plugin's own: each process its call started (a shell's execs count too).
          const files = readdirSync(tmp).filter((f) => f.startsWith(`${basename(trace)}.`));
          const execs = files
            .flatMap((f) => readFileSync(join(tmp, f), "utf8").split("\n"))
            .filter((l) => /^execve\(/.test(l) && /\) = 0$/.test(l));
          record(impl, what, execs.length - 1);
          for (const f of files) rmSync(join(tmp, f));
        } else record(impl, what, r.ms);
        return verb === "ADD" ? parseResult(r, `${impl.label} ${plugin} ADD`) : undefined;
      }

      async function podLife(impl, i) {
        const pod = {
          name: `bench-${i}`,
          id: `${impl.label}-${i}-${"0".repeat(48)}`.slice(0, 64),
          uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        };
        const nsName = netns(`${impl.label === "cni-ts" ? "o" : "r"}${i}`);
        const path = `/var/run/netns/${nsName}`;
        const portMappings = opts.ports ? [{ hostPort: 18080 + i, containerPort: 80, protocol: "tcp" }] : [];
        const [bridgeConf, portmapConf] = impl.chain;
        const withRt = { ...portmapConf, runtimeConfig: { portMappings } };
        // RunPodSandbox: loopback and the chain at once, as go-cni attaches its networks.
        let t0 = process.hrtime.bigint();
        let result;
        await Promise.all([
          call(impl, pod, "loopback", "ADD", LOOPBACK, { netns: path, ifname: "lo" }),
          (async () => {
            result = await call(impl, pod, "bridge", "ADD", bridgeConf, { netns: path });
            result = await call(impl, pod, "portmap", "ADD", { ...withRt, prevResult: result }, { netns: path });
          })(),
        ]);
        record(impl, "RunPodSandbox", Number(process.hrtime.bigint() - t0) / 1e6);
        // StopPodSandbox: the networks one after the other; the chain in reverse with the cached result.
        t0 = process.hrtime.bigint();
        await call(impl, pod, "loopback", "DEL", LOOPBACK, { netns: path, ifname: "lo" });
        await call(impl, pod, "portmap", "DEL", { ...withRt, prevResult: result }, { netns: path });
        await call(impl, pod, "bridge", "DEL", { ...bridgeConf, prevResult: result }, { netns: path });
        record(impl, "StopPodSandbox", Number(process.hrtime.bigint() - t0) / 1e6);
        dropNetns(nsName);
        // RemovePodSandbox: again, with the netns gone (CNI_NETNS empty) and libcni's cache already cleared.
        t0 = process.hrtime.bigint();
        await call(impl, pod, "loopback", "DEL", LOOPBACK, { netns: "", ifname: "lo" });
        await call(impl, pod, "portmap", "DEL", withRt, { netns: "" });
        await call(impl, pod, "bridge", "DEL", bridgeConf, { netns: "" });
        record(impl, "RemovePodSandbox", Number(process.hrtime.bigint() - t0) / 1e6);
      }

      for (let i = 0; i < opts.n; i++) {
        process.stderr.write(`\rpod ${i + 1}/${opts.n} ...   `);
        for (const impl of i % 2 ? [...impls].reverse() : impls) await podLife(impl, i);
      }
      process.stderr.write(`\r${" ".repeat(40)}\r`);

      const m = machineInfo();
      console.log(`# a pod's life as containerd drives the plugins: cni-ts beside the reference, same run`);
      console.log(`machine:   ${m.cpus} CPUs (${m.cpuModel}), kernel ${m.kernel}, ${m.arch}`);
      console.log(`cni-ts:    cni-ts ${oursVersion()}, ${opts.exe}`);
      console.log(`reference: ${referenceVersion(join(REFERENCE_BIN, "bridge"))}`);
      console.log(
        `settings:  ${opts.n} pods, alternating; containerd's conflist (bridge + host-local, ipMasq iptables, portmap) and loopback at 0.3.1; ${opts.ports ? "one hostPort per pod" : "no hostPort"}; every call through ip netns exec into the node namespace\n`,
      );
      const row = (what) => {
        const o = median(samples[what]["cni-ts"]);
        const r = median(samples[what].reference);
        return [what, fmtMs(o), fmtMs(r), fmtRatio(o, r)];
      };
      const calls = Object.keys(samples).filter((k) => !PHASES.includes(k));
      if (opts.count) {
        const count = (what, label) => {
          const v = samples[what][label];
          return Math.min(...v) === Math.max(...v) ? String(v[0]) : `${Math.min(...v)}-${Math.max(...v)}`;
        };
        const rows = calls.map((c) => [c, count(c, "cni-ts"), count(c, "reference")]);
        const sum = (label) => calls.reduce((a, c) => a + median(samples[c][label]), 0);
        rows.push(["whole life (medians summed)", String(sum("cni-ts")), String(sum("reference"))]);
        console.log(markdownTable(["call", "cni-ts processes", "reference processes"], rows));
        console.log("\nprocesses each call started (successful execve under strace -f, the plugin's own not counted)");
        return;
      }
      console.log(markdownTable(["phase (wall time)", "cni-ts", "reference", "cni-ts / reference"], PHASES.map(row)));
      console.log();
      console.log(markdownTable(["call", "cni-ts", "reference", "cni-ts / reference"], calls.map(row)));
      console.log(
        "\ntimes in ms, medians over the pods; a phase is the runtime's wall time for its calls (RunPodSandbox: loopback concurrent with the chain)",
      );
      for (const p of PHASES) {
        const o = median(samples[p]["cni-ts"]);
        const r = median(samples[p].reference);
        console.log(targetLine(o <= r, `${p} no slower than the reference's`, `${fmtMs(o)} vs ${fmtMs(r)} ms`));
      }
      if (opts.json) writeFileSync(opts.json, JSON.stringify({ machine: m, opts, raw: samples }, null, 2));
    } finally {
      sb.cleanup();
    }
  });
}
