/**
 * The nftables layout (ours; the reference has no nftables backend), as pure functions producing `nft -f` scripts
 * and reading `nft -j list table` output. One table, `inet cni_ts_firewall`, whose rules never change; a pod costs
 * set elements, never a rule, so the forward path does not grow with the number of pods:
 *
 *   set pods4 { type ipv4_addr }   map owners4 { type ipv4_addr : mark }   (and pods6, owners6)
 *   set isolated { type ifname }   set bridge_pairs { type ifname . ifname }   (same-bridge: "br" and "br" . "br")
 *   chain admin                    the operator's, created empty, never flushed
 *   chain forward { type filter hook forward priority filter; policy accept;
 *     iifname @isolated oifname @isolated iifname . oifname != @bridge_pairs drop    from one isolated bridge to another
 *     jump admin
 *     ip daddr @pods4 ct state established,related accept                           replies to the pod
 *     ip saddr @pods4 accept                                                         everything from the pod
 *     (the same two for ip6 and @pods6) }
 *
 * nftables semantics: a drop is final, an accept ends only this chain's verdict. The isolation drop therefore works
 * whatever else the node runs; the accepts open traffic only as far as no other table (an iptables FORWARD policy
 * DROP included) drops it: see docs/firewall.md.
 *
 * The owners map (pod address -> a tag of the attachment) makes DEL of a stale attachment harmless for a newer one
 * that got the same address: every teardown is sent as `add element owners4 { ip : tag }; delete element …`, which
 * aborts the transaction when another tag owns the address (lib/masq-nft.ts does the same for the masquerade).
 */
import { hashHex } from "../../lib/hash.js";
import { chainsOf, dropSetElement, elementsOf } from "../../lib/netfilter/nft.js";
import type { PodAddr } from "./pod.js";

/** Name, and family with name, of our table. */
export const FIREWALL_NFT_NAME = "cni_ts_firewall";
export const FIREWALL_NFT_TABLE = `inet ${FIREWALL_NFT_NAME}`;

const LAYOUT = {
  4: { pods: "pods4", owners: "owners4", proto: "ip", type: "ipv4_addr" },
  6: { pods: "pods6", owners: "owners6", proto: "ip6", type: "ipv6_addr" },
} as const;

