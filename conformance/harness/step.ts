/**
 * One step of a case: planned against the case environment (which pod, node, interface and expectation), its
 * action run, the answer and the kernel compared with the expectation, the kernel state snapshotted in differential
 * mode, and the status judged against known-differences.json.
 */
import { runAction, notImplemented, recordAttachment } from "./action.js";
import { checkAnswer } from "./check-answer.js";
import { checkKernel } from "./check-kernel.js";
import { attachmentKey, type CaseEnv, type RunContext, type StepPlan } from "./context.js";
import { KernelCache } from "./kernel-cache.js";
import { judgeStep, stepTitle, type StepOutcome, type StepRecord } from "./outcome.js";
import { expectFor, stepLabel, type CaseDef, type StepDef } from "./schema.js";
import { snapshotState } from "./snapshot.js";

/** Thrown by runStep when the rest of the case cannot run (its message is the reason every remaining step skips). */
export class SkipCase extends Error {}

/**
 * Resolve step `index` against the environment (pure): the step's pod, its node (the pod's, else the step's
 * `node`, else the first node), the interface (default eth0), and the expectation for implementation `impl`.
 */
export function planStep(s: StepDef, index: number, env: CaseEnv, impl: string): StepPlan {
  const pod = s.pod ? env.pods.get(s.pod) : undefined;
  const node = pod?.node ?? (s.node ? env.nodes.get(s.node)! : env.nodes.values().next().value!);
  const ifname = s.ifname ?? "eth0";
  return {
    index,
    step: s,
    label: stepLabel(s, index),
    title: stepTitle(s),
    expect: expectFor(s.expect, impl),
    ...(pod ? { pod } : {}),
    node,
    ifname,
    key: pod ? attachmentKey(pod.name, ifname) : "",
  };
}

/**
 * Run a planned step of case `caseName` and return its outcome. A failure of the harness itself (not of the
 * plugins: those are observations) becomes a "harness error" reason. Throws SkipCase when a plugin the case
 * requires answers that its verbs are not implemented in this build.
 */
export async function runStep(
  caseName: string,
  def: CaseDef,
  plan: StepPlan,
  env: CaseEnv,
  ctx: RunContext,
): Promise<StepOutcome> {
  const t0 = performance.now();
  const rec: StepRecord = { observation: { ok: true }, reasons: [], pings: [], connects: [] };
  try {
    const { obs, list } = await runAction(plan, env, ctx);
    rec.observation = obs;
    recordAttachment(env.attachments, plan, list, obs);
    const skip = notImplemented(obs, def.requires ?? [], ctx.plugins.dir);
    if (skip) throw new SkipCase(skip);
    rec.reasons.push(...checkAnswer(plan.expect, obs, plan.ifname, plan.pod?.path ?? ""));
    const k = new KernelCache();
    await checkKernel({ plan, env, ...(list ? { list } : {}), k, rec });
    if (ctx.snapshot && plan.step.verb !== "VERSION") obs.kernel = await snapshotState(k, plan.node, plan.pod);
  } catch (e) {
    if (e instanceof SkipCase) throw e;
    rec.reasons.push(`harness error: ${(e as Error).stack ?? String(e)}`);
  }
  const ms = Math.round(performance.now() - t0);
  return judgeStep(
    caseName,
    plan.label,
    plan.title,
    rec,
    ms,
    plan.step.knownBug ?? def.knownBug,
    ctx.known,
    ctx.plugins.impl,
  );
}
