// `npm run bench -- ipam`: our host-local (dist/bin/host-local) against the reference Go host-local
// (/usr/lib/cni/host-local, Debian's containernetworking-plugins), in the same run, side by side.
//
// Cells: ADD and DEL medians with 0, 1,000 and 10,000 addresses already allocated in a /16, then a burst of 50
// concurrent ADDs at 10,000. The existing allocations are written straight into the reference's on-disk format
// (<dataDir>/<net>/<ip> = "containerID\r\nifname", plus last_reserved_ip.0), identical for both implementations;
// each implementation and size gets its own fresh dataDir. Within a cell the two implementations alternate sample
// by sample (and swap who goes first), so machine noise hits both alike.
//
// The first ADD/DEL pair of each cell runs before the timed samples and is reported separately: it is where ours
// finds a network directory written by someone else and rebuilds its index (one scan), a one-time cost on a node.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  BenchError,
  OURS_BIN,
  ensureBuilt,
  ensureReference,
  fmtMs,
  fmtRatio,
  machineInfo,
  markdownTable,
  max,
  median,
  mustSucceed,
  oursVersion,
  parseResult,
  pluginEnv,
  referenceVersion,
  runPlugin,
  summarize,
  supportedVersions,
  targetLine,
  withTmpRoot,
} from "./lib.mjs";

export const usage = `npm run bench -- ipam [--json FILE] [--samples N]
  host-local ADD/DEL medians at 0, 1,000 and 10,000 existing allocations and a 50-way concurrent ADD burst at
  10,000, ours (dist/bin/host-local) against the reference (/usr/lib/cni/host-local), same run, side by side.
  --samples N   ADD+DEL samples per cell (default 30 at 0 and 1,000, 15 at 10,000)
  --json FILE   also write every figure, raw samples included, to FILE`;

const CNI_VERSION = "1.0.0"; // the highest the reference (v1.1.1) speaks
const NET = "benchnet";
const SUBNET = "10.200.0.0/16";
const BASE = (10 << 24) | (200 << 16); // 10.200.0.0
const FIRST_HOST = 2; // .1 is the gateway
const SIZES = [0, 1000, 10000];
const DEFAULT_SAMPLES = { 0: 30, 1000: 30, 10000: 15 };
const BURST = 50;
const BURST_AT = 10000;

function ipAt(index) {
  const n = BASE + FIRST_HOST + index;
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Index of an address in our pre-population order (ipAt's inverse), or NaN if not in the subnet. */
function indexOf(ip) {
  const p = ip.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return NaN;
  const n = ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
  return (n & 0xffff0000) >>> 0 === BASE >>> 0 ? n - BASE - FIRST_HOST : NaN;
}

function netConf(dataDir) {
  return JSON.stringify({
    cniVersion: CNI_VERSION,
    name: NET,
    type: "bridge",
    ipam: { type: "host-local", ranges: [[{ subnet: SUBNET }]], dataDir },
  });
}

/** `count` existing allocations in the reference's format: one file per address, and the last one reserved. */
function prepopulate(dataDir, count) {
  const dir = join(dataDir, NET);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const id = createHash("sha256").update(`existing-${i}`).digest("hex");
    writeFileSync(join(dir, ipAt(i)), `${id}\r\neth0`, { mode: 0o644 });
  }
  if (count > 0) writeFileSync(join(dir, "last_reserved_ip.0"), ipAt(count - 1), { mode: 0o644 });
}

/** Reservation files in the network directory (names that are IPv4 addresses). */
function reservations(dataDir) {
  try {
    return readdirSync(join(dataDir, NET)).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)).length;
  } catch {
    return 0;
  }
}

function expectReservations(impl, dataDir, want, when) {
  const got = reservations(dataDir);
  if (got !== want)
    throw new BenchError(`${impl.label}: ${got} reservation files in ${join(dataDir, NET)} ${when}, expected ${want}`);
}

/** One ADD; checks exit 0 and that the address is new (not one of the `existing` pre-populated ones). */
async function add(impl, cell, id) {
  const r = await runPlugin(impl.file, pluginEnv({ COMMAND: "ADD", CONTAINERID: id }), cell.conf);
  const what = `${impl.label} ADD ${id} (${cell.existing} existing)`;
  mustSucceed(r, what);
  const address = parseResult(r, what).ips?.[0]?.address;
  const ip = typeof address === "string" ? address.split("/")[0] : "";
  const i = indexOf(ip);
  if (!(i >= cell.existing))
    throw new BenchError(`${what} answered address ${JSON.stringify(address)}: not a free address of ${SUBNET}`);
  return { ms: r.ms, ip };
}

async function del(impl, cell, id) {
  const r = await runPlugin(impl.file, pluginEnv({ COMMAND: "DEL", CONTAINERID: id }), cell.conf);
  mustSucceed(r, `${impl.label} DEL ${id} (${cell.existing} existing)`);
  return { ms: r.ms };
}

