// `npm run bench -- start [--n 30] [--json FILE]`: what one plugin process costs before it does any work. VERSION
// through every plugin name, ours beside the reference's (Debian containernetworking-plugins in /usr/lib/cni; it has
// no `routes`), alternating call by call: wall time from spawn to exit, and peak RSS (the kernel's maxrss of the
// child, read by GNU time in separate runs so that its own exec does not count in the wall time).
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureDeps } from "../scripts/deps.mjs";
import {
  BenchError,
  checkN,
  parseOptions,
  OURS_BIN,
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
  percentile,
  pluginEnv,
  referenceVersion,
  runPlugin,
  targetLine,
} from "./lib.mjs";

export const usage = "npm run bench -- start [--n 30] [--json FILE]";
const PLUGINS = ["bandwidth", "bridge", "firewall", "host-local", "loopback", "portmap", "routes", "tuning"];
const STDIN = '{"cniVersion":"1.0.0"}';

function parseArgs(argv) {
  const opts = { n: 30, json: undefined };
  parseOptions(argv, usage, (a, next) => {
    if (a === "--n") opts.n = Number(next());
    else if (a === "--json") opts.json = next();
    else return false;
    return true;
  });
  checkN(opts.n, 3, 1000);
  return opts;
}

/** Peak RSS in MB of one VERSION call, as the kernel counts it for the child (GNU time's %M, in KB). */
async function peakRssMb(file) {
  // Through runPlugin: stdin is a pipe, as a runtime gives it.
  const r = await runPlugin("/usr/bin/time", pluginEnv({ COMMAND: "VERSION" }), STDIN, { args: ["-f", "%M", file] });
  if (r.code !== 0) throw new BenchError(`${file} VERSION under /usr/bin/time exited ${r.code}: ${r.stderr.trim()}`);
  const kb = Number(r.stderr.trim().split("\n").at(-1));
  if (!Number.isFinite(kb)) throw new BenchError(`/usr/bin/time printed ${JSON.stringify(r.stderr)}`);
  return kb / 1024;
}

export async function main(argv) {
  const opts = parseArgs(argv);
  ensureBuilt();
  ensureDeps(["time"]);
  ensureReference("bridge");
  const impls = [
    { label: "cni-ts", file: (p) => join(OURS_BIN, p) },
    { label: "reference", file: (p) => (existsSync(join(REFERENCE_BIN, p)) ? join(REFERENCE_BIN, p) : undefined) },
  ];
  const samples = {};
  for (let i = 0; i < opts.n; i++) {
    process.stderr.write(`\rround ${i + 1}/${opts.n} ...   `);
    for (const p of PLUGINS) {
      // Alternate who goes first, so neither always runs right after the other's page cache warm-up.
      for (const impl of i % 2 ? [...impls].reverse() : impls) {
        const file = impl.file(p);
        if (!file) continue;
        samples[p] ??= {};
        samples[p][impl.label] ??= { ms: [], rss: [] };
        const s = samples[p][impl.label];
        const r = mustSucceed(
          await runPlugin(file, pluginEnv({ COMMAND: "VERSION" }), STDIN),
          `${impl.label} ${p} VERSION`,
        );
        s.ms.push(r.ms);
        if (i < Math.min(opts.n, 10)) s.rss.push(await peakRssMb(file));
      }
    }
  }
  process.stderr.write(`\r${" ".repeat(40)}\r`);
  const m = machineInfo();
  console.log(`# process start: VERSION of every plugin, cni-ts beside the reference, same run`);
  console.log(`machine:   ${m.cpus} CPUs (${m.cpuModel}), kernel ${m.kernel}, ${m.arch}`);
  console.log(`cni-ts:    cni-ts ${oursVersion()}, ${OURS_BIN}/cni-ts (${runtimeOf(join(OURS_BIN, "cni-ts"))})`);
  console.log(`reference: ${referenceVersion(join(REFERENCE_BIN, "bridge"))}`);
  console.log(
    `settings:  ${opts.n} VERSION calls per plugin and implementation, alternating; peak RSS from ${Math.min(opts.n, 10)} more each (/usr/bin/time)\n`,
  );
  const rows = [];
  const summary = {};
  let worstRss = 0;
  for (const p of PLUGINS) {
    const o = samples[p]["cni-ts"];
    const r = samples[p].reference;
    const so = { median: median(o.ms), p90: percentile(o.ms, 90), rss: median(o.rss) };
    const sr = r ? { median: median(r.ms), p90: percentile(r.ms, 90), rss: median(r.rss) } : undefined;
    summary[p] = { ours: so, reference: sr };
    worstRss = Math.max(worstRss, ...o.rss);
    rows.push([
      p,
      fmtMs(so.median),
      sr ? fmtMs(sr.median) : "-",
      sr ? fmtRatio(so.median, sr.median) : "-",
      so.rss.toFixed(1),
      sr ? sr.rss.toFixed(1) : "-",
    ]);
  }
  console.log(
    markdownTable(
      ["plugin (VERSION)", "cni-ts ms", "reference ms", "cni-ts / reference", "cni-ts MB", "reference MB"],
      rows,
    ),
  );
  console.log("\nms: median wall time from spawn to exit; MB: median peak RSS. The reference has no routes plugin.");
  console.log(
    targetLine(
      worstRss <= 25,
      "peak RSS at most 25 MB per call",
      `highest of all our calls: ${worstRss.toFixed(1)} MB`,
    ),
  );
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ machine: m, opts, summary, raw: samples }, null, 2));
}

/** "bun 1.4.4" or "node 26.10.0", from the file's own usage text; the build's runtime is what is measured. */
function runtimeOf(file) {
  const r = spawnSync(file, ["--version"], { env: { PATH: "/usr/bin:/bin" }, encoding: "utf8" });
  return /\(([a-z]+ [0-9.]+)[^)]*\)/.exec(r.stderr)?.[1] ?? "runtime unknown";
}
