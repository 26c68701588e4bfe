/**
 * `routes sync --forward-accept`: the node-level rules that let the cluster's pod subnets be forwarded on a node
 * whose FORWARD policy drops (Docker sets it to DROP), for operators who do not chain the `firewall` plugin.
 *
 * Layout, per family (iptables for IPv4, ip6tables for IPv6), in the filter table:
 *   :CNI-TS-FORWARD                                             our chain: nothing else is ever in it
 *   -A CNI-TS-FORWARD -s CIDR -j ACCEPT                          per CIDR, from
 *   -A CNI-TS-FORWARD -d CIDR -j ACCEPT                          and to
 *   -I FORWARD 1 -m comment --comment "..." -j CNI-TS-FORWARD     one jump, inserted at the top when missing
 * A packet of no listed subnet returns from our chain and meets the rest of FORWARD as before.
 *
 * The decisions here are pure (a saved table in, restore lines out), so they are unit-tested; forward-apply.ts
 * reads the table and restores. Every CIDR is validated before it can reach a rule.
 *
 * @example
 *   const spec = parseForwardAccept("auto,10.96.0.0/12");
 *   const cidrs = forwardCidrs(spec!, nodes);
 *   const plan = planForward(4, parseSave(iptablesSaveText, "filter"), cidrs[4]);
 */
import { bigIntToIP, isNetworkAddress, parseCidr, type Cidr, type Family } from "../../lib/cidr.js";
import {
  canonicalRule,
  deleteLine,
  option,
  ruleLine,
  ruleTarget,
  rulesOf,
  type SavedTable,
} from "../../lib/netfilter/iptables-save.js";
import { deleteChainLines } from "../../lib/netfilter/iptables.js";
import { InputError, type NodeEntry } from "./nodelist.js";

/** Our chain in the filter table of each family. */
export const FORWARD_CHAIN = "CNI-TS-FORWARD";
/** The comment on the jump from FORWARD, so that `iptables -S FORWARD` says whose it is. */
export const FORWARD_COMMENT = "cni-ts routes sync: pod subnets";
// Bounds the chain (two rules per CIDR, every forwarded packet walks it) and the argument.
const MAX_CIDRS = 64;

/** What `--forward-accept` asked for: the union of the cluster's podCIDRs (`auto`) and/or explicit CIDRs. */
export interface ForwardSpec {
  auto: boolean;
  /** Canonical network CIDRs ("10.96.0.0/12"), validated. */
  cidrs: string[];
}

function canonical(c: Cidr): string {
  return `${bigIntToIP(c.family, c.network)}/${c.prefix}`;
}

/**
 * `--forward-accept LIST`: comma-separated network CIDRs (IPv4 or IPv6) and/or `auto`. "" is no forward rules at
 * all (undefined: an environment variable left empty in a DaemonSet turns the feature off). Anything else (a CIDR
 * with host bits, a prefix out of range, a space, an IPv4-mapped address, a zone, an empty item) is an InputError:
 * exit status 2 before anything is read or changed.
 */
export function parseForwardAccept(text: string): ForwardSpec | undefined {
  if (text === "") return undefined;
  const items = text.split(",");
  if (items.length > MAX_CIDRS)
    throw new InputError(`--forward-accept takes at most ${MAX_CIDRS} items, got ${items.length}`);
  const spec: ForwardSpec = { auto: false, cidrs: [] };
  for (const item of items) {
    if (item === "auto") {
      spec.auto = true;
      continue;
    }
    const c = parseCidr(item);
    if (!c)
      throw new InputError(
        `--forward-accept: ${JSON.stringify(item.slice(0, 80))} is not a CIDR (give CIDR[,CIDR...] or auto)`,
      );
    if (!isNetworkAddress(c))
      throw new InputError(`--forward-accept: ${item} is not a network address (did you mean ${canonical(c)}?)`);
    const text = canonical(c);
    if (!spec.cidrs.includes(text)) spec.cidrs.push(text);
  }
  return spec;
}

function compareCidrs(a: string, b: string): number {
  const x = parseCidr(a)!;
  const y = parseCidr(b)!;
  if (x.network !== y.network) return x.network < y.network ? -1 : 1;
  return x.prefix - y.prefix;
}

/**
 * The CIDRs to accept, by family, sorted (so that the same set always gives the same chain): the explicit ones,
 * and with `auto` the podCIDRs of every node of the list, this one included, so the rules follow the cluster as
 * nodes join and leave. A podCIDR from the list reaches a rule only as a network CIDR with a prefix (a node's
 * `0.0.0.0/0` or `10.1.2.3/16` is left out: never a pod subnet, and it would open far more than one); wantedRoutes
 * reports such a node.
 */