function progress(msg) {
  process.stderr.write(`${msg}\n`);
}

async function runCells(impls, tmp, samplesFor) {
  const cells = [];
  for (const existing of SIZES) {
    const n = samplesFor(existing);
    const cell = { existing, samples: n };
    const state = impls.map((impl) => {
      const dataDir = join(tmp, `${impl.key}-${existing}`);
      prepopulate(dataDir, existing);
      return { impl, c: { existing, conf: netConf(dataDir), dataDir }, add: [], del: [], ips: [] };
    });
    progress(`@${existing}: first ADD/DEL pair, then ${n} samples each ...`);
    for (const s of state) {
      const a = await add(s.impl, s.c, "bench-first");
      const d = await del(s.impl, s.c, "bench-first");
      s.first = { add: a.ms, del: d.ms, ip: a.ip };
    }
    for (let i = 0; i < n; i++) {
      const order = i % 2 === 0 ? state : [...state].reverse();
      for (const s of order) {
        const a = await add(s.impl, s.c, `bench-${i}`);
        const d = await del(s.impl, s.c, `bench-${i}`);
        s.add.push(a.ms);
        s.del.push(d.ms);
        s.ips.push(a.ip);
      }
    }
    for (const s of state) {
      expectReservations(s.impl, s.c.dataDir, existing, "after the ADD/DEL samples");
      cell[s.impl.key] = {
        dataDir: s.c.dataDir,
        first: s.first,
        addMedian: median(s.add),
        delMedian: median(s.del),
        add: s.add,
        del: s.del,
        addSummary: summarize(s.add),
        delSummary: summarize(s.del),
        addresses: s.ips,
      };
    }
    cells.push(cell);
  }
  return cells;
}

/** 50 ADDs started at once into the 10,000-allocation directory of its cell, then 50 DELs at once. */
async function runBurst(impl, cell) {
  const c = { existing: BURST_AT, conf: netConf(cell.dataDir), dataDir: cell.dataDir };
  const ids = Array.from({ length: BURST }, (_, k) => `burst-${k}`);
  const t0 = process.hrtime.bigint();
  const adds = await Promise.all(ids.map((id) => add(impl, c, id)));
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const ips = adds.map((a) => a.ip);
  const distinct = new Set(ips).size;
  if (distinct !== BURST)
    throw new BenchError(
      `${impl.label}: the ${BURST} concurrent ADDs got only ${distinct} distinct addresses: ${ips.join(" ")}`,
    );
  expectReservations(impl, c.dataDir, BURST_AT + BURST, `after the ${BURST} concurrent ADDs`);
  const t1 = process.hrtime.bigint();
  const dels = await Promise.all(ids.map((id) => del(impl, c, id)));
  const delWallMs = Number(process.hrtime.bigint() - t1) / 1e6;
  expectReservations(impl, c.dataDir, BURST_AT, `after the ${BURST} concurrent DELs`);
  const perCall = adds.map((a) => a.ms);
  return {
    wallMs,
    perCallMedian: median(perCall),
    perCallMax: max(perCall),
    perCall,
    addresses: ips,
    delWallMs,
    delPerCall: dels.map((d) => d.ms),
  };
}

