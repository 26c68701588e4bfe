/**
 * The nftables layout of portmap: one table of our own, `inet cni_ts_portmap`, whose rules never change. A pod
 * adds map and set elements, never a rule or a chain, so a packet's path does not grow with the number of pods.
 *
 *   map dnat4   { inet_proto . inet_service : ipv4_addr . inet_service }              proto . hostPort -> pod . port
 *   map dnatip4 { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  hostIP . proto . hostPort -> …
 *   set masq4   { ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval }  source . hostIP . proto . hostPort
 *   (and the same three for IPv6)
 *   chain prerouting  (nat, dstnat)   fib daddr type local jump hostports
 *   chain output      (nat, -100)     fib daddr type local jump hostports
 *   chain hostports   jump conditional; dnat via dnatip4, dnat4, dnatip6, dnat6 (specific address first)
 *   chain postrouting (nat, srcnat)   per protocol: ct status dnat, source . original destination . proto .
 *                                     original port in masq4/masq6 -> masquerade
 *   chain conditional                 only pods whose network sets conditionsV4/V6: one rule per mapping
 *
 * The masquerade is decided on the connection's original tuple (`ct original`), so it needs no packet mark and
 * applies exactly to connections that came in through a mapped port: from the pod's own subnet (hairpin, as the
 * reference's iptables rules do), from 127.0.0.0/8 (the node's loopback), or from anywhere with masqAll.
 *
 * Every element and conditional rule carries the attachment's owner string as comment (identity.ts): DEL and GC go
 * by it. A hostPort belongs to one attachment: the maps refuse a second value for a key (EEXIST), and ADD refuses
 * (code 102) a key of another owner that overlaps ours (a specific hostIP against "any address" included).
 *
 * `ct original proto-dst` in a concatenation needs the protocol known, hence one postrouting rule per protocol.
 * Concatenated interval sets need Linux 5.6 and nft 0.9.4; the rest is older.
 */
import { parseIP, type Family } from "../../lib/cidr.js";
import { nftAddrText } from "../../lib/netfilter/addr.js";
import { deleteRuleLine, dropSetElement, elementOf } from "../../lib/netfilter/nft.js";
import type { PortmapConfig, Proto } from "./config.js";
import { appliesTo } from "./iptables-rules.js";
import type { PodAddr } from "./pod.js";

/** Family and name of our table (`nft list table inet cni_ts_portmap`). */
export const PORTMAP_NFT_TABLE = "inet cni_ts_portmap";
/** The table's name alone, for commands that take family and name apart. */
export const TABLE_NAME = "cni_ts_portmap";

interface FamilyLayout {
  dnat: string;
  dnatip: string;
  masq: string;
  proto: "ip" | "ip6";
  nfproto: "ipv4" | "ipv6";
  addr: "ipv4_addr" | "ipv6_addr";
  any: string;
}

/** Names per family. */
export const LAYOUT: Record<Family, FamilyLayout> = {
  4: {
    dnat: "dnat4",
    dnatip: "dnatip4",
    masq: "masq4",
    proto: "ip",
    nfproto: "ipv4",
    addr: "ipv4_addr",
    any: "0.0.0.0/0",
  },
  6: { dnat: "dnat6", dnatip: "dnatip6", masq: "masq6", proto: "ip6", nfproto: "ipv6", addr: "ipv6_addr", any: "::/0" },
};

const PROTOS: readonly Proto[] = ["tcp", "udp", "sctp"];
const LOCALHOST4 = "127.0.0.0/8";

/** A hostPort as an attachment holds it: family, address (undefined: any node address), protocol, port. */
export interface Claim {
  family: Family;
  hostIP: string | undefined;
  proto: string;
  port: number;
}

/** Two claims that the kernel could not tell apart for some packet. */
export function claimsOverlap(a: Claim, b: Claim): boolean {
  return (
    a.family === b.family &&
    a.proto === b.proto &&
    a.port === b.port &&
    (a.hostIP === undefined || b.hostIP === undefined || a.hostIP === b.hostIP)
  );
}

/** One map element: key and value in nft's element syntax. */
export interface MapElem {
  map: string;
  key: string;
  value: string;
}

/** One set element: its key in nft's element syntax. */
export interface SetElem {
  set: string;
  key: string;
}

/** One rule of the conditional chain (mappings of a network with nft conditions). */
export interface CondRule {
  /** Rule text without the comment. */
  text: string;
  /** The comment: owner, then the claim (so conflicts with conditional mappings can be found from a listing). */
  comment: string;
}

