/**
 * A validated `ip -batch -` script: one spawn per namespace side instead of one per attribute.
 *
 * Batch lines are a command language: iproute2 splits them on whitespace, honours quotes and `#` comments,
 * and reads a leading `-` as an option. Names were validated where they entered (lib/validate); this builder
 * refuses any token that could still change the meaning of a line, as a last guard.
 *
 * A failing line is a ToolError whose `failedLine` is that line (without the leading `ip`) and whose `kind` says what
 * the kernel answered, so a caller tells "the bridge's own `link add` found it there" from any other failure.
 *
 * @example
 *   await new IpBatch().cmd("link", "set", "dev", "eth0", "up").cmd("addr", "add", "10.1.2.3/24", "dev", "eth0").run("/var/run/netns/pod");
 */
import { CniError, ErrorCode } from "../errors.js";
import { runOk } from "../exec.js";
import { inNetns } from "../netns.js";
import { ToolError } from "../tool-error.js";

const UNSAFE_TOKEN = /[\s"'\\#\x00-\x1f\x7f]/;

export type Token = string | number;

export class IpBatch {
  private readonly lines: string[] = [];

  /** Append one command (without the leading `ip`). */
  cmd(...tokens: Token[]): this {
    this.lines.push(tokens.map(checkToken).join(" "));
    return this;
  }

  get length(): number {
    return this.lines.length;
  }

  text(): string {
    return this.lines.map((l) => l + "\n").join("");
  }

  /** Run every line in the namespace at `netns` (ours when undefined); the first failing line aborts the rest. */
  async run(netns?: string, what = "ip -batch"): Promise<void> {
    if (this.lines.length === 0) return;
    await this.exec([], netns, what);
  }

  /**
   * Run the lines with `-json` and parse what the last one shows (one `show` command, last): a change and the read
   * of its outcome in one process instead of two.
   *
   * @example
   *   const [lo] = await new IpBatch().cmd("link", "set", "dev", "lo", "up").cmd("addr", "show", "dev", "lo").runJson<LinkAddrs[]>(netns);
   */
  async runJson<T>(netns?: string, what = "ip -json -batch"): Promise<T> {
    const text = (await this.exec(["-json"], netns, what)).trim();
    if (text === "") return [] as unknown as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CniError(ErrorCode.DecodingFailure, `${what}: unparsable JSON output`, text.slice(0, 200));
    }
  }

  private async exec(options: string[], netns: string | undefined, what: string): Promise<string> {
    const [file, args] = inNetns(netns, "ip", [...options, "-batch", "-"]);
    try {
      return await runOk(file, args, { input: this.text(), what });
    } catch (e) {
      throw explainBatchFailure(e, this.lines);
    }
  }
}

function checkToken(t: Token): string {
  const s = String(t);
  if (s === "" || UNSAFE_TOKEN.test(s)) {
    throw new CniError(ErrorCode.Internal, `refusing unsafe ip -batch token ${JSON.stringify(s)}`);
  }
  return s;
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

/** ip reports "Command failed -:N": name the command itself so the error says what did not work, and keep the line. */
function explainBatchFailure(e: unknown, lines: readonly string[]): unknown {
  if (!(e instanceof ToolError) || e.kind === "timeout") return e;
  const line = failedBatchLine(e.stderr, lines);
  if (line === undefined) return e;
  const stderr = batchReason(e.stderr);
  return new ToolError({ tool: e.tool, what: `ip ${line}`, status: e.status, stderr, kind: e.kind, failedLine: line });
}
