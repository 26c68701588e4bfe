/**
 * Durations an operator sets in the runtime's environment (CNI_TS_*_TIMEOUT_MS): one rule for all of them, so each
 * is refused the same way when it is not a whole number of milliseconds in range (code 4) rather than silently
 * replaced by the default.
 *
 * @example
 *   const ms = msFromEnv(env, "CNI_TS_STDIN_TIMEOUT_MS", 10_000); // 10 s unless the variable says otherwise
 */
import { CniError, ErrorCode } from "./errors.js";

export const MIN_MS = 100;
export const MAX_MS = 600_000;

/** `env[name]` as milliseconds between 100 and 600,000; `dflt` when unset or empty. */
export function msFromEnv(env: Readonly<Record<string, string | undefined>>, name: string, dflt: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return dflt;
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= MIN_MS && n <= MAX_MS)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `${name} must be a whole number of milliseconds between ${MIN_MS} and ${MAX_MS}`,
      `got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return n;
}
