/**
 * `npm run conformance -- --plugins DIR [--cases DIR] [--only NAME[,NAME]] [--json FILE] [--reference DIR]`
 *
 * Runs every case under conformance/cases against the plugins in DIR, one line per case step (PASS / FAIL / SKIP /
 * XFAIL), and ends with `N passed, M failed[, K skipped]` (XFAIL, a documented known difference, counts as
 * skipped). Exit 0 only when nothing failed. Needs root: every case runs in network namespaces of its own.
 * scripts/conformance.mjs bundles this file with esbuild and runs it (no TS loader needed).
 */
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { compareRuns, type Difference } from "./harness/diff.js";
import { listCases, loadCase, runCase, type LoadedCase, type StepOutcome } from "./harness/engine.js";
import { detectMachine, detectPluginSet, type MachineFeatures, type PluginSet } from "./harness/features.js";
import { loadKnown, type KnownDifferences } from "./harness/known.js";
import { diffRoot, RunSandbox, snapshotRoot } from "./harness/sandbox.js";
import { runSample } from "./sample.js";

interface Options {
  plugins?: string;
  cases: string;
  only?: string[];
  json?: string;
  reference?: string;
  impl?: string;
  referenceImpl?: string;
  known: string;
  timeoutMs: number;
  list: boolean;
  sample: boolean;
  quiet: boolean;
}

const USAGE = `usage: npm run conformance -- --plugins DIR [--cases DIR] [--only NAME[,NAME...]] [--json FILE] [--reference DIR]
  --plugins DIR     plugin directory under test (e.g. dist/bin, /usr/lib/cni)
  --cases DIR       case directory (default conformance/cases)
  --only NAMES      run only these cases (comma-separated; a trailing * matches a prefix)
  --json FILE       write every step outcome, the plugin set and the summary as JSON
  --reference DIR   differential mode: also run every case against DIR and report differences
  --impl NAME       override the detected implementation of --plugins (cni-ts, reference)
  --known FILE      known differences (default conformance/known-differences.json)
  --timeout MS      per plugin call deadline (default 60000)
  --list            list the cases and exit
  --sample          run the sample (kubenet-style, 3 pods) and print its summary as JSON (runSample())`;

