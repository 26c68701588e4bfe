/**
 * conformance/known-differences.json: the documented ways an implementation is expected to fail a case step
 * (reference bugs, version gaps), and the intended differences between implementations that differential mode
 * reports apart from unexpected ones. Every entry has a reason.
 */
import { readFileSync } from "node:fs";

export interface KnownFailure {
  /** Implementation the failure is expected from ("reference", "cni-ts"). */
  impl: string;
  /** Case name (a `*` glob is allowed). */
  case: string;
  /** Step label (name or 1-based number), or "*". */
  step: string;
  /** Regex the failure text must match, so only the documented failure is excused. */
  match?: string;
  reason: string;
}

export interface IntendedDifference {
  case: string;
  step: string;
  /** Observation field path (glob), e.g. "error.code", "result.dns", "kernel.node.links.*". */
  field: string;
  /** Regexes the primary's / the reference's value must match for the entry to apply (default: any). */
  primary?: string;
  reference?: string;
  reason: string;
}

export interface KnownDifferences {
  failures: KnownFailure[];
  intended: IntendedDifference[];
}

function glob(pattern: string, s: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(s);
}

export function loadKnown(file: string): KnownDifferences {
  const raw = JSON.parse(readFileSync(file, "utf8")) as Partial<KnownDifferences>;
  const k = { failures: raw.failures ?? [], intended: raw.intended ?? [] };
  const problems = validateKnown(k);
  if (problems.length > 0) throw new Error(`${file}: ${problems.join("; ")}`);
  return k;
}

export function validateKnown(k: KnownDifferences): string[] {
  const out: string[] = [];
  k.failures.forEach((f, i) => {
    for (const key of ["impl", "case", "step", "reason"] as const)
      if (typeof f[key] !== "string" || !f[key]) out.push(`failures[${i}].${key} missing`);
    if (f.match !== undefined) {
      try {
        new RegExp(f.match);
      } catch {
        out.push(`failures[${i}].match is not a regex`);
      }
    }
  });
  k.intended.forEach((d, i) => {
    for (const key of ["case", "step", "field", "reason"] as const)
      if (typeof d[key] !== "string" || !d[key]) out.push(`intended[${i}].${key} missing`);
  });
  return out;
}

/** The entry that excuses this failure, if any. */
export function knownFailure(
  k: KnownDifferences,
  impl: string,
  caseName: string,
  step: string,
  text: string,
): KnownFailure | undefined {
  return k.failures.find(
    (f) =>
      f.impl === impl &&
      glob(f.case, caseName) &&
      (f.step === "*" || f.step === step) &&
      (f.match === undefined || new RegExp(f.match).test(text)),
  );
}

/** Entries for this step that ignore the failure text (to detect entries that no longer apply). */
export function listedFailure(
  k: KnownDifferences,
  impl: string,
  caseName: string,
  step: string,
): KnownFailure | undefined {
  return k.failures.find((f) => f.impl === impl && glob(f.case, caseName) && (f.step === "*" || f.step === step));
}

export function intendedDifference(
  k: KnownDifferences,
  caseName: string,
  step: string,
  field: string,
  primary = "",
  reference = "",
): IntendedDifference | undefined {
  return k.intended.find(
    (d) =>
      glob(d.case, caseName) &&
      (d.step === "*" || d.step === step) &&
      glob(d.field, field) &&
      (d.primary === undefined || new RegExp(d.primary).test(primary)) &&
      (d.reference === undefined || new RegExp(d.reference).test(reference)),
  );
}