/** Everything one attachment puts in the table. */
export interface Desired {
  maps: MapElem[];
  sets: SetElem[];
  rules: CondRule[];
  claims: Claim[];
}

/** An address or prefix the way nft prints it back (lib/netfilter/addr.ts). */
export const netText = nftAddrText;

const join = (...parts: Array<string | number>): string => parts.join(" . ");

/** The comment of a conditional rule: "<owner> <proto>/<port>[@<hostIP>]". */
export function condComment(owner: string, c: Claim): string {
  return `${owner} ${c.proto}/${c.port}${c.hostIP ? `@${c.hostIP}` : ""}`;
}

/** The claim a conditional rule's comment records, or undefined for a comment of another form. */
export function parseCondComment(comment: string, family: Family): { owner: string; claim: Claim } | undefined {
  const m = /^(\S+) (tcp|udp|sctp)\/(\d+)(?:@(\S+))?$/.exec(comment);
  if (!m) return undefined;
  return { owner: m[1]!, claim: { family, proto: m[2]!, port: Number(m[3]), hostIP: m[4] } };
}

function masqSources(conf: PortmapConfig, pod: PodAddr): string[] {
  const f = LAYOUT[pod.family];
  if (conf.masqAll) return [f.any];
  return pod.family === 4 ? [pod.subnet, LOCALHOST4] : [pod.subnet];
}

/** Drop masquerade elements another element of the same attachment contains (the set refuses overlaps). */
function withoutContained(elems: SetElem[]): SetElem[] {
  const out: SetElem[] = [];
  for (const e of elems) {
    const [src, dst, proto, port] = e.key.split(" . ");
    const covered = elems.some((o) => {
      const [os, od, op, opt] = o.key.split(" . ");
      return (
        o !== e &&
        o.set === e.set &&
        os === src &&
        op === proto &&
        opt === port &&
        (od === "0.0.0.0/0" || od === "::/0") &&
        od !== dst
      );
    });
    if (!covered && !out.some((x) => x.set === e.set && x.key === e.key)) out.push(e);
  }
  return out;
}

/** The elements and rules of one attachment (owner string `owner`) for its pod addresses. */
export function desiredState(conf: PortmapConfig, owner: string, pods: readonly PodAddr[]): Desired {
  const d: Desired = { maps: [], sets: [], rules: [], claims: [] };
  for (const pod of pods) {
    const f = LAYOUT[pod.family];
    const conditions = pod.family === 4 ? conf.conditionsV4 : conf.conditionsV6;
    for (const m of conf.mappings) {
      if (!appliesTo(m, pod.family)) continue;
      const claim: Claim = { family: pod.family, hostIP: m.hostIP, proto: m.protocol, port: m.hostPort };
      d.claims.push(claim);
      const to = join(pod.ip, m.containerPort);
      if (conditions.length > 0) {
        // Conditions cannot ride on a map element: these mappings get a rule each, in the conditional chain.
        const dst = m.hostIP ? [`${f.proto} daddr ${m.hostIP}`] : [];
        const target = pod.family === 6 ? `[${pod.ip}]:${m.containerPort}` : `${pod.ip}:${m.containerPort}`;
        d.rules.push({
          text: [
            `meta nfproto ${f.nfproto}`,
            ...conditions,
            ...dst,
            `meta l4proto ${m.protocol} th dport ${m.hostPort}`,
            `dnat ${f.proto} to ${target}`,
          ].join(" "),
          comment: condComment(owner, claim),
        });
      } else if (m.hostIP) {
        d.maps.push({ map: f.dnatip, key: join(m.hostIP, m.protocol, m.hostPort), value: to });
      } else {
        d.maps.push({ map: f.dnat, key: join(m.protocol, m.hostPort), value: to });
      }
      if (!conf.snat) continue;
      for (const src of masqSources(conf, pod))
        d.sets.push({ set: f.masq, key: join(netText(src), netText(m.hostIP ?? f.any), m.protocol, m.hostPort) });
    }
  }
  d.sets = withoutContained(d.sets);
  return d;
}

/** The claim a dnat map element stands for. */
export function claimOfMapElem(e: MapElem): Claim | undefined {
  const family =
    e.map === "dnat4" || e.map === "dnatip4" ? 4 : e.map === "dnat6" || e.map === "dnatip6" ? 6 : undefined;
  if (family === undefined) return undefined;
  const parts = e.key.split(" . ");
  const specific = e.map.startsWith("dnatip");
  const [hostIP, proto, port] = specific ? parts : [undefined, ...parts];
  if (!proto || !port) return undefined;
  return { family, hostIP: hostIP && parseIP(hostIP) ? hostIP : undefined, proto, port: Number(port) };
}

