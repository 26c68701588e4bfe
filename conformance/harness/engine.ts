/**
 * Running one case: build its namespaces (nodes, pods, underlay, outside host), run each step the way a runtime on
 * that node would (CniRuntime, plugins executed inside the node namespace), and compare what the plugins answered
 * and what the kernel shows with the case's expectations. Everything the case created is removed in `finally`.
 *
 * The pieces, each in its own module and taking explicit context objects (context.ts):
 *   topology.ts      the case's namespaces, files and runtimes (buildTopology, teardownCase)
 *   step.ts          one step: planStep (pure), runStep (action, checks, snapshot, judgement)
 *   action.ts        the step's CNI call or harness action, and the attachment an ADD leaves
 *   check-answer.ts  the answer against the expectation (pure)
 *   check-kernel.ts  links, routes, sysctls, nat, pings, connects, gone, counts
 *   snapshot.ts      the normalized kernel state differential mode compares (diff.ts)
 *   outcome.ts       the outcome types, step titles, not-run outcomes, known-differences judgement (pure)
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { RunContext } from "./context.js";
import { caseTypes, unmet } from "./features.js";
import { notRunOutcome, notRunOutcomes, type StepOutcome } from "./outcome.js";
import { validateCase, topologyOf, type CaseDef } from "./schema.js";
import { planStep, runStep, SkipCase } from "./step.js";
import { buildTopology, newCaseEnv, teardownCase } from "./topology.js";

export type { RunContext } from "./context.js";
export type { ConnectOutcome, Observation, PingOutcome, Status, StepOutcome } from "./outcome.js";
export { reservations } from "./reservations.js";
export { OUTSIDE4, OUTSIDE6, UNDERLAY4, UNDERLAY6 } from "./topology.js";
export { partialMatch } from "./match.js";

export interface LoadedCase {
  name: string;
  dir: string;
  def: CaseDef;
}

/** The files of each node's config directory (node name -> file names), for validation. */
function confFilesOf(dir: string, def: CaseDef): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const n of topologyOf(def).nodes) {
    try {
      out[n.name] = readdirSync(join(dir, n.confDir ?? "net.d"));
    } catch {
      out[n.name] = [];
    }
  }
  return out;
}

/** Read and validate conformance/cases/NAME; throws with every problem found. */
export function loadCase(dir: string): LoadedCase {
  const file = join(dir, "case.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const def = raw as CaseDef;
  const files = confFilesOf(dir, def);
  const problems = validateCase(raw, files);
  for (const [node, list] of Object.entries(files))
    if (list.length === 0) problems.push(`node ${node}: its config directory is empty or missing`);
  if (problems.length > 0) throw new Error(`${file}:\n  ${problems.join("\n  ")}`);
  return { name: basename(dir), dir, def };
}

/** Case directories (those with a case.json) under `casesDir`, sorted. */
export function listCases(casesDir: string): string[] {
  return readdirSync(casesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(casesDir, e.name, "case.json")))
    .map((e) => e.name)
    .sort();
}

/**
 * Run one case; one outcome per step, in order, each also given to `ctx.onStep` as it is settled. A case whose
 * requirements are unmet skips every step; a sandbox that cannot be built fails every step; a plugin whose verbs
 * have not landed skips the rest of the case.
 */
export async function runCase(c: LoadedCase, ctx: RunContext): Promise<StepOutcome[]> {
  const { def } = c;
  const topo = topologyOf(def);
  const outcomes: StepOutcome[] = [];
  const emit = (o: StepOutcome) => {
    outcomes.push(o);
    ctx.onStep?.(o);
  };

  const used = caseTypes(topo.nodes.map((n) => join(c.dir, n.confDir ?? "net.d")));
  const caseUnmet = unmet(def.requires ?? [], used, ctx.plugins, ctx.machine);
  if (caseUnmet) {
    notRunOutcomes(c.name, def.steps, 0, "SKIP", caseUnmet).forEach(emit);
    return outcomes;
  }

  const env = newCaseEnv(ctx);
  try {
    try {
      buildTopology(env, ctx, c.dir, topo);
    } catch (e) {
      notRunOutcomes(c.name, def.steps, 0, "FAIL", `sandbox setup failed: ${(e as Error).message}`).forEach(emit);
      return outcomes;
    }
    for (let i = 0; i < def.steps.length; i++) {
      const s = def.steps[i]!;
      const stepUnmet = unmet(s.requires ?? [], used, ctx.plugins, ctx.machine);
      if (stepUnmet) {
        emit(notRunOutcome(c.name, s, i, "SKIP", stepUnmet));
        continue;
      }
      try {
        emit(await runStep(c.name, def, planStep(s, i, env, ctx.plugins.impl), env, ctx));
      } catch (e) {
        if (!(e instanceof SkipCase)) throw e;
        notRunOutcomes(c.name, def.steps, i, "SKIP", e.message).forEach(emit);
        return outcomes;
      }
    }
    return outcomes;
  } finally {
    teardownCase(env, ctx);
  }
}
