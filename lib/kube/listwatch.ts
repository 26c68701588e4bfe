/**
 * List, then watch, forever: the reflector loop of client-go, small. It keeps an ObjectCache current and calls
 * `onChange` after a list and after every event that changed something.
 *
 * - the list is paged (`limit`/`continue`); its resourceVersion is where the watch starts;
 * - the watch asks for bookmarks (the resourceVersion moves on while nothing changes, so a reconnect does not
 *   replay or fall out of the server's window) and a server-side timeout (a randomised 5-10 minutes, as
 *   client-go does, so that a DaemonSet's watches do not all end together);
 * - a watch the server ends is started again at once from the last resourceVersion;
 * - `410 Gone` (as an HTTP status or an ERROR event: the resourceVersion left the server's window) means list
 *   again; any other failure (refused, dropped, silent, malformed, 5xx) waits a backoff with jitter, then watches
 *   again from the last resourceVersion, or lists if there was none;
 * - every `resyncMs` the watch is closed and the list is read again in full, whatever the watch said;
 * - the first watch that opens after failures calls onChange("reconnected"), so that the node is checked against
 *   the cache as soon as the API is back.
 *
 * Nothing here changes state outside the cache: an unreachable API means no calls to onChange, never an empty
 * one.
 *
 * @example
 *   const lw = new ListWatch({ client, path: "/api/v1/nodes", cache, resyncMs: 300_000, onChange: () => ... });
 *   await lw.run(abortSignal);
 */
import { Backoff, type BackoffPolicy } from "./backoff.js";
import { type ObjectCache, resourceVersionOf } from "./cache.js";
import { ApiError, type KubeClient } from "./client.js";
import type { WatchEvent } from "./watchstream.js";

/** Why a watch ended and another begins; the label of the watch-restart counter. */
export type RestartReason = "closed" | "gone" | "error" | "resync";

export interface ListWatchHooks {
  /** After a successful list or an event that changed the cache; `why` for logs ("list", "ADDED node3", ...). */
  onChange(why: string): void;
  onEvent?(ev: WatchEvent): void;
  onList?(
    items: number,
    resourceVersion: string | undefined,
    refused: Array<{ name: string | undefined; message: string }>,
  ): void;
  onRestart?(reason: RestartReason, detail: string, delayMs: number): void;
  onRefused?(name: string | undefined, message: string): void;
}

export interface ListWatchOptions<T> extends ListWatchHooks {
  client: KubeClient;
  /** A collection path, e.g. /api/v1/nodes. */
  path: string;
  cache: ObjectCache<T>;
  resyncMs: number;
  /** For list pages and the start of a watch. */
  requestTimeoutMs: number;
  pageSize?: number;
  backoff?: BackoffPolicy;
  /** Server-side watch timeout range in seconds; [300, 600] unless told. */
  watchSeconds?: [number, number];
  random?: () => number;
}

class GoneError extends Error {}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

export class ListWatch<T> {
  private readonly backoff: Backoff;
  private readonly random: () => number;
  /** A request failed since the last watch that opened. */
  private failing = false;

  constructor(private readonly o: ListWatchOptions<T>) {
    this.random = o.random ?? Math.random;
    this.backoff = new Backoff(o.backoff ?? { initialMs: 500, maxMs: 30_000, jitter: 0.5 }, this.random);
  }

  /** Every page of the collection, then the cache replaced at once (a half-read list is never used); onChange("list"). */
  async list(signal: AbortSignal): Promise<void> {
    const items: unknown[] = [];
    let cont = "";
    let rv: string | undefined;
    for (;;) {
      const q = new URLSearchParams({ limit: String(this.o.pageSize ?? 500) });
      if (cont) q.set("continue", cont);
      const page = (await this.o.client.getJson(`${this.o.path}?${q}`, {
        timeoutMs: this.o.requestTimeoutMs,
        signal,
      })) as { items?: unknown; metadata?: { continue?: unknown } };
      if (page === null || typeof page !== "object" || !Array.isArray(page.items))
        throw new ApiError(200, "BadList", `GET ${this.o.path}: the answer has no items array`);
      items.push(...page.items);
      rv = resourceVersionOf(page);
      cont = typeof page.metadata?.continue === "string" ? page.metadata.continue : "";
      if (!cont) break;
    }
    const refused = this.o.cache.replace(items, rv);
    this.o.onList?.(items.length, rv, refused);
    this.o.onChange("list");
  }

