/**
 * A validated `ip -batch -` script: one spawn per namespace side instead of one per attribute.
 *
 * Tokens are checked and a failing line named as lib/batch.ts describes: a caller tells "the bridge's own `link add`
 * found it there" (`failedLine`, `kind === "exists"`) from any other failure.
 *
 * @example
 *   await new IpBatch().cmd("link", "set", "dev", "eth0", "up").cmd("addr", "add", "10.1.2.3/24", "dev", "eth0").run("/var/run/netns/pod");
 */
import { CniError, ErrorCode } from "../errors.js";
import { ToolBatch } from "../batch.js";

export class IpBatch extends ToolBatch {
  constructor() {
    super("ip");
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
}