function parse(argv) {
  let opts;
  try {
    opts = parseArgs({
      args: argv,
      options: { json: { type: "string" }, samples: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new BenchError(`${e.message}\n${usage}`);
  }
  if (opts.help) return { help: true };
  let samples;
  if (opts.samples !== undefined) {
    samples = Number(opts.samples);
    if (!/^\d+$/.test(opts.samples) || samples < 1)
      throw new BenchError(`--samples wants a positive integer, got ${JSON.stringify(opts.samples)}`);
  }
  // npm runs scripts from the package root; a relative --json path means the caller's directory.
  const json = opts.json === undefined ? undefined : resolve(process.env.INIT_CWD ?? process.cwd(), opts.json);
  return { samples, json };
}

export async function main(argv) {
  const opts = parse(argv);
  if (opts.help) {
    console.log(usage);
    return;
  }
  const started = process.hrtime.bigint();
  ensureBuilt();
  const refFile = ensureReference("host-local");
  const impls = [
    { key: "ours", label: "cni-ts", file: join(OURS_BIN, "host-local") },
    { key: "reference", label: "reference", file: refFile },
  ];
  const samplesFor = (existing) => opts.samples ?? DEFAULT_SAMPLES[existing];

  const machine = machineInfo();
  const versions = {
    ours: `cni-ts ${oursVersion()} (package.json)`,
    oursFile: impls[0].file,
    oursSpeaks: supportedVersions(impls[0].file),
    reference: referenceVersion(refFile),
    referenceFile: refFile,
    referenceSpeaks: supportedVersions(refFile),
  };
  if (!versions.oursSpeaks.includes(CNI_VERSION))
    throw new BenchError(
      `${impls[0].file} does not answer VERSION with ${CNI_VERSION} among its versions (got ${JSON.stringify(versions.oursSpeaks)})`,
    );
  if (!versions.referenceSpeaks.includes(CNI_VERSION))
    throw new BenchError(
      `${refFile} does not speak cniVersion ${CNI_VERSION} (got ${JSON.stringify(versions.referenceSpeaks)})`,
    );

  console.log(`# host-local IPAM: cni-ts against the reference, same run`);
  console.log(
    `machine:   ${machine.cpus} CPUs (${machine.cpuModel}), kernel ${machine.kernel} (uname -r), ${machine.arch}; data in ${machine.tmpdir} (${machine.tmpfs})`,
  );
  console.log(`cni-ts:    ${versions.ours}, ${versions.oursFile}`);
  console.log(`reference: ${versions.reference}, ${versions.referenceFile}`);
  console.log(
    `settings:  cniVersion ${CNI_VERSION}, subnet ${SUBNET}, samples ${SIZES.map((s) => `${samplesFor(s)} @${s}`).join(", ")} (ADD then DEL, implementations alternating); burst ${BURST} concurrent ADDs @${BURST_AT}`,
  );
  console.log("");

  const { cells, burst } = await withTmpRoot("cni-ts-bench-ipam-", async (tmp) => {
    const cells = await runCells(impls, tmp, samplesFor);
    const big = cells.find((c) => c.existing === BURST_AT);
    const burst = { existing: BURST_AT, size: BURST };
    for (const impl of impls) {
      progress(`burst: ${BURST} concurrent ADDs @${BURST_AT}, ${impl.label} ...`);
      burst[impl.key] = await runBurst(impl, big[impl.key]);
    }
    return { cells, burst };
  });

  const rows = [];
  const row = (scenario, ours, ref) => rows.push({ scenario, ours, reference: ref });
  for (const c of cells) {
    row(`ADD @${c.existing}`, c.ours.addMedian, c.reference.addMedian);
    row(`DEL @${c.existing}`, c.ours.delMedian, c.reference.delMedian);
  }
  row(`burst ${BURST} @${BURST_AT} wall`, burst.ours.wallMs, burst.reference.wallMs);
  row(`burst per-call median`, burst.ours.perCallMedian, burst.reference.perCallMedian);
  row(`burst per-call max`, burst.ours.perCallMax, burst.reference.perCallMax);

  console.log(
    markdownTable(
      ["scenario", "cni-ts", "reference", "cni-ts / reference"],
      rows.map((r) => [r.scenario, fmtMs(r.ours), fmtMs(r.reference), fmtRatio(r.ours, r.reference)]),
    ),
  );
  console.log("");
  console.log(
    `times in ms: medians of ${SIZES.map((s) => samplesFor(s)).join("/")} samples; burst = ${BURST} ADDs started at once, wall until the last exits`,
  );
  console.log(
    `first ADD/DEL after pre-population (not in the medians): ${cells.map((c) => `@${c.existing} cni-ts ${fmtMs(c.ours.first.add)}/${fmtMs(c.ours.first.del)}, reference ${fmtMs(c.reference.first.add)}/${fmtMs(c.reference.first.del)}`).join("; ")}`,
  );
  console.log(
    `burst DELs (${BURST} at once) wall: cni-ts ${fmtMs(burst.ours.delWallMs)}, reference ${fmtMs(burst.reference.delWallMs)}`,
  );
  console.log("");

  const big = cells.find((c) => c.existing === BURST_AT);
  const zero = cells.find((c) => c.existing === 0);
  const scale = big.ours.addMedian / zero.ours.addMedian;
  const speedup = burst.reference.wallMs / burst.ours.wallMs;
  const targets = [
    {
      name: "ADD median at 10,000 allocations within 1.5x of ours at 0",
      pass: scale <= 1.5,
      value: scale,
      limit: 1.5,
      detail: `${fmtMs(big.ours.addMedian)} ms vs ${fmtMs(zero.ours.addMedian)} ms: ${scale.toFixed(2)}x`,
    },
    {
      name: "burst at least 12x faster than the reference",
      pass: speedup >= 12,
      value: speedup,
      limit: 12,
      detail: `${fmtMs(burst.reference.wallMs)} ms / ${fmtMs(burst.ours.wallMs)} ms: ${speedup.toFixed(2)}x`,
    },
  ];
  for (const t of targets) console.log(targetLine(t.pass, t.name, t.detail));

  const runtimeMs = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`\nruntime ${(runtimeMs / 1000).toFixed(1)} s`);

  if (opts.json) {
    const report = {
      bench: "ipam",
      date: new Date().toISOString(),
      machine,
      versions,
      settings: {
        cniVersion: CNI_VERSION,
        network: NET,
        subnet: SUBNET,
        sizes: SIZES,
        samples: Object.fromEntries(SIZES.map((s) => [s, samplesFor(s)])),
        burst: BURST,
        burstAt: BURST_AT,
      },
      table: rows,
      cells,
      burst,
      targets,
      runtimeMs,
    };
    writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${opts.json}`);
  }
}
