/**
 * A validated `tc -batch -` script: every traffic-control change of one namespace side in one process.
 *
 * Tokens are checked (a leading `-` refused too: tc reads it as an option) and a failing line named as lib/batch.ts
 * describes, so a caller can undo exactly the lines before it.
 *
 * @example
 *   await new TcBatch().cmd("qdisc", "add", "dev", "veth1", "root", "handle", "1:", "tbf", "rate", "125000bps", "burst", 5000, "limit", 8125).run();
 */
import { ToolBatch } from "../batch.js";
import { CniError, ErrorCode } from "../errors.js";
import { ToolError } from "../tool-error.js";

export type TcToken = string | number;

export class TcBatch extends ToolBatch {
  constructor() {
    super("tc", true);
  }

  /**
   * Run every line (in the namespace at `netns`, ours when undefined). tc stops at the first failing line; the
   * ToolError thrown then has `failedLine` set and `failedIndex` tells how many lines before it took effect.
   */
  async run(netns?: string, what = "tc -batch"): Promise<void> {
    if (this.lines.length > 0) await this.exec([], netns, what, TC_TIMEOUT_MS);
  }

  /**
   * Run `show` lines with `-json`: tc prints one JSON array per line, in order. Returns them parsed.
   *
   * @example
   *   const [qdiscs, filters] = await new TcBatch().cmd("qdisc", "show").cmd("filter", "show", "dev", "veth1", "ingress").runJson<[Qdisc[], Filter[]]>();
   */
  async runJson<T extends unknown[]>(netns?: string, what = "tc -json -batch"): Promise<T> {
    if (this.lines.length === 0) return [] as unknown as T;
    const out = await this.exec(["-json"], netns, what, TC_TIMEOUT_MS);
    try {
      return out
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as unknown) as T;
    } catch {
      throw new CniError(ErrorCode.DecodingFailure, `${what}: unparsable JSON output`, out.slice(0, 200));
    }
  }
}

/** tc answers at once or not at all: a pod's shaping is a few qdisc lines. */
const TC_TIMEOUT_MS = 10_000;

/** How many lines of a failed batch took effect before the one that failed (0 when unknown). */
export function linesApplied(e: unknown): number {
  const i = e instanceof ToolError ? e.failedIndex : undefined;
  return i !== undefined && i > 0 ? i : 0;
}
