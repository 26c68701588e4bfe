/**
 * Reconnect delays: exponential with a cap, and jitter so that every node of a cluster does not hit a returning
 * API server in the same millisecond (a DaemonSet restarts its watches together when the server comes back).
 *
 * @example
 *   const b = new Backoff({ initialMs: 500, maxMs: 30_000 });
 *   await sleep(b.next()); // 250..500 ms, then 500..1000, ... up to 15..30 s
 *   b.reset();             // after something worked
 */

export interface BackoffPolicy {
  /** The first delay (before jitter). */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  /** Growth per failure; 2 unless told. */
  factor?: number;
  /** The fraction of a delay that is random, 0..1: a delay lies in [base * (1 - jitter), base]. 0.5 unless told. */
  jitter?: number;
}

/** The delay before retry number `attempt` (0-based); `random` in [0, 1). Pure, for tests. */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: number): number {
  const factor = p.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, p.jitter ?? 0.5));
  // Capped before the power overflows to Infinity for a long outage.
  const base = Math.min(p.maxMs, p.initialMs * factor ** Math.min(attempt, 64));
  return Math.round(base * (1 - jitter * random));
}

/** A failure counter that hands out the next delay. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.attempt++, this.policy, this.random());
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}
