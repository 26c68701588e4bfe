/**
 * What a case step produces (StepOutcome: its status, the mismatches in words, the observation) and the pure
 * functions that name a step and settle its status: steps that do not run (SKIP, or FAIL when the sandbox could
 * not be built), and a run step's PASS/FAIL judged against known-differences.json (XFAIL, or FAIL for a listed
 * failure that passed). No I/O here; the CLI prints and serializes these objects as they are.
 */
import { knownFailure, listedFailure, type KnownDifferences, type KnownFailure } from "./known.js";
import { stepLabel, type StepDef } from "./schema.js";

type J = Record<string, unknown>;

/** What a step's action answered (and, in differential mode, the kernel state after the step). */
export interface Observation {
  ok: boolean;
  code?: number;
  msg?: string;
  runtimeError?: boolean;
  /** The plugin type that failed, when a plugin failed. */
  plugin?: string;
  result?: J;
  version?: { cniVersion?: string; supportedVersions: string[] };
  /** Normalized kernel state after the step (differential mode). */
  kernel?: J;
}

export interface ConnectOutcome {
  listen: string;
  from: string;
  to: string;
  proto: string;
  ok: boolean;
}

export interface PingOutcome {
  from: string;
  to: string;
  address: string;
  ok: boolean;
  rttMs?: number;
}

export type Status = "PASS" | "FAIL" | "SKIP" | "XFAIL";

export interface StepOutcome {
  case: string;
  /** The step label: its name or 1-based number. */
  step: string;
  /** "ADD a", "CHECK a (direct)", ... */
  title: string;
  status: Status;
  reasons: string[];
  ms: number;
  observation?: Observation;
  pings?: PingOutcome[];
  connects?: ConnectOutcome[];
  knownBug?: string;
  known?: KnownFailure;
}

/** The title of a step in output lines: the verb and what it acts on ("ADD a net1 [b.conflist] (direct)"). */
export function stepTitle(s: StepDef): string {
  return [
    s.verb,
    s.verb === "VERSION" ? `${s.plugin}@${s.cniVersion ?? "1.1.0"}` : s.pod,
    s.verb === "EXEC" ? `ip ${s.ip!.join(" ")}` : undefined,
    s.verb === "AGE" ? `${s.seconds} s` : undefined,
    s.ifname && s.ifname !== "eth0" ? s.ifname : undefined,
    s.network ? `[${s.network}]` : undefined,
    s.via === "plugin" ? "(direct)" : undefined,
  ]
    .filter(Boolean)
    .join(" ");
}

/**
 * Outcomes for steps that do not run, from step `from` on: SKIP (an unmet requirement, a plugin whose verbs have
 * not landed) or FAIL (the sandbox could not be built), each with the same reason and no time spent.
 */
export function notRunOutcomes(
  caseName: string,
  steps: StepDef[],
  from: number,
  status: "SKIP" | "FAIL",
  reason: string,
): StepOutcome[] {
  return steps.slice(from).map((s, j) => notRunOutcome(caseName, s, from + j, status, reason));
}

/** The outcome of step `index` when it does not run (see notRunOutcomes). */
export function notRunOutcome(
  caseName: string,
  s: StepDef,
  index: number,
  status: "SKIP" | "FAIL",
  reason: string,
): StepOutcome {
  return { case: caseName, step: stepLabel(s, index), title: stepTitle(s), status, reasons: [reason], ms: 0 };
}

/** What a run step recorded, before its status is judged. */
export interface StepRecord {
  observation: Observation;
  reasons: string[];
  pings: PingOutcome[];
  connects: ConnectOutcome[];
}

/**
 * A run step's outcome: PASS without mismatches, else FAIL; then known-differences.json has its say for this
 * implementation: a documented failure becomes XFAIL, and a listed failure that passed becomes a FAIL (so the list
 * stays exact). `knownBug` (the step's, else the case's) is kept on failures only.
 */
export function judgeStep(
  caseName: string,
  label: string,
  title: string,
  rec: StepRecord,
  ms: number,
  knownBug: string | undefined,
  known: KnownDifferences,
  impl: string,
): StepOutcome {
  const { reasons, pings, connects } = rec;
  const o: StepOutcome = {
    case: caseName,
    step: label,
    title,
    status: reasons.length === 0 ? "PASS" : "FAIL",
    reasons,
    ms,
    observation: rec.observation,
    ...(pings.length ? { pings } : {}),
    ...(connects.length ? { connects } : {}),
    ...(knownBug && reasons.length ? { knownBug } : {}),
  };
  if (o.status === "FAIL") {
    const kf = knownFailure(known, impl, caseName, label, reasons.join("\n"));
    if (kf) Object.assign(o, { status: "XFAIL", known: kf });
  } else {
    const listed = listedFailure(known, impl, caseName, label);
    if (listed) {
      o.status = "FAIL";
      o.reasons = [
        `known-differences.json lists this step as failing for ${impl} ("${listed.reason}"), but it passed: remove the entry`,
      ];
    }
  }
  return o;
}
