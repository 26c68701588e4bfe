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
import { tickInUsec, type Tbf } from "./tbf.js";

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
  options?: { flowid?: string; actions?: Array<{ kind?: string; mirred_action?: string; direction?: string; to_dev?: string }> };
}

/** The burst tc shows for a tbf: its buffer's ticks back to time, times the rate (tc_calc_xmitsize). */
export function shownBurst(t: Tbf, tick = tickInUsec()): number {
  return Math.trunc((t.rateBytes * Math.trunc(t.bufferTicks / tick)) / 1_000_000);
}

function tbfProblem(rows: QdiscRow[], dev: string, want: Tbf): string | undefined {
  const root = rows.find((q) => q.root === true);
  if (!root) return `no root qdisc on ${dev}`;
  if (root.kind !== "tbf" || root.handle !== "1:") return `the root qdisc of ${dev} is ${root.kind} ${root.handle}, not tbf 1:`;
  if (root.options?.rate !== want.rateBytes) return `${dev}: tbf rate is ${root.options?.rate ?? "unset"} bytes/s, want ${want.rateBytes}`;
  const burst = shownBurst(want);
  if (typeof root.options?.burst !== "number" || Math.abs(root.options.burst - burst) > 1) return `${dev}: tbf burst is ${root.options?.burst ?? "unset"} bytes, want ${burst}`;
  return undefined;
}

function redirectProblem(qdiscs: QdiscRow[], filters: FilterRow[], s: Shaping): string | undefined {
  if (!qdiscs.some((q) => q.kind === "ingress" && q.handle === "ffff:")) return `no ingress qdisc on ${s.veth}`;
  const redirects = filters.some((f) => f.kind === "u32" && f.pref === 1 && (f.options?.actions ?? []).some((a) => a.kind === "mirred" && a.mirred_action === "redirect" && a.direction === "egress" && a.to_dev === s.ifb));
  return redirects ? undefined : `no u32 filter on ${s.veth} redirects to ${s.ifb}`;
}

/** What differs from the layout ADD made, or undefined. The ifb must exist (the caller checked). */
export async function shapingProblem(s: Shaping): Promise<string | undefined> {
  const batch = new TcBatch().cmd("qdisc", "show", "dev", s.veth);
  if (s.egress) batch.cmd("filter", "show", "dev", s.veth, "ingress").cmd("qdisc", "show", "dev", s.ifb);
  const [veth = [], filters = [], ifb = []] = await batch.runJson<[QdiscRow[], FilterRow[], QdiscRow[]]>(undefined, "tc -json -batch (bandwidth CHECK)");
  if (s.ingress) {
    const p = tbfProblem(veth, s.veth, s.ingress);
    if (p) return p;
  }
  if (s.egress) return redirectProblem(veth, filters, s) ?? tbfProblem(ifb, s.ifb, s.egress);
  return undefined;
}
