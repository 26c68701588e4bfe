/**
 * Differential mode: the same cases run against two plugin directories; per step, the observations (success or
 * error code, the result with per-run names normalized, kernel state after the step) are flattened to field paths
 * and compared. Differences listed as intended in known-differences.json are reported apart from unexpected ones.
 */
import { intendedDifference, type KnownDifferences } from "./known.js";
import type { Observation, StepOutcome } from "./outcome.js";
import { perRunName } from "./snapshot.js";

type J = Record<string, unknown>;

export interface Difference {
  case: string;
  step: string;
  title: string;
  field: string;
  primary: string;
  reference: string;
  /** The reason from known-differences.json when this difference is intended. */
  intended?: string;
  /** The primary failed this step with a `knownBug` (the step already counts as failed there). */
  knownBug?: string;
}

function flatten(v: unknown, path: string, out: Map<string, string>): void {
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as J);
    if (entries.length === 0) out.set(path, Array.isArray(v) ? "[]" : "{}");
    for (const [k, x] of entries) flatten(x, path ? `${path}.${k}` : k, out);
    return;
  }
  out.set(path, JSON.stringify(v));
}

/** Result with what differs per run or per call removed: MACs, names given per run (veths, ifbs), sandbox paths, run ids. */
function normalizeResult(r: J | undefined): J | undefined {
  if (!r) return undefined;
  const copy = JSON.parse(JSON.stringify(r)) as J;
  if (Array.isArray(copy.interfaces)) {
    for (const i of copy.interfaces as J[]) {
      delete i.mac;
      if (typeof i.name === "string") i.name = perRunName(i.name) ?? i.name;
      if (typeof i.sandbox === "string") i.sandbox = "<netns>";
    }
  }
  return copy;
}

export function observationFields(o: Observation | undefined, runIds: string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!o) return out;
  out.set("ok", String(o.ok));
  if (!o.ok) {
    out.set("error.code", String(o.code ?? "none"));
    out.set("error.by", o.runtimeError ? "runtime" : (o.plugin ?? "?"));
  }
  if (o.result) flatten(normalizeResult(o.result), "result", out);
  if (o.version) flatten(o.version, "version", out);
  if (o.kernel) flatten(o.kernel, "kernel", out);
  for (const [k, v] of out) {
    let t = v;
    for (const id of runIds) t = t.split(id).join("<run>");
    out.set(k, t);
  }
  return out;
}

/** Compare two runs' outcomes step by step (steps skipped on either side are not compared). */
export function compareRuns(
  primary: StepOutcome[],
  reference: StepOutcome[],
  known: KnownDifferences,
  runIds: string[],
): { compared: number; identical: number; differences: Difference[] } {
  const refBy = new Map(reference.map((o) => [`${o.case}\u0000${o.step}`, o]));
  const differences: Difference[] = [];
  let compared = 0;
  let identical = 0;
  for (const p of primary) {
    const r = refBy.get(`${p.case}\u0000${p.step}`);
    if (!r || p.status === "SKIP" || r.status === "SKIP") continue;
    compared++;
    const a = observationFields(p.observation, runIds);
    const b = observationFields(r.observation, runIds);
    const fields = [...new Set([...a.keys(), ...b.keys()])].sort();
    let same = true;
    for (const f of fields) {
      const va = a.get(f) ?? "<absent>";
      const vb = b.get(f) ?? "<absent>";
      if (va === vb) continue;
      same = false;
      const d: Difference = { case: p.case, step: p.step, title: p.title, field: f, primary: va, reference: vb };
      const xfail = p.status === "XFAIL" ? p : r.status === "XFAIL" ? r : undefined;
      const intended = intendedDifference(known, p.case, p.step, f, va, vb);
      if (intended) d.intended = intended.reason;
      else if (xfail?.known) d.intended = `documented known failure of ${xfail.known.impl}: ${xfail.known.reason}`;
      else if (p.status === "FAIL" && p.knownBug) d.knownBug = p.knownBug;
      differences.push(d);
    }
    if (same) identical++;
  }
  return { compared, identical, differences };
}