  /** One watch from the cache's resourceVersion, until it ends ("closed"), or `until` (ms epoch: "resync"). */
  private async watch(signal: AbortSignal, until: number): Promise<"closed" | "resync"> {
    const [lo, hi] = this.o.watchSeconds ?? [300, 600];
    const remaining = Math.max(1, Math.ceil((until - Date.now()) / 1000));
    const timeoutSeconds = Math.min(remaining, Math.round(lo + (hi - lo) * this.random()));
    const q = new URLSearchParams({ watch: "1", allowWatchBookmarks: "true", timeoutSeconds: String(timeoutSeconds) });
    if (this.o.cache.resourceVersion !== undefined) q.set("resourceVersion", this.o.cache.resourceVersion);
    const local = new AbortController();
    const stop = () => local.abort();
    signal.addEventListener("abort", stop, { once: true });
    let resync = false;
    const timer = setTimeout(
      () => {
        resync = true;
        local.abort();
      },
      Math.max(0, until - Date.now()),
    );
    try {
      await this.o.client.watch(`${this.o.path}?${q}`, {
        // The server's own timeout plus a margin: bookmarks come about every minute, so a minute of silence past
        // the end the server promised means the connection is dead without having said so.
        idleMs: (timeoutSeconds + 60) * 1000,
        timeoutMs: this.o.requestTimeoutMs,
        signal: local.signal,
        onOpen: () => {
          // Back after failures: sync once against what is known, so that anything that drifted on the node
          // while the API was away is put right now, not at the next resync. (Missed events replay on this watch.)
          if (this.failing) this.o.onChange("reconnected");
          this.failing = false;
        },
        onEvent: (ev) => this.event(ev),
      });
      return "closed";
    } catch (e) {
      if (resync) return "resync";
      throw e;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  }

  private event(ev: WatchEvent): void {
    this.o.onEvent?.(ev);
    const out = this.o.cache.apply(ev);
    // Anything that arrived intact shows the connection works: the next failure starts from a short delay.
    this.backoff.reset();
    switch (out.kind) {
      case "changed":
        this.o.onChange(`${ev.type} ${out.name}`);
        break;
      case "refused":
        this.o.onRefused?.(out.name, out.message);
        break;
      case "error":
        if (out.gone)
          throw new GoneError(`the watch's resourceVersion is too old (${out.code} ${out.reason}: ${out.message})`);
        throw new ApiError(
          out.code,
          out.reason,
          `the watch ended with an error: ${out.code} ${out.reason}: ${out.message}`,
        );
      case "unchanged":
        break;
    }
  }

  /** Run until the signal; resolves then (never rejects). */
  async run(signal: AbortSignal): Promise<void> {
    let resyncAt = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList || Date.now() >= resyncAt) {
          await this.list(signal);
          this.backoff.reset();
          needList = false;
          resyncAt = Date.now() + this.o.resyncMs;
        }
        const started = Date.now();
        const end = await this.watch(signal, resyncAt);
        if (signal.aborted) break;
        if (end === "resync") {
          needList = true;
          this.o.onRestart?.("resync", "periodic full list", 0);
          continue;
        }
        // A server that ends watches at once, over and over, is failing: do not spin on it.
        const delay = Date.now() - started < 1000 ? this.backoff.next() : 0;
        this.o.onRestart?.("closed", "the server ended the watch", delay);
        if (delay > 0) await sleep(delay, signal);
      } catch (e) {
        if (signal.aborted) break;
        const gone = e instanceof GoneError || (e instanceof ApiError && e.status === 410);
        if (gone) {
          needList = true;
          // The first 410 is answered at once; 410s in a row with nothing working in between back off too.
          const first = this.backoff.failures === 0;
          const next = this.backoff.next();
          const delay = first ? 0 : next;
          this.o.onRestart?.("gone", (e as Error).message, delay);
          if (delay > 0) await sleep(delay, signal);
          continue;
        }
        // A list that failed half-way is read again from the start; a watch resumes from the last resourceVersion.
        if (this.o.cache.resourceVersion === undefined) needList = true;
        this.failing = true;
        const delay = this.backoff.next();
        this.o.onRestart?.("error", (e as Error).message, delay);
        await sleep(delay, signal);
      }
    }
  }
}
