/**
 * The traffic-control layout of the reference (1.1.1), built as one `tc -batch`:
 *   - ingress (traffic to the pod): a tbf as the root qdisc of the host veth, handle 1:;
 *   - egress (traffic from the pod): an ingress qdisc (ffff:) on the host veth whose u32 match-all filter (prio 1,
 *     flowid 1:1) redirects every packet to the ifb, and a tbf as the root qdisc of the ifb, handle 1:.
 * A failing line undoes the lines before it, so a failed ADD leaves the node as it found it.
 *
 * @example
 *   await applyShaping({ veth: "veth1a2b", ifb: "bwp0123456789ab", ingress: tbfFor(8e6, 8e4), egress: undefined });
 */
import { TcBatch, linesApplied } from "../../lib/tc/batch.js";
import { tbfArgs, type Tbf } from "./tbf.js";

export interface Shaping {
  veth: string;
  ifb: string;
  ingress: Tbf | undefined;
  egress: Tbf | undefined;
}

interface Line {
  tokens: Array<string | number>;
  /** The tc command that removes what this line added (undefined: removed with an earlier one, or with the ifb). */
  undo?: Array<string | number>;
}

/** The lines of the layout, in the reference's order. */
export function shapingLines(s: Shaping): Line[] {
  const lines: Line[] = [];
  if (s.ingress)
    lines.push({
      tokens: ["qdisc", "add", "dev", s.veth, "root", "handle", "1:", ...tbfArgs(s.ingress)],
      undo: ["qdisc", "del", "dev", s.veth, "root"],
    });
  if (s.egress) {
    lines.push({
      tokens: ["qdisc", "add", "dev", s.veth, "handle", "ffff:", "ingress"],
      undo: ["qdisc", "del", "dev", s.veth, "ingress"],
    });
    lines.push({
      tokens: [
        "filter",
        "add",
        "dev",
        s.veth,
        "parent",
        "ffff:",
        "protocol",
        "all",
        "prio",
        1,
        "u32",
        "match",
        "u32",
        0,
        0,
        "flowid",
        "1:1",
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        s.ifb,
      ],
    });
    lines.push({ tokens: ["qdisc", "add", "dev", s.ifb, "root", "handle", "1:", ...tbfArgs(s.egress)] });
  }
  return lines;
}

/** Install the layout; on failure remove what the batch added before the failing line, then rethrow. */
export async function applyShaping(s: Shaping): Promise<void> {
  const lines = shapingLines(s);
  const batch = new TcBatch();
  for (const l of lines) batch.cmd(...l.tokens);
  try {
    await batch.run(undefined, "tc -batch (bandwidth)");
  } catch (e) {
    const undo = new TcBatch();
    for (const l of lines.slice(0, linesApplied(e)).reverse()) if (l.undo) undo.cmd(...l.undo);
    await undo.run(undefined, "tc -batch (bandwidth undo)").catch(() => undefined);
    throw e;
  }
}
