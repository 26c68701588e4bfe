/**
 * One sync at a time, as often as asked and no more: requests that arrive while a sync runs are folded into one
 * more sync after it (a burst of watch events costs one or two syncs, not one each), and a failed sync is tried
 * again after a backoff, so a kernel that refused a batch is not hammered and not forgotten.
 *
 * @example
 *   const r = new SyncRunner(async (why) => (await syncNodes(...)).error === undefined, new Backoff({ initialMs: 1000, maxMs: 30_000 }));
 *   r.request("ADDED node4");
 *   await r.stop(); // waits for a sync in flight; routes are never left half-applied
 */
import type { Backoff } from "../../lib/kube/backoff.js";

export class SyncRunner {
  private pending: string[] = [];
  private running: Promise<void> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  /** `sync` gets why it runs ("list", "ADDED node4, DELETED node3") and says whether it succeeded. */
  constructor(
    private readonly sync: (why: string) => Promise<boolean>,
    private readonly backoff: Backoff,
    private readonly onRetry?: (delayMs: number) => void,
  ) {}

  request(why: string): void {
    if (this.stopped) return;
    if (!this.pending.includes(why)) this.pending.push(why);
    this.running ??= this.loop().finally(() => (this.running = undefined));
  }

  private async loop(): Promise<void> {
    while (this.pending.length > 0 && !this.stopped) {
      const why = this.pending.splice(0).join(", ");
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      let ok = false;
      try {
        ok = await this.sync(why);
      } catch {
        ok = false;
      }
      if (ok) this.backoff.reset();
      else if (this.pending.length === 0 && !this.stopped) {
        const delay = this.backoff.next();
        this.onRetry?.(delay);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.request("retry");
        }, delay);
      }
    }
  }

  /** Resolves when no sync is running and none is pending. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** No more syncs; waits for the one in flight, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.idle();
  }
}
