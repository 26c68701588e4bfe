/**
 * Reading traffic control inside one of the run's namespaces (never changing it), for kernel-state checks of the
 * bandwidth plugin: the qdiscs a plugin installed (the links' defaults left out) and the ingress redirects, as
 * compact strings with per-run device names replaced, so two implementations' layouts compare field by field.
 * Everything goes through `tc -n NS -json ...`, so the reading process never leaves the root namespace.
 *
 * @example
 *   const q = await qdiscs("cts1-node");     // [{ dev: "veth1a2b", kind: "tbf", handle: "1:", root: true, rate: 1000000, burst: 10000 }]
 *   shapingView(q, await redirects("cts1-node", q)) // { "veth*": "tbf 1: root rate 1000000 burst 10000 | ingress ffff:", "bwp*": "tbf 1: root ...", redirects: "veth* -> bwp*" }
 */
import { run } from "../../lib/exec.js";

export interface KQdisc {
  dev: string;
  kind: string;
  handle: string;
  root: boolean;
  /** tbf: bytes per second, and the burst as tc shows it (bytes). */
  rate?: number;
  burst?: number;
}

export interface KRedirect {
  /** The device whose ingress qdisc holds the filter. */
  dev: string;
  /** Where its mirred action sends the packets. */
  to: string;
  kind: string;
  pref: number;
  flowid?: string;
}

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
/** What a link has before any plugin touched it. */
const DEFAULT_KINDS = new Set(["noqueue", "pfifo_fast", "mq", "fq_codel", "pfifo", "bfifo"]);

type J = Record<string, unknown>;

async function tcJson(ns: string, args: string[]): Promise<J[]> {
  const r = await run("tc", ["-n", ns, "-json", ...args], { env: { PATH }, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`tc -n ${ns} ${args.join(" ")}: ${r.stderr.trim()}`);
  const t = r.stdout.trim();
  return t === "" ? [] : (JSON.parse(t) as J[]);
}

/** The qdiscs of a namespace that are not a link's default (tbf, ingress, htb, ...). */
export async function qdiscs(ns: string): Promise<KQdisc[]> {
  return (await tcJson(ns, ["qdisc", "show"]))
    .filter((q) => !DEFAULT_KINDS.has(String(q.kind)))
    .map((q) => {
      const o = (q.options as J | undefined) ?? {};
      const k: KQdisc = { dev: String(q.dev), kind: String(q.kind), handle: String(q.handle), root: q.root === true };
      if (typeof o.rate === "number") k.rate = o.rate;
      if (typeof o.burst === "number") k.burst = o.burst;
      return k;
    });
}

/** The mirred redirects of the filters under every ingress qdisc in `q` (one `tc` per such device). */
export async function redirects(ns: string, q: readonly KQdisc[]): Promise<KRedirect[]> {
  const devs = [...new Set(q.filter((x) => x.kind === "ingress").map((x) => x.dev))];
  const per = await Promise.all(
    devs.map(async (dev) =>
      (await tcJson(ns, ["filter", "show", "dev", dev, "ingress"])).flatMap((f) => {
        const o = (f.options as J | undefined) ?? {};
        const actions = (o.actions as J[] | undefined) ?? [];
        // The first action that takes the packet is the one that counts (the reference adds an unreachable second one).
        const a = actions.find((x) => x.kind === "mirred" && x.mirred_action === "redirect");
        if (!a) return [];
        return [
          {
            dev,
            to: String(a.to_dev),
            kind: String(f.kind),
            pref: Number(f.pref),
            ...(typeof o.flowid === "string" ? { flowid: o.flowid } : {}),
          },
        ];
      }),
    ),
  );
  return per.flat();
}

/** Per-run device names grouped: host veths as "veth*", the bandwidth plugin's ifbs as "bwp*". */
export function deviceGroup(dev: string): string {
  if (dev.startsWith("veth")) return "veth*";
  if (/^bwp[0-9a-f]{12}$/.test(dev)) return "bwp*";
  return dev;
}

/** Compact, comparable text per device group, and the redirects between groups. */
export function shapingView(q: readonly KQdisc[], r: readonly KRedirect[]): Record<string, string> {
  const by = new Map<string, string[]>();
  for (const x of q) {
    const g = deviceGroup(x.dev);
    const text = [
      x.kind,
      x.handle,
      x.root ? "root" : undefined,
      x.rate !== undefined ? `rate ${x.rate}` : undefined,
      x.burst !== undefined ? `burst ${x.burst}` : undefined,
    ]
      .filter(Boolean)
      .join(" ");
    by.set(g, [...(by.get(g) ?? []), text]);
  }
  const out: Record<string, string> = {};
  for (const [g, list] of by) out[g] = list.sort().join(" | ");
  if (r.length > 0)
    out.redirects = r
      .map(
        (x) =>
          `${deviceGroup(x.dev)} ${x.kind} pref ${x.pref}${x.flowid ? ` flowid ${x.flowid}` : ""} -> ${deviceGroup(x.to)}`,
      )
      .sort()
      .join(" | ");
  return out;
}
