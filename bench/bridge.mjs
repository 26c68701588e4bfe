// `npm run bench -- bridge [--n 50] [--backend iptables|nftables] [--json FILE]`: bridge + host-local ADD and DEL
// latency, ours beside the reference (Debian containernetworking-plugins in /usr/lib/cni), same run.
//
// Each implementation gets a node namespace of its own with N pod namespaces; the plugins run inside the node
// namespace through `ip netns exec`, a runtime's call plus the same wrapper for both. Not a bare `nsenter --net`:
// `ip netns exec` also mounts the node namespace's sysfs, as a real node's plugin sees it (a plugin in one namespace
// with another namespace's /sys never happens on a node). IPv4, isGateway, ipMasq (the costly configuration: the
// reference's iptables rules grow with every pod).
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BenchError,
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
  mustSucceed,
  oursVersion,
  parseResult,
  percentile,
  median,
  referenceVersion,
  runPlugin,
  targetLine,
  withTmpRoot,
} from "./lib.mjs";
import { Sandbox } from "../sandbox/netns.ts";

export const usage = "npm run bench -- bridge [--n 50] [--backend iptables|nftables] [--json FILE]";

function parseArgs(argv) {
  const opts = { n: 50, backend: "iptables", json: undefined };
  parseOptions(argv, usage, (a, next) => {
    if (a === "--n") opts.n = Number(next());
    else if (a === "--backend") opts.backend = next();
    else if (a === "--json") opts.json = next();
    else return false;
    return true;
  });
  checkN(opts.n, 2, 250);
  if (!["iptables", "nftables"].includes(opts.backend)) throw new BenchError("--backend must be iptables or nftables");
  return opts;
}

/** A node namespace with N pod namespaces (lo down, as the benchmark always had them), removed by `remove`. */
function makeNode(prefix, n) {
  const sb = new Sandbox(prefix);
  try {
    const node = sb.netns("node", false).name;
    const pods = Array.from({ length: n }, (_, i) => sb.netns(`p${i}`, false).name);
    return { node, pods, remove: () => sb.cleanup() };
  } catch (e) {
    sb.cleanup();
    throw e;
  }
}

function conf(name, dataDir, backend) {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name,
    type: "bridge",
    bridge: "cni0",
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: backend,
    ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "10.77.0.0/16" }]], routes: [{ dst: "0.0.0.0/0" }] },
  });
}

async function call(impl, verb, i) {
  const env = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: verb,
    CNI_CONTAINERID: `bench-${i}`,
    CNI_NETNS: `/var/run/netns/${impl.pods[i]}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: impl.cniPath,
  };
  // DEL gets the ADD's result as prevResult, as libcni sends it from its cache (cniVersion 0.4.0 and later).
  const stdin =
    verb === "DEL" && impl.results?.[i]
      ? JSON.stringify({ ...JSON.parse(impl.conf), prevResult: impl.results[i] })
      : impl.conf;
  const r = await runPlugin("ip", env, stdin, { args: ["netns", "exec", impl.node, join(impl.cniPath, "bridge")] });
  mustSucceed(r, `${impl.label} ${verb} pod ${i}`);
  if (verb === "ADD") {
    impl.results ??= [];
    impl.results[i] = parseResult(r, `${impl.label} ADD pod ${i}`);
  }
  return r;
}

async function phase(impl, verb, n, width) {
  const times = [];
  for (let i = 0; i < n; i += width) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + width); j++) batch.push(call(impl, verb, j));
    for (const r of await Promise.all(batch)) times.push(r.ms);
  }
  return times;
}

function stats(times) {
  return { median: median(times), p95: percentile(times, 95) };
}

export async function main(argv) {
  const opts = parseArgs(argv);
  ensureBuilt();
  ensureReference("bridge");
  ensureReference("host-local");
  await withTmpRoot("cni-ts-bench-bridge-", async (tmp) => {
    const oursBin = join(tmp, "ours-bin");
    mkdirSync(oursBin);
    for (const p of ["bridge", "host-local"]) symlinkSync(OURS_EXE, join(oursBin, p));
    const impls = [
      { label: "cni-ts", cniPath: oursBin, ...makeNode("ctsbencho", opts.n) },
      { label: "reference", cniPath: REFERENCE_BIN, ...makeNode("ctsbenchr", opts.n) },
    ];
    try {
      for (const impl of impls) impl.conf = conf("benchnet", join(tmp, `${impl.label}-data`), opts.backend);
      const results = {};
      // Alternate the implementations phase by phase so machine noise hits both.
      for (const [label, verb, width] of [
        ["ADD sequential", "ADD", 1],
        ["DEL sequential", "DEL", 1],
        ["ADD 8-way", "ADD", 8],
        ["DEL 8-way", "DEL", 8],
      ]) {
        for (const impl of impls) {
          process.stderr.write(`\r${label}: ${impl.label} ...                `);
          results[label] ??= {};
          results[label][impl.label] = await phase(impl, verb, opts.n, width);
        }
      }
      process.stderr.write(`\r${" ".repeat(60)}\r`);
      const m = machineInfo();
      console.log(`# bridge + host-local: cni-ts against the reference, same run`);
      console.log(`machine:   ${m.cpus} CPUs (${m.cpuModel}), kernel ${m.kernel}, ${m.arch}`);
      console.log(`cni-ts:    cni-ts ${oursVersion()}, ${OURS_EXE}`);
      console.log(`reference: ${referenceVersion(join(REFERENCE_BIN, "bridge"))}`);
      console.log(
        `settings:  cniVersion 1.0.0, IPv4, isGateway, ipMasq (${opts.backend}), N=${opts.n} pods per phase, each call through ip netns exec into the node namespace\n`,
      );
      const rows = [];
      const summary = {};
      for (const [label, byImpl] of Object.entries(results)) {
        const o = stats(byImpl["cni-ts"]);
        const r = stats(byImpl.reference);
        summary[label] = { ours: o, reference: r };
        rows.push([`${label} median`, fmtMs(o.median), fmtMs(r.median), fmtRatio(o.median, r.median)]);
        rows.push([`${label} p95`, fmtMs(o.p95), fmtMs(r.p95), fmtRatio(o.p95, r.p95)]);
      }
      console.log(markdownTable(["scenario", "cni-ts", "reference", "cni-ts / reference"], rows));
      console.log("\ntimes in ms, wall time of one call including ip netns exec");
      const addOk = summary["ADD sequential"].ours.median <= summary["ADD sequential"].reference.median;
      const delOk = summary["DEL sequential"].ours.median < summary["DEL sequential"].reference.median;
      console.log(
        targetLine(
          addOk,
          "ADD median no more than the reference's",
          `${fmtMs(summary["ADD sequential"].ours.median)} vs ${fmtMs(summary["ADD sequential"].reference.median)} ms`,
        ),
      );
      console.log(
        targetLine(
          delOk,
          "DEL median below the reference's",
          `${fmtMs(summary["DEL sequential"].ours.median)} vs ${fmtMs(summary["DEL sequential"].reference.median)} ms`,
        ),
      );
      if (opts.json) writeFileSync(opts.json, JSON.stringify({ machine: m, opts, summary, raw: results }, null, 2));
    } finally {
      for (const impl of impls) impl.remove();
    }
  });
}
