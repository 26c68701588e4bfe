#!/usr/bin/env node
// `npm run bench -- NAME [options]`: benchmarks of our plugins against the reference Go plugins, same run, side
// by side. Each benchmark lives in bench/NAME.mjs and exports main(argv) and usage. A benchmark is bundled with
// esbuild before it runs (it uses the TypeScript sandbox toolkit, sandbox/), once, before any measured call.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { importTs } from "./run-ts.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const BENCHES = {
  start: { module: "bench/start.mjs", about: "VERSION of every plugin: wall time and peak RSS of one process start" },
  pod: {
    module: "bench/pod.mjs",
    about: "a pod's life as containerd drives it: loopback + bridge/host-local + portmap, ADD, DEL, DEL again",
  },
  ipam: { module: "bench/ipam.mjs", about: "host-local ADD/DEL at 0, 1,000 and 10,000 allocations, 50-way ADD burst" },
  bridge: {
    module: "bench/bridge.mjs",
    about: "bridge + host-local ADD/DEL latency with ipMasq, sequential and 8-way (--n 50)",
  },
};

function usage() {
  return (
    `usage: npm run bench -- NAME [options]     (or: node scripts/bench.mjs NAME [options])\n` +
    Object.entries(BENCHES)
      .map(([n, b]) => `  ${n.padEnd(8)} ${b.about}\n`)
      .join("") +
    `options of a benchmark: npm run bench -- NAME --help`
  );
}

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === "-h" || name === "--help" || name === "help") {
  console.log(usage());
  process.exit(name === undefined ? 2 : 0);
}
if (!Object.hasOwn(BENCHES, name)) {
  console.error(`unknown benchmark ${JSON.stringify(name)}\n${usage()}`);
  process.exit(2);
}

try {
  const bench = await importTs(join(root, BENCHES[name].module));
  await bench.main(rest);
} catch (e) {
  // By name: the bundle carries its own copy of bench/lib.mjs's class.
  if (e instanceof Error && e.name === "BenchError") {
    console.error(`bench ${name}: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