export function forwardCidrs(spec: ForwardSpec, nodes: readonly NodeEntry[]): Record<Family, string[]> {
  const all = new Set(spec.cidrs);
  if (spec.auto) {
    for (const text of nodes.flatMap((n) => n.podCIDRs)) {
      const c = parseCidr(text);
      if (c && isNetworkAddress(c) && c.prefix > 0) all.add(canonical(c));
    }
  }
  const out: Record<Family, string[]> = { 4: [], 6: [] };
  for (const text of all) out[parseCidr(text)!.family].push(text);
  out[4].sort(compareCidrs);
  out[6].sort(compareCidrs);
  return out;
}

/** The rules of our chain for a set of CIDRs, in order. */
export function chainRules(cidrs: readonly string[]): string[][] {
  return cidrs.flatMap((c) => [
    ["-s", c, "-j", "ACCEPT"],
    ["-d", c, "-j", "ACCEPT"],
  ]);
}

/** The jump from FORWARD to our chain. */
export const JUMP_WORDS: readonly string[] = ["-m", "comment", "--comment", FORWARD_COMMENT, "-j", FORWARD_CHAIN];

/** One family's decision: the restore lines (none: in place) and one line per change for the report. */
export interface ForwardPlan {
  family: Family;
  /** The CIDRs our chain accepts once the plan is applied. */
  cidrs: string[];
  lines: string[];
  changes: string[];
}

/** The CIDRs a chain of ours accepts now (from its `-s` / `-d` rules), for the report. */
function acceptedNow(saved: SavedTable): string[] {
  const out = new Set<string>();
  for (const r of rulesOf(saved, FORWARD_CHAIN)) {
    const v = option(r.args, "-s", "-d");
    if (v && !v.negated) out.add(v.value);
  }
  return [...out];
}

/**
 * What to restore into `saved` (the family's filter table) so that our chain accepts exactly `cidrs` and FORWARD
 * jumps to it once. The chain is rewritten as a whole when it differs in any way (declaring it under --noflush
 * empties it; it holds nothing but ours); the jump is inserted at the top only when missing (an existing jump stays
 * where it is, so two tools that each want the top do not move rules back and forth), and any further jump from
 * FORWARD to our chain is deleted. No CIDR: the chain and every jump to it go. Rules of anyone else are never named.
 */
export function planForward(family: Family, saved: SavedTable, cidrs: readonly string[]): ForwardPlan {
  const fam = `IPv${family}`;
  const had = acceptedNow(saved);
  if (cidrs.length === 0) {
    const exists = saved.chains.has(FORWARD_CHAIN) || saved.rules.some((r) => ruleTarget(r) === FORWARD_CHAIN);
    if (!exists) return { family, cidrs: [], lines: [], changes: [] };
    return {
      family,
      cidrs: [],
      lines: deleteChainLines(saved, new Set([FORWARD_CHAIN])),
      changes: [
        `forward-accept: delete chain ${FORWARD_CHAIN} and its jump from FORWARD (${fam}${had.length > 0 ? `; it accepted ${had.join(", ")}` : ""})`,
      ],
    };
  }
  const want = chainRules(cidrs);
  const have = rulesOf(saved, FORWARD_CHAIN);
  const chainOk =
    saved.chains.has(FORWARD_CHAIN) &&
    have.length === want.length &&
    have.every((r, i) => canonicalRule(r.args) === canonicalRule(want[i]!));
  const jumpKey = canonicalRule(JUMP_WORDS);
  const jumps = saved.rules.filter((r) => r.chain === "FORWARD" && ruleTarget(r) === FORWARD_CHAIN);
  const keep = jumps.find((r) => canonicalRule(r.args) === jumpKey);
  const lines: string[] = [];
  const changes: string[] = [];
  if (!chainOk) {
    lines.push(`:${FORWARD_CHAIN} - [0:0]`, ...want.map((w) => ruleLine("-A", FORWARD_CHAIN, w)));
    for (const c of cidrs)
      if (!had.includes(c)) changes.push(`forward-accept: accept ${c} (${fam}, forwarded from and to)`);
    for (const c of had) if (!cidrs.includes(c)) changes.push(`forward-accept: stop accepting ${c} (${fam})`);
    if (changes.length === 0)
      changes.push(`forward-accept: rewrite chain ${FORWARD_CHAIN} (${fam}): its rules differ from ours`);
  }
  for (const r of jumps) {
    if (r === keep) continue;
    lines.push(deleteLine(r));
    changes.push(`forward-accept: delete the extra jump ${JSON.stringify(r.raw)} (${fam})`);
  }
  if (!keep) {
    lines.push(ruleLine("-I", "FORWARD", JUMP_WORDS, 1));
    changes.push(`forward-accept: insert the jump to ${FORWARD_CHAIN} at the top of FORWARD (${fam})`);
  }
  return { family, cidrs: [...cidrs], lines, changes };
}
