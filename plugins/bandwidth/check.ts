/**
 * CHECK: the layout ADD made is on the kernel, with the configured numbers. Stricter than the reference (1.1.1),
 * which stops at the first qdisc that is not a tbf (so a veth without any limit passes there): here the tbf must be
 * the root qdisc with the configured rate and burst, and the egress path must redirect to the attachment's ifb.
 * One `tc -json -batch` reads everything.
 *
 * @example
 *   const problem = await shapingProblem({ veth, ifb, ingress, egress }); // undefined, or what differs
 */
import { TcBatch } from "../../lib/tc/batch.js";
import type { Shaping } from "./shape.js";
import type { Tbf } from "./tbf.js";

interface QdiscRow {
  kind: string;
  handle: string;
  dev?: string;
  root?: boolean;
  options?: { rate?: number; burst?: number };
}

interface FilterRow {
  kind: string;
  pref?: number;
  options?: {
    flowid?: string;
    actions?: Array<{ kind?: string; mirred_action?: string; direction?: string; to_dev?: string }>;
  };
}

/**
 * Does the burst tc shows (the kernel's buffer, as time, times the rate) stand for the configured burst? tc shows
 * it through whole microseconds, and the reference's buffer is itself cut to whole microseconds and ticks: both
 * stay within two microseconds of transmit time (plus rounding) below the burst, never above it.
 */
export function burstMatches(shown: number, t: Tbf): boolean {
  return shown <= t.burstBytes + 1 && shown >= t.burstBytes - (t.rateBytes * 2) / 1_000_000 - 2;
}

function tbfProblem(rows: QdiscRow[], dev: string, want: Tbf): string | undefined {
  const root = rows.find((q) => q.root === true);
  if (!root) return `no root qdisc on ${dev}`;
  if (root.kind !== "tbf" || root.handle !== "1:")
    return `the root qdisc of ${dev} is ${root.kind} ${root.handle}, not tbf 1:`;
  if (root.options?.rate !== want.rateBytes)
    return `${dev}: tbf rate is ${root.options?.rate ?? "unset"} bytes/s, want ${want.rateBytes}`;
  const shown = root.options?.burst;
  if (typeof shown !== "number" || !burstMatches(shown, want))
    return `${dev}: tbf burst is ${shown ?? "unset"} bytes, want ${want.burstBytes}`;
  return undefined;
}

function redirectProblem(qdiscs: QdiscRow[], filters: FilterRow[], s: Shaping): string | undefined {
  if (!qdiscs.some((q) => q.kind === "ingress" && q.handle === "ffff:")) return `no ingress qdisc on ${s.veth}`;
  const redirects = filters.some(
    (f) =>
      f.kind === "u32" &&
      f.pref === 1 &&
      (f.options?.actions ?? []).some(
        (a) => a.kind === "mirred" && a.mirred_action === "redirect" && a.direction === "egress" && a.to_dev === s.ifb,
      ),
  );
  return redirects ? undefined : `no u32 filter on ${s.veth} redirects to ${s.ifb}`;
}

/** What differs from the layout ADD made, or undefined. The ifb must exist (the caller checked). */
export async function shapingProblem(s: Shaping): Promise<string | undefined> {
  const batch = new TcBatch().cmd("qdisc", "show", "dev", s.veth);
  if (s.egress) batch.cmd("filter", "show", "dev", s.veth, "ingress").cmd("qdisc", "show", "dev", s.ifb);
  const [veth = [], filters = [], ifb = []] = await batch.runJson<[QdiscRow[], FilterRow[], QdiscRow[]]>(
    undefined,
    "tc -json -batch (bandwidth CHECK)",
  );
  if (s.ingress) {
    const p = tbfProblem(veth, s.veth, s.ingress);
    if (p) return p;
  }
  if (s.egress) return redirectProblem(veth, filters, s) ?? tbfProblem(ifb, s.ifb, s.egress);
  return undefined;
}