function parseArgs(argv: string[], root: string): Options {
  const o: Options = {
    cases: join(root, "conformance/cases"),
    known: join(root, "conformance/known-differences.json"),
    timeoutMs: 60_000,
    list: false,
    sample: false,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--plugins":
        o.plugins = resolve(val());
        break;
      case "--cases":
        o.cases = resolve(val());
        break;
      case "--only":
        o.only = val().split(",").filter(Boolean);
        break;
      case "--json":
        o.json = resolve(val());
        break;
      case "--reference":
        o.reference = resolve(val());
        break;
      case "--impl":
        o.impl = val();
        break;
      case "--reference-impl":
        o.referenceImpl = val();
        break;
      case "--known":
        o.known = resolve(val());
        break;
      case "--timeout":
        o.timeoutMs = Number(val());
        break;
      case "--list":
        o.list = true;
        break;
      case "--sample":
        o.sample = true;
        break;
      case "--quiet":
        o.quiet = true;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return o;
}

function selected(names: string[], only: string[] | undefined): string[] {
  if (!only) return names;
  const out = names.filter((n) => only.some((p) => (p.endsWith("*") ? n.startsWith(p.slice(0, -1)) : n === p)));
  const missing = only.filter((p) => !p.endsWith("*") && !names.includes(p));
  if (missing.length > 0) throw new Error(`no such case: ${missing.join(", ")} (have: ${names.join(", ")})`);
  return out;
}

function line(o: StepOutcome): string {
  const head = `${o.status.padEnd(5)} ${o.case} #${o.step} ${o.title} (${o.ms} ms)`;
  if (o.status === "PASS") return head;
  if (o.status === "SKIP") return `${head} — ${o.reasons[0]}`;
  if (o.status === "XFAIL") return `${head} — known ${o.known!.impl} difference: ${o.known!.reason}`;
  const bug = o.knownBug ? `\n        knownBug: ${o.knownBug}` : "";
  return `${head} — ${o.reasons[0]}${o.reasons
    .slice(1)
    .map((r) => `\n        ${r}`)
    .join("")}${bug}`;
}

interface SetRun {
  set: PluginSet;
  outcomes: StepOutcome[];
  ms: number;
  leftovers: string[];
  runId: string;
}

async function runSet(
  dir: string,
  impl: string | undefined,
  cases: LoadedCase[],
  known: KnownDifferences,
  machine: MachineFeatures,
  opts: { snapshot: boolean; print: boolean; timeoutMs: number },
): Promise<SetRun> {
  const t0 = performance.now();
  const types = [...new Set(["bridge", "host-local", "routes", ...cases.flatMap((c) => typesOf(c))])];
  const set = await detectPluginSet(dir, types, impl);
  if (opts.print) {
    console.log(`plugins: ${set.dir} (${set.impl}: ${set.about || "no about text"})`);
    for (const [t, v] of Object.entries(set.versions)) console.log(`  ${t}: speaks ${v.join(", ")}`);
  }
  const sandbox = new RunSandbox();
  const outcomes: StepOutcome[] = [];
  try {
    for (const [i, c] of cases.entries()) {
      await runCase(c, {
        sandbox,
        plugins: set,
        machine,
        known,
        index: i,
        snapshot: opts.snapshot,
        timeoutMs: opts.timeoutMs,
        onStep: (o) => {
          outcomes.push(o);
          if (opts.print) console.log(line(o));
        },
      });
    }
  } finally {
    sandbox.cleanupSync();
  }
  return { set, outcomes, ms: Math.round(performance.now() - t0), leftovers: sandbox.leftovers(), runId: sandbox.id };
}

function typesOf(c: LoadedCase): string[] {
  const out: string[] = [];
  for (const r of [...(c.def.requires ?? []), ...c.def.steps.flatMap((s) => s.requires ?? [])])
    if (r.startsWith("plugin:")) out.push(r.slice(7));
  return out;
}

function count(outcomes: StepOutcome[]): {
  passed: number;
  failed: number;
  skipped: number;
  xfail: number;
  notApplicable: number;
} {
  const n = (s: string) => outcomes.filter((o) => o.status === s).length;
  return {
    passed: n("PASS"),
    failed: n("FAIL"),
    skipped: n("SKIP") + n("XFAIL"),
    xfail: n("XFAIL"),
    notApplicable: n("SKIP"),
  };
}

export async function main(argv: string[], root: string): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(argv, root);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const names = listCases(opts.cases);
  if (opts.list) {
    for (const n of names) console.log(`${n.padEnd(28)} ${loadCase(join(opts.cases, n)).def.description}`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error(
      "conformance needs root: every case creates network namespaces (ip netns add) and runs the plugins inside them. Run it as root.",
    );
    return 2;
  }
  for (const [tool, path] of [
    ["ip", "/usr/sbin/ip"],
    ["nsenter", "/usr/bin/nsenter"],
    ["ping", "/usr/bin/ping"],
  ] as const) {
    if (!existsSync(path)) {
      console.error(
        `conformance needs ${tool} (${path}): apt-get install ${tool === "ip" ? "iproute2" : tool === "nsenter" ? "util-linux" : "iputils-ping"}`,
      );
      return 2;
    }
  }
  if (opts.sample) {
    const summary = await runSample({ plugins: opts.plugins ?? join(root, "dist/bin"), casesDir: opts.cases });
    console.log(JSON.stringify(summary, null, 2));
    return summary.ok ? 0 : 1;
  }
  if (!opts.plugins) {
    console.error(`--plugins DIR is required\n${USAGE}`);
    return 2;
  }

  const machine = detectMachine();
  const known = loadKnown(opts.known);
  const cases: LoadedCase[] = [];
  let broken = 0;
  let chosen: string[];
  try {
    chosen = selected(names, opts.only);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  for (const n of chosen) {
    try {
      cases.push(loadCase(join(opts.cases, n)));
    } catch (e) {
      broken++;
      console.log(`FAIL  ${n} — case does not load: ${(e as Error).message}`);
    }
  }
  const rootBefore = snapshotRoot();
  const primary = await runSet(opts.plugins, opts.impl, cases, known, machine, {
    snapshot: !!opts.reference,
    print: true,
    timeoutMs: opts.timeoutMs,
  });
  const c = count(primary.outcomes);
  let failed = c.failed + broken;
  for (const l of primary.leftovers) {
    console.log(`FAIL  leftover after the run: ${l}`);
    failed++;
  }
  console.log(`runtime: ${(primary.ms / 1000).toFixed(1)} s for ${cases.length} cases against ${primary.set.dir}`);
  if (c.xfail > 0)
    console.log(`known differences: ${c.xfail} steps failed as documented in ${opts.known} (counted as skipped)`);

  let diff: { compared: number; identical: number; differences: Difference[] } | undefined;
  let refRun: SetRun | undefined;
  if (opts.reference) {
    console.log(`\ndifferential: running the same cases against ${opts.reference} ...`);
    refRun = await runSet(opts.reference, opts.referenceImpl, cases, known, machine, {
      snapshot: true,
      print: false,
      timeoutMs: opts.timeoutMs,
    });
    const rc = count(refRun.outcomes);
    console.log(
      `reference run: ${rc.passed} passed, ${rc.failed} failed, ${rc.skipped} skipped (${rc.xfail} known) in ${(refRun.ms / 1000).toFixed(1)} s`,
    );
    for (const l of refRun.leftovers) {
      console.log(`FAIL  leftover after the reference run: ${l}`);
      failed++;
    }
    diff = compareRuns(primary.outcomes, refRun.outcomes, known, [primary.runId, refRun.runId]);
    const unexpected = diff.differences.filter((d) => !d.intended && !d.knownBug);
    const intended = diff.differences.filter((d) => d.intended);
    const bugs = diff.differences.filter((d) => !d.intended && d.knownBug);
    const show = (d: Difference) => `${d.case} #${d.step} ${d.title}: ${d.field}: ${d.primary} vs ${d.reference}`;
    console.log(
      `differential: ${diff.compared} steps compared, ${diff.identical} identical, ${intended.length} intended differences, ${unexpected.length} unexpected differences${bugs.length ? `, ${bugs.length} from known cni-ts bugs (those steps fail above)` : ""}`,
    );
    const byReason = new Map<string, number>();
    for (const d of intended) byReason.set(d.intended!, (byReason.get(d.intended!) ?? 0) + 1);
    for (const [reason, n] of byReason) console.log(`  intended (${n}): ${reason}`);
    for (const d of bugs) console.log(`BUG   ${show(d)}`);
    for (const d of unexpected) console.log(`DIFF  ${show(d)}`);
    failed += unexpected.length;
  }

  const rootAfter = snapshotRoot();
  const rootChanges = diffRoot(rootBefore, rootAfter);
  if (rootChanges.length > 0)
    console.log(
      `warning: the root network namespace changed during the run (not by this run's plugins, which ran in the run's namespaces; another process?):\n  ${rootChanges.slice(0, 10).join("\n  ")}`,
    );

  if (opts.json) {
    writeFileSync(
      opts.json,
      JSON.stringify(
        {
          plugins: primary.set,
          runId: primary.runId,
          machine,
          runtimeMs: primary.ms,
          outcomes: primary.outcomes,
          summary: { passed: c.passed, failed, skipped: c.skipped, knownDifferences: c.xfail, brokenCases: broken },
          leftovers: primary.leftovers,
          ...(refRun
            ? {
                reference: {
                  plugins: refRun.set,
                  runId: refRun.runId,
                  runtimeMs: refRun.ms,
                  outcomes: refRun.outcomes,
                  leftovers: refRun.leftovers,
                },
                differential: diff,
              }
            : {}),
          rootChanges,
        },
        null,
        2,
      ),
    );
  }
  console.log(`\n${c.passed} passed, ${failed} failed${c.skipped > 0 ? `, ${c.skipped} skipped` : ""}`);
  return failed === 0 ? 0 : 1;
}

/** Used when bundled and run by scripts/conformance.mjs. */
export async function cliEntry(): Promise<void> {
  const root = process.env.CNI_TS_ROOT ?? process.cwd();
  let code: number;
  try {
    code = await main(process.argv.slice(2), root);
  } catch (e) {
    console.error(`conformance: ${(e as Error).stack ?? String(e)}`);
    code = 2;
  }
  process.exitCode = code;
}