/** The constant rules, in nft syntax: chain name and rule text. */
export function constantRules(): { chain: string; text: string }[] {
  const rules = [
    { chain: "prerouting", text: "fib daddr type local jump hostports" },
    { chain: "output", text: "fib daddr type local jump hostports" },
    { chain: "hostports", text: "jump conditional" },
  ];
  for (const fam of [4, 6] as const) {
    const f = LAYOUT[fam];
    rules.push({
      chain: "hostports",
      text: `meta nfproto ${f.nfproto} dnat ${f.proto} to ${f.proto} daddr . meta l4proto . th dport map @${f.dnatip}`,
    });
    rules.push({
      chain: "hostports",
      text: `meta nfproto ${f.nfproto} dnat ${f.proto} to meta l4proto . th dport map @${f.dnat}`,
    });
  }
  for (const p of PROTOS) {
    for (const fam of [4, 6] as const) {
      const f = LAYOUT[fam];
      rules.push({
        chain: "postrouting",
        text: `meta l4proto ${p} ct status dnat meta nfproto ${f.nfproto} ${f.proto} saddr . ct original ${f.proto} daddr . meta l4proto . ct original proto-dst @${f.masq} masquerade`,
      });
    }
  }
  return rules;
}

/** The base chains and the hook each must have. */
export const BASE_CHAINS: Record<string, string> = {
  prerouting: "prerouting",
  output: "output",
  postrouting: "postrouting",
};

/**
 * Declarations that make every ADD self-sufficient: `add` of an existing table, map or chain is a no-op; the
 * constant chains are flushed and refilled in the same transaction as the elements, so a damaged or older rule set
 * is repaired by the next ADD and no packet ever sees a chain half-built. The conditional chain is never flushed.
 */
export function declarations(): string[] {
  const t = PORTMAP_NFT_TABLE;
  const lines = [`add table ${t} { comment "cni-ts portmap: hostPort mappings of pods"; }`];
  for (const fam of [4, 6] as const) {
    const f = LAYOUT[fam];
    lines.push(
      `add map ${t} ${f.dnat} { type inet_proto . inet_service : ${f.addr} . inet_service; comment "proto . hostPort -> pod . port"; }`,
    );
    lines.push(
      `add map ${t} ${f.dnatip} { type ${f.addr} . inet_proto . inet_service : ${f.addr} . inet_service; comment "hostIP . proto . hostPort -> pod . port"; }`,
    );
    lines.push(
      `add set ${t} ${f.masq} { type ${f.addr} . ${f.addr} . inet_proto . inet_service; flags interval; comment "source . hostIP . proto . hostPort to masquerade"; }`,
    );
  }
  lines.push(`add chain ${t} conditional`);
  lines.push(`add chain ${t} hostports`);
  lines.push(`add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`);
  // nft 1.0 has no symbolic priority for the output hook: -100 is dstnat.
  lines.push(`add chain ${t} output { type nat hook output priority -100; policy accept; }`);
  lines.push(`add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`);
  for (const c of ["hostports", "prerouting", "output", "postrouting"]) lines.push(`flush chain ${t} ${c}`);
  for (const r of constantRules()) lines.push(`add rule ${t} ${r.chain} ${r.text}`);
  return lines;
}

const el = (name: string, body: string): string => elementOf(PORTMAP_NFT_TABLE, name, body);

/** Add lines for an attachment's state. */
export function addLines(d: Desired, owner: string): string[] {
  return [
    ...d.maps.map((e) => `add ${el(e.map, `${e.key} comment "${owner}" : ${e.value}`)}`),
    ...d.sets.map((e) => `add ${el(e.set, `${e.key} comment "${owner}"`)}`),
    ...d.rules.map((r) => `add rule ${PORTMAP_NFT_TABLE} conditional ${r.text} comment "${r.comment}"`),
  ];
}

/** Delete a map element only while it still maps to `value` (the transaction aborts if another value is there). */
export function dropMapElem(e: MapElem): string[] {
  return [`add ${el(e.map, `${e.key} : ${e.value}`)}`, `delete ${el(e.map, e.key)}`];
}

/** Delete a set element whether or not it is there (nft 1.0 has no `destroy`). */
export function dropSetElem(e: SetElem): string[] {
  return dropSetElement(PORTMAP_NFT_TABLE, e.set, e.key);
}

/** Delete a conditional rule by its handle. */
export function dropRule(handle: number): string {
  return deleteRuleLine(PORTMAP_NFT_TABLE, "conditional", handle);
}
