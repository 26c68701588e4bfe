/**
 * The iptables layout, as pure functions from what `iptables-save -t filter` shows to the lines one
 * `iptables-restore --noflush` needs. The chains, rules and comments are the reference's (containernetworking
 * plugins 1.1.1), word for word and in iptables-save's order, so a node can switch between the reference and us and
 * either one finds, checks and deletes the other's rules:
 *
 *   FORWARD:               -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1   (same-bridge)
 *                          -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
 *   CNI-FORWARD:           -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN   (first)
 *                          -d POD/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT           (per address)
 *                          -s POD/32 -j ACCEPT
 *   CNI-ISOLATION-STAGE-1: -i BR ! -o BR -m comment --comment "…" -j CNI-ISOLATION-STAGE-2            (per bridge, before RETURN)
 *                          -m comment --comment "…" -j RETURN
 *   CNI-ISOLATION-STAGE-2: -o BR -m comment --comment "…" -j DROP                                     (per bridge, before RETURN)
 *                          -m comment --comment "…" -j RETURN
 *
 * The admin chain is created empty and never flushed: it is the operator's. DEL removes the address rules only;
 * the chains, jumps and isolation rules stay, as in the reference (other pods and bridges use them).
 *
 * @example
 *   const filter = parseSave(saveText, "filter");
 *   const lines = addLines(filter, { adminChain: "CNI-ADMIN", addrs, bridge: undefined }); // restoreTable(4, "filter", lines)
 */
import { hasRule, ruleLine, type SavedTable } from "../../lib/netfilter/iptables-save.js";
import { hostCidr, type PodAddr } from "./pod.js";

/** The chain FORWARD jumps to, named as the reference names it. */
export const FORWARD_CHAIN = "CNI-FORWARD";
export const STAGE1 = "CNI-ISOLATION-STAGE-1";
export const STAGE2 = "CNI-ISOLATION-STAGE-2";

const PRIV_COMMENT = "CNI firewall plugin rules";
const ADMIN_COMMENT = "CNI firewall plugin admin overrides";
const ISOLATION_COMMENT = "CNI firewall plugin rules (ingressPolicy: same-bridge)";

const jumpRule = (comment: string, target: string): string[] => ["-m", "comment", "--comment", comment, "-j", target];

/** The rule in FORWARD that sends forwarded traffic through CNI-FORWARD. */
export const forwardJump = (): string[] => jumpRule(PRIV_COMMENT, FORWARD_CHAIN);
/** The first rule of CNI-FORWARD: the operator's chain decides before any pod rule. */
export const adminJump = (adminChain: string): string[] => jumpRule(ADMIN_COMMENT, adminChain);

/** The two rules of one pod address: replies to it (conntrack), and everything from it. */
export function addrRules(a: PodAddr): string[][] {
  const cidr = hostCidr(a);
  return [
    ["-d", cidr, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ["-s", cidr, "-j", "ACCEPT"],
  ];
}

/** The isolation rules of one bridge and the chains' constant rules (`same-bridge`). */
export const isolationJump = (): string[] => jumpRule(ISOLATION_COMMENT, STAGE1);
export const stage1Rule = (bridge: string): string[] => [
  "-i",
  bridge,
  "!",
  "-o",
  bridge,
  ...jumpRule(ISOLATION_COMMENT, STAGE2),
];
export const stage2Rule = (bridge: string): string[] => ["-o", bridge, ...jumpRule(ISOLATION_COMMENT, "DROP")];
export const returnRule = (): string[] => jumpRule(ISOLATION_COMMENT, "RETURN");

/** What ADD needs: the pod's addresses of this family, and the bridge to isolate (same-bridge) or none. */
export interface AddPlan {
  adminChain: string;
  addrs: readonly PodAddr[];
  bridge: string | undefined;
}

/**
 * Restore lines that bring one family's filter table to what the attachment needs, touching nothing already right.
 * A missing chain is made with `-N`, which fails the whole restore if another ADD made it meanwhile (the caller
 * then re-reads and retries): declaring it (`:CHAIN`) would empty a chain that appeared since our read.
 */
export function addLines(t: SavedTable, plan: AddPlan): string[] {
  const lines: string[] = [];
  const made = new Set<string>();
  const ensureChain = (c: string) => {
    if (!t.chains.has(c) && !made.has(c)) {
      lines.push(`-N ${c}`);
      made.add(c);
    }
  };
  const missing = (chain: string, rule: readonly string[]) => !hasRule(t, chain, rule);
  if (plan.addrs.length > 0) {
    ensureChain(FORWARD_CHAIN);
    ensureChain(plan.adminChain);
    if (missing("FORWARD", forwardJump())) lines.push(ruleLine("-I", "FORWARD", forwardJump(), 1));
    if (missing(FORWARD_CHAIN, adminJump(plan.adminChain)))
      lines.push(ruleLine("-I", FORWARD_CHAIN, adminJump(plan.adminChain), 1));
    for (const a of plan.addrs)
      for (const r of addrRules(a)) if (missing(FORWARD_CHAIN, r)) lines.push(ruleLine("-A", FORWARD_CHAIN, r));
  }
  if (plan.bridge !== undefined) {
    // After CNI-FORWARD's jump, inserted at 1: isolation comes first in FORWARD, as the reference orders them.
    ensureChain(STAGE1);
    ensureChain(STAGE2);
    if (missing("FORWARD", isolationJump())) lines.push(ruleLine("-I", "FORWARD", isolationJump(), 1));
    if (missing(STAGE1, stage1Rule(plan.bridge))) lines.push(ruleLine("-I", STAGE1, stage1Rule(plan.bridge), 1));
    if (missing(STAGE1, returnRule())) lines.push(ruleLine("-A", STAGE1, returnRule()));
    if (missing(STAGE2, stage2Rule(plan.bridge))) lines.push(ruleLine("-I", STAGE2, stage2Rule(plan.bridge), 1));
    if (missing(STAGE2, returnRule())) lines.push(ruleLine("-A", STAGE2, returnRule()));
  }
  return lines;
}

/** Restore lines deleting the address rules that are present (a `-D` of an absent rule would fail the restore). */
export function delLines(t: SavedTable, addrs: readonly PodAddr[]): string[] {
  return addrs.flatMap((a) =>
    addrRules(a)
      .filter((r) => hasRule(t, FORWARD_CHAIN, r))
      .map((r) => ruleLine("-D", FORWARD_CHAIN, r)),
  );
}

/** Restore lines deleting every address rule, present or not: DEL's first try, right whenever ADD's rules are there. */
export function blindDelLines(addrs: readonly PodAddr[]): string[] {
  return addrs.flatMap((a) => addrRules(a).map((r) => ruleLine("-D", FORWARD_CHAIN, r)));
}

/** CHECK: what is missing from one family's table, or undefined. The reference's checks, in its order. */
export function checkProblem(t: SavedTable, plan: AddPlan): string | undefined {
  if (plan.addrs.length > 0) {
    for (const c of [FORWARD_CHAIN, plan.adminChain]) if (!t.chains.has(c)) return `chain ${c} does not exist`;
    if (!hasRule(t, "FORWARD", forwardJump())) return `expected FORWARD rule ${forwardJump().join(" ")} not found`;
    if (!hasRule(t, FORWARD_CHAIN, adminJump(plan.adminChain)))
      return `expected ${FORWARD_CHAIN} rule ${adminJump(plan.adminChain).join(" ")} not found`;
    for (const a of plan.addrs)
      for (const r of addrRules(a)) if (!hasRule(t, FORWARD_CHAIN, r)) return `expected rule ${r.join(" ")} not found`;
  }
  return undefined;
}