/** The owner tag of an attachment: 32 bits of a hash of its whole identity. */
export function ownerTag(network: string, containerID: string, ifname: string): number {
  return parseInt(hashHex("sha512", `${network}\n${containerID}\n${ifname}`).slice(0, 8), 16);
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`;

/** The constant rules of the forward chain, in order. */
export function forwardRules(): string[] {
  const rules = ["iifname @isolated oifname @isolated iifname . oifname != @bridge_pairs drop", "jump admin"];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    rules.push(`${f.proto} daddr @${f.pods} ct state established,related accept`, `${f.proto} saddr @${f.pods} accept`);
  }
  return rules;
}

/**
 * Declarations that make an ADD self-sufficient: `add` of what exists is a no-op, and the forward chain is flushed
 * and refilled in the same transaction as the elements, so a damaged chain is repaired and no packet sees it empty.
 */
export function declarations(): string[] {
  const t = FIREWALL_NFT_TABLE;
  const lines = [`add table ${t} { comment "cni-ts firewall: forwarded traffic of pods"; }`];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    lines.push(`add set ${t} ${f.pods} { type ${f.type}; comment "pod addresses"; }`);
    lines.push(
      `add map ${t} ${f.owners} { type ${f.type} : mark; comment "pod address -> owner tag, guards deletes"; }`,
    );
  }
  lines.push(`add set ${t} isolated { type ifname; comment "bridges with ingressPolicy same-bridge"; }`);
  lines.push(`add set ${t} bridge_pairs { type ifname . ifname; comment "bridge . the same bridge"; }`);
  lines.push(`add chain ${t} admin { comment "operator overrides, jumped before the pod rules"; }`);
  lines.push(`add chain ${t} forward { type filter hook forward priority filter; policy accept; }`);
  lines.push(`flush chain ${t} forward`);
  for (const r of forwardRules()) lines.push(`add rule ${t} forward ${r}`);
  return lines;
}

/** Lines giving `tag` the addresses (taking over `takeOver`, owned by another attachment) and the bridge. */
export function addScript(
  addrs: readonly PodAddr[],
  tag: number,
  bridge: string | undefined,
  takeOver: readonly PodAddr[] = [],
): string[] {
  const t = FIREWALL_NFT_TABLE;
  const lines = declarations();
  for (const a of takeOver) lines.push(`delete element ${t} ${LAYOUT[a.family].owners} { ${a.ip} }`);
  for (const a of addrs) {
    lines.push(`add element ${t} ${LAYOUT[a.family].owners} { ${a.ip} : ${hex32(tag)} }`);
    lines.push(`add element ${t} ${LAYOUT[a.family].pods} { ${a.ip} }`);
  }
  if (bridge !== undefined) {
    lines.push(`add element ${t} isolated { "${bridge}" }`);
    lines.push(`add element ${t} bridge_pairs { "${bridge}" . "${bridge}" }`);
  }
  return lines;
}

/**
 * Lines removing the addresses of `tag`, idempotently (add-then-delete: nft 1.0.6 has no `destroy`). The whole
 * transaction aborts when another tag owns one of them, or when the table does not exist.
 */
export function delScript(addrs: readonly PodAddr[], tag: number): string[] {
  const t = FIREWALL_NFT_TABLE;
  const lines: string[] = [];
  for (const a of addrs) {
    const f = LAYOUT[a.family];
    lines.push(
      `add element ${t} ${f.owners} { ${a.ip} : ${hex32(tag)} }`,
      `delete element ${t} ${f.owners} { ${a.ip} }`,
    );
    lines.push(...dropSetElement(t, f.pods, a.ip));
  }
  return lines;
}

/** What our table holds, from `nft -j list table inet cni_ts_firewall`. */
export interface NftState {
  /** "10.1.0.5" -> owner tag. */
  owners: Map<string, number>;
  pods: Set<string>;
  isolated: Set<string>;
  pairs: Set<string>;
  /** The forward chain's hook, or undefined when it does not exist. */
  forwardHook: string | undefined;
  forwardRules: number;
}

function concatText(v: unknown): string {
  if (v && typeof v === "object" && "concat" in v) return (v as { concat: unknown[] }).concat.map(String).join(" . ");
  return String(v);
}

/** Our table's state from the objects of its `nft -j` listing (lib/netfilter nftListTable). */
export function parseListing(objects: readonly Record<string, unknown>[]): NftState {
  const elems = elementsOf(objects);
  const owners = new Map<string, number>();
  for (const name of ["owners4", "owners6"]) {
    for (const e of elems.get(name) ?? [])
      owners.set(String(e.val), typeof e.value === "number" ? e.value : parseInt(String(e.value), 16));
  }
  const keys = (...names: string[]) =>
    new Set(names.flatMap((n) => (elems.get(n) ?? []).map((e) => concatText(e.val))));
  const forward = chainsOf(objects).get("forward");
  return {
    owners,
    pods: keys("pods4", "pods6"),
    isolated: keys("isolated"),
    pairs: keys("bridge_pairs"),
    forwardHook: forward ? (forward.hook ?? "") : undefined,
    forwardRules: forward?.rules.length ?? 0,
  };
}

/** CHECK: what is missing for this attachment, or undefined. */
export function nftCheckProblem(
  s: NftState,
  addrs: readonly PodAddr[],
  tag: number,
  bridge: string | undefined,
): string | undefined {
  if (s.forwardHook !== "forward") return `nft chain ${FIREWALL_NFT_TABLE} forward is missing or not hooked to forward`;
  if (s.forwardRules !== forwardRules().length)
    return `nft chain ${FIREWALL_NFT_TABLE} forward holds ${s.forwardRules} rules, expected ${forwardRules().length}`;
  for (const a of addrs) {
    if (!s.pods.has(a.ip)) return `pod address ${a.ip} is not in the set ${LAYOUT[a.family].pods}`;
    if (s.owners.get(a.ip) !== tag)
      return `pod address ${a.ip} is owned by another attachment in ${LAYOUT[a.family].owners}`;
  }
  if (bridge !== undefined && !(s.isolated.has(bridge) && s.pairs.has(`${bridge} . ${bridge}`)))
    return `bridge ${bridge} is not in the set isolated`;
  return undefined;
}

/** Addresses of `addrs` that the listing says another tag owns. */
export function ownedByOthers(s: NftState, addrs: readonly PodAddr[], tag: number): PodAddr[] {
  return addrs.filter((a) => s.owners.has(a.ip) && s.owners.get(a.ip) !== tag);
}
