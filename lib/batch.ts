/**
 * A validated `-batch -` script for an iproute2 tool (`ip`, `tc`): every change of one namespace side in one process.
 *
 * Batch lines are a command language: iproute2 splits them on whitespace, honours quotes and `#` comments, and reads
 * a leading `-` as an option. Names were validated where they entered (lib/validate); this builder refuses any token
 * that could still change the meaning of a line, as a last guard. A failing line is a ToolError whose `failedLine` is
 * that line (without the tool's name), `failedIndex` its position (how many lines before it took effect), and `kind`
 * what the kernel answered. lib/ip/batch.ts and lib/tc/batch.ts add what each tool's output needs.
 */
import { CniError, ErrorCode } from "./errors.js";
import { run, toolFailure } from "./exec.js";
import { inNetns } from "./netns.js";
import { ToolError } from "./tool-error.js";

const UNSAFE_TOKEN = /[\s"'\\#\x00-\x1f\x7f]/;

export type Token = string | number;

export abstract class ToolBatch {
  protected readonly lines: string[] = [];

  /**
   * @param tool the iproute2 program (`ip`, `tc`)
   * @param refuseDash whether a token may not start with `-` (tc reads one as an option anywhere on a line)
   */
  protected constructor(
    private readonly tool: string,
    private readonly refuseDash = false,
  ) {}

  /** Append one command (without the tool's name). Throws (code 999) on a token that could change the line. */
  cmd(...tokens: Token[]): this {
    this.lines.push(tokens.map((t) => this.checkToken(t)).join(" "));
    return this;
  }

  get length(): number {
    return this.lines.length;
  }

  /** The script as the tool reads it on stdin. */
  text(): string {
    return this.lines.map((l) => `${l}\n`).join("");
  }

  /** Run the lines (with `options` before `-batch -`) in the namespace at `netns`, ours when undefined; stdout. */
  protected async exec(
    options: readonly string[],
    netns: string | undefined,
    what: string,
    timeoutMs?: number,
  ): Promise<string> {
    const [file, args] = inNetns(netns, this.tool, [...options, "-batch", "-"]);
    const r = await run(file, args, { input: this.text(), timeoutMs });
    if (r.code === 0 && !r.timedOut) return r.stdout;
    const failure = toolFailure(file, what, r);
    const n = r.timedOut ? undefined : failedBatchIndex(r.stderr);
    const line = n === undefined ? undefined : this.lines[n - 1];
    if (line === undefined) throw failure;
    const stderr = batchReason(r.stderr);
    throw new ToolError({
      tool: failure.tool,
      what: `${this.tool} ${line}`,
      status: r.code,
      stderr,
      kind: failure.kind,
      failedLine: line,
      failedIndex: n! - 1,
    });
  }

  private checkToken(t: Token): string {
    const s = String(t);
    if (s === "" || UNSAFE_TOKEN.test(s) || (this.refuseDash && s.startsWith("-"))) {
      throw new CniError(
        ErrorCode.Internal,
        `refusing unsafe ${this.tool} -batch token ${JSON.stringify(s.slice(0, 64))}`,
      );
    }
    return s;
  }
}

/** The number (1-based) of the batch line iproute2 names in "Command failed -:N", or undefined when it names none. */
export function failedBatchIndex(stderr: string): number | undefined {
  const m = /Command failed -:(\d+)/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** The batch line iproute2 names in "Command failed -:N", or undefined when it names none (or one not in `lines`). */
export function failedBatchLine(stderr: string, lines: readonly string[]): string | undefined {
  const n = failedBatchIndex(stderr);
  return n === undefined ? undefined : lines[n - 1];
}

/** iproute2's complaint without its batch bookkeeping ("Command failed -:N"). */
export function batchReason(stderr: string): string {
  return stderr.replace(/\s*Command failed -:\d+\s*/g, " ").trim();
}
