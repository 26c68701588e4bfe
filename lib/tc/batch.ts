/**
 * A validated `tc -batch -` script: every traffic-control change of one namespace side in one process.
 *
 * Batch lines are a command language, as for `ip -batch` (lib/ip/batch.ts): tc splits them on whitespace, honours
 * quotes and `#` comments, and reads a leading `-` as an option. Every token is checked here, as a last guard behind
 * the validation that happened where the values entered. A failure is a ToolError naming the line that failed, so a
 * caller can undo exactly the lines before it.
 *
 * @example
 *   await new TcBatch().cmd("qdisc", "add", "dev", "veth1", "root", "handle", "1:", "tbf", "rate", "125000bps", "burst", 5000, "limit", 8125).run();
 */
import { run } from "../exec.js";
import { CniError, ErrorCode } from "../errors.js";
import { inNetns } from "../netns.js";
import { ToolError } from "../tool-error.js";

const UNSAFE_TOKEN = /[\s"'\\#\x00-\x1f\x7f]/;

export type TcToken = string | number;

export class TcBatch {
  private readonly lines: string[] = [];

  /** Append one command (without the leading `tc`). Throws (code 999) on a token that could change the line. */
  cmd(...tokens: TcToken[]): this {
    this.lines.push(tokens.map(checkTcToken).join(" "));
    return this;
  }

  get length(): number {
    return this.lines.length;
  }

  /** The script as tc reads it. */
  text(): string {
    return this.lines.map((l) => l + "\n").join("");
  }

  /**
   * Run every line (in the namespace at `netns`, ours when undefined). tc stops at the first failing line; the
   * ToolError thrown then has `failedLine` set and `failedIndex` tells how many lines before it took effect.
   */
  async run(netns?: string, what = "tc -batch"): Promise<void> {
    if (this.lines.length > 0) await this.exec([], netns, what);
  }

  /**
   * Run `show` lines with `-json`: tc prints one JSON array per line, in order. Returns them parsed.
   *
   * @example
   *   const [qdiscs, filters] = await new TcBatch().cmd("qdisc", "show").cmd("filter", "show", "dev", "veth1", "ingress").runJson<[Qdisc[], Filter[]]>();
   */
  async runJson<T extends unknown[]>(netns?: string, what = "tc -json -batch"): Promise<T> {
    const out = await this.exec(["-json"], netns, what);
    try {
      return out.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as unknown) as T;
    } catch {
      throw new CniError(ErrorCode.DecodingFailure, `${what}: unparsable JSON output`, out.slice(0, 200));
    }
  }

  private async exec(options: string[], netns: string | undefined, what: string): Promise<string> {
    if (this.lines.length === 0) return "";
    const [file, args] = inNetns(netns, "tc", [...options, "-batch", "-"]);
    const r = await run(file, args, { input: this.text(), timeoutMs: 10_000 });
    if (r.timedOut) throw new ToolError({ tool: "tc", what, status: null, stderr: r.stderr, kind: "timeout" });
    if (r.code === 0) return r.stdout;
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const index = m ? Number(m[1]) - 1 : -1;
    const failedLine = index >= 0 ? this.lines[index] : undefined;
    const stderr = r.stderr.replace(/\s*Command failed -:\d+\s*/g, "\n").trim();
    throw Object.assign(new ToolError({ tool: "tc", what: failedLine ? `tc ${failedLine}` : what, status: r.code, stderr, failedLine }), { failedIndex: index });
  }
}

/** How many lines of a failed batch took effect before the one that failed (0 when unknown). */
export function linesApplied(e: unknown): number {
  const i = (e as { failedIndex?: unknown } | null)?.failedIndex;
  return typeof i === "number" && i > 0 ? i : 0;
}

function checkTcToken(t: TcToken): string {
  const s = String(t);
  if (s === "" || s.startsWith("-") || UNSAFE_TOKEN.test(s)) throw new CniError(ErrorCode.Internal, `refusing unsafe tc -batch token ${JSON.stringify(s.slice(0, 64))}`);
  return s;
}
