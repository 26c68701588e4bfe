#!/usr/bin/env node
// `npm run soak`: the reliability suite (test/reliability, test/unit/property-*) at the full counts of issue 7:
// 1,000 churn cycles, 64 concurrent pods and 6 GC-during-ADD rounds, 240 ADD and 100 DEL crash injections, the whole
// hostile corpus including its minute-long delegate deadlines, 5,000 runs per property. Takes tens of minutes.
//
//   npm run soak                    full counts
//   npm run soak -- --short         the counts `npm test` runs, with the same summary
//   npm run soak -- --out FILE      where the figures go (JSON lines; default dist/reliability/soak-<time>.jsonl)
//   npm run soak -- churn crash     only the test files whose path contains one of these words
//   npm run soak -- --guest [WORD]  instead: the integration tests (test/integration, or the files whose name
//                                   contains WORD) in a guest with Debian's stock kernel (scripts/vm.mjs), the
//                                   kernel operators run, where `npm test` runs only the VLAN and masquerade files.
//                                   Emulated: about an hour for all of them. Not the reliability suite: its time
//                                   limits are for native speed.
// Every count can be set alone: CNI_TS_SOAK_CHURN, _PODS, _GC_ROUNDS, _CRASH_ADD, _CRASH_DEL, _PROPERTY.
// CNI_TS_SEED=<n> replays a run's random choices.
//
// Needs root (network namespaces) and builds the executables first. Prints a summary of the figures at the end:
// they are what docs/reliability.md reports.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDeps, requireRoot } from "./deps.mjs";
import { vitestInGuestArgv } from "./vm.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const short = args.includes("--short");
const guest = args.includes("--guest");
const outIdx = args.indexOf("--out");
const out =
  outIdx >= 0
    ? resolve(args[outIdx + 1] ?? "")
    : join(root, "dist", "reliability", `soak-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`);
const filters = args.filter((a, i) => !a.startsWith("--") && (outIdx < 0 || i !== outIdx + 1));

requireRoot("the soak");
ensureDeps(["ip", "nsenter", "ping", "strip", "iptables", "nft"]);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, "");

const env = { ...process.env, CNI_TS_RELIABILITY_OUT: out };
if (short) delete env.CNI_TS_SOAK;
else env.CNI_TS_SOAK = "1";
const started = Date.now();
let ok = true;

function step(what, cmd, argv) {
  console.error(`\n== ${what}`);
  const r = spawnSync(cmd, argv, { stdio: "inherit", env, cwd: root });
  if (r.status !== 0) {
    console.error(`== ${what}: FAILED (exit ${r.status ?? r.signal})`);
    ok = false;
  }
  return r.status === 0;
}

if (guest) process.exit(await guestRun());

const integration = filters.length > 0 ? filters.map((f) => `test/reliability/${f}`) : ["test/reliability"];
const unit =
  filters.length > 0
    ? filters.filter((f) => f.startsWith("property")).map((f) => `test/unit/${f}`)
    : ["test/unit/property-"];
if (step("build", "node", ["build.mjs"])) {
  step(`reliability suite (${short ? "short" : "soak"} counts)`, "npx", [
    "vitest",
    "run",
    "--project",
    "integration",
    ...integration,
  ]);
}
if (unit.length > 0) step("property tests", "npx", ["vitest", "run", "--project", "unit", ...unit]);

// --- summary ------------------------------------------------------------------------------------------------------
const lines = existsSync(out)
  ? readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l))
  : [];
