/**
 * Figures of the reliability suite: every test reports what it measured with `report(section, figures)`. The line is
 * printed, and appended as JSON to $CNI_TS_RELIABILITY_OUT when set (scripts/soak.mjs sets it and prints a summary;
 * docs/reliability.md holds the figures of the last soak).
 */
import { appendFileSync } from "node:fs";

/** `npm run soak` sets CNI_TS_SOAK=1: the full counts of issue 7. */
export const SOAK = /^(1|true|yes)$/i.test(process.env.CNI_TS_SOAK ?? "");

/** The seed of this run (CNI_TS_SEED to replay one). */
export const SEED = /^\d+$/.test(process.env.CNI_TS_SEED ?? "")
  ? Number(process.env.CNI_TS_SEED)
  : Date.now() % 2 ** 31;

export function report(section: string, figures: Record<string, unknown>): void {
  const line = { section, mode: SOAK ? "soak" : "short", seed: SEED, at: new Date().toISOString(), ...figures };
  console.log(`[reliability] ${JSON.stringify(line)}`);
  const out = process.env.CNI_TS_RELIABILITY_OUT;
  if (out) appendFileSync(out, `${JSON.stringify(line)}\n`);
}