const by = (s) => lines.filter((l) => l.section === s);
const sum = (xs, f) => xs.reduce((a, x) => a + (f(x) ?? 0), 0);
const churn = by("churn")[0];
const conc = by("concurrency")[0];
const gcRace = by("gc-during-add")[0];
const crashAdd = by("crash-add")[0];
const crashDel = by("crash-del")[0];
const corpus = by("hostile-corpus")[0];
const summary = {
  mode: short ? "short" : "soak",
  minutes: Math.round((Date.now() - started) / 6000) / 10,
  churnCycles: churn?.cycles,
  churnLeftovers: churn?.leftovers,
  churnLatencyRatioLastToFirstTenth: churn && { add: churn.addMs.ratio, del: churn.delMs.ratio },
  churnPeakRssKb: churn?.peakRssKb,
  concurrentPods: conc?.pods,
  concurrentLeftovers: conc && sum(["nftables", "iptables"], (b) => conc[b]?.leftovers),
  gcRaceRounds: gcRace?.rounds?.length,
  gcRaceAddsOverlappingAGc: gcRace && sum(gcRace.rounds, (r) => r.addsOverlappingAGc),
  gcRaceReservationsLost: gcRace && {
    defaultGrace: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds !== 0),
      (r) => r.reservationsLost,
    ),
    graceZero: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds === 0),
      (r) => r.reservationsLost,
    ),
  },
  gcRaceDuplicateAddresses: gcRace && {
    defaultGrace: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds !== 0),
      (r) => r.duplicateAddresses.length,
    ),
    graceZero: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds === 0),
      (r) => r.duplicateAddresses.length,
    ),
  },
  gcRaceCheckFailures: gcRace && {
    defaultGrace: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds !== 0),
      (r) => r.checkFailures,
    ),
    graceZero: sum(
      gcRace.rounds.filter((r) => r.gcGraceSeconds === 0),
      (r) => r.checkFailures,
    ),
  },
  crashesInjectedAdd: crashAdd?.killed,
  crashRunsAdd: crashAdd?.runs,
  crashesInjectedDel: crashDel?.killed,
  crashRunsDel: crashDel?.runs,
  crashRunsWithLeftovers: (crashAdd?.runsWithLeftovers ?? 0) + (crashDel?.runsWithLeftovers ?? 0),
  hostileInputsTried: corpus?.tried,
  hostileInputsAsExpected: corpus && corpus.refusedAsExpected + corpus.acceptedAsExpected,
  hostileInputsKnownBugs: corpus?.knownBugList,
  hostileInputsFailed: corpus?.failedList,
  propertyRuns: by("property-config-parsers")[0]?.runs,
  figures: out,
};
console.log(`\n== soak summary\n${JSON.stringify(summary, null, 2)}`);
process.exit(ok ? 0 : 1);

/** `--guest`: the integration files in the guest; the figures (counts, failed tests) go to the JSON lines file too. */
async function guestRun() {
  ensureDeps(["qemu", "busybox"]);
  const files = readdirSync(join(root, "test", "integration"))
    .filter((f) => f.endsWith(".test.ts") && (filters.length === 0 || filters.some((w) => f.includes(w))))
    .map((f) => `test/integration/${f}`);
  if (files.length === 0) {
    console.error(`soak --guest: no file of test/integration matches ${filters.join(", ")}`);
    return 2;
  }
  const report = join(dirname(out), `guest-${Date.now()}.json`);
  if (step("build", "node", ["build.mjs"])) {
    step(`integration tests in the guest (${files.length} files)`, "node", vitestInGuestArgv(files, report, 7200));
  }
  const r = existsSync(report) ? JSON.parse(readFileSync(report, "utf8")) : undefined;
  const figures = {
    section: "guest",
    minutes: Math.round((Date.now() - started) / 6000) / 10,
    files: files.length,
    passed: r?.numPassedTests,
    failed: r?.numFailedTests,
    skipped: r?.numPendingTests,
    failedTests: (r?.testResults ?? []).flatMap((f) =>
      f.assertionResults
        .filter((a) => a.status === "failed")
        .map((a) => `${f.name.replace(`${root}/`, "")}: ${a.fullName}`),
    ),
  };
  writeFileSync(out, `${JSON.stringify(figures)}\n`, { flag: "a" });
  console.log(`\n== soak summary (guest)\n${JSON.stringify({ ...figures, figures: out }, null, 2)}`);
  return ok && r !== undefined && r.numFailedTests === 0 ? 0 : 1;
}
