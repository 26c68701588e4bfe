/**
 * nftables backend of ipMasq: one table of our own, `inet cni_ts_masq`, never the reference's
 * `inet cni_plugins_masquerade`, so the two plugins can run side by side without flushing each other's chain.
 *
 * Layout (per family; shown for IPv4):
 *   set pods4    { type ipv4_addr }                               pod addresses
 *   set local4   { type ipv4_addr . ipv4_addr; flags interval }   pod address . pod subnet
 *   map owners4  { type ipv4_addr : mark }                        pod address -> owner tag (no rule reads it)
 *   chain postrouting { type nat hook postrouting priority srcnat
 *     ip saddr @pods4 ip daddr != 224.0.0.0/4 ip saddr . ip daddr != @local4 masquerade
 *   }
 * Two rules in all (one per family), whatever the number of pods: a pod costs set elements, never a rule.
 *
 * Why the owner map: an address can move from a deleted attachment A to a new one B before A's DEL has run (IPAM
 * released it first). A's late DEL must not remove B's elements, and a comment cannot protect them, because the
 * kernel deletes elements by key alone. The owner tag (32 bits of a hash of network, containerID and ifname) makes
 * ownership atomic: `add element owners4 { ip : tagA }` is a no-op when A owns the address, creates the entry when
 * nobody does, and fails (EEXIST; EBUSY on older kernels) when another tag is there. So every teardown of an
 * address is sent as
 *   add element owners4 { ip : tagA }; delete element owners4 { ip }; <add+delete of its set elements>
 * in one transaction: it removes A's state, is harmless when there is none, and aborts when B owns the address.
 * Add-then-delete is also how a set element is deleted idempotently, since nft 1.0.6 has no `destroy`.
 * Invariant kept by ADD: every element of an address belongs to the address's owner (taking an address over
 * removes all of the previous owner's elements for it).
 *
 * The rules look up sets, not the owner map: a lookup into a map without using its value is refused by kernels
 * before 6.5 ("relax set/map validation checks"), and nodes run older ones. Concatenated interval sets need
 * Linux 5.6 and nft 0.9.4.
 *
 * Element comments (`<hash16(network)>-<hash16(ifname:containerID)>`, the reference's instance hash, 33 of the 128
 * characters nft allows) on owners and local elements are what DEL and GC search for: the tag is too short to name
 * a network.
 */
import { bigIntToIP, parseCidr, parseIP } from "../cidr.js";
import { CniError, ErrorCode } from "../errors.js";
import { hasExecutable } from "../exec.js";
import { hashHex } from "../hash.js";
import { log } from "../log.js";
import type { Attachment } from "../types.js";
import { requireTool } from "./backend.js";
import type { LiveMasqKeys, NormalizedMasqEntry } from "./masq-entry.js";
import {
  chainsOf,
  dropSetElement,
  elementOf,
  elementsOf,
  nftApply,
  nftApplyWithRetry,
  nftFailure,
  nftListTable,
  type NftElement,
  type NftFailure,
} from "./nft.js";

/** Family and name of our table (`nft list table inet cni_ts_masq`). */
export const MASQ_NFT_TABLE = "inet cni_ts_masq";
const TABLE_NAME = "cni_ts_masq";
const CHAIN = "postrouting";
// A transaction that lost a race (another plugin changed an element between our read and our write) is re-read
// and re-sent; three rounds are plenty, since each loss means another writer made progress.
const ATTEMPTS = 3;

interface FamilyLayout {
  pods: string;
  local: string;
  owners: string;
  proto: "ip" | "ip6";
  type: "ipv4_addr" | "ipv6_addr";
  multicast: { addr: string; len: number };
}

const LAYOUT: Record<4 | 6, FamilyLayout> = {
  4: {
    pods: "pods4",
    local: "local4",
    owners: "owners4",
    proto: "ip",
    type: "ipv4_addr",
    multicast: { addr: "224.0.0.0", len: 4 },
  },
  6: {
    pods: "pods6",
    local: "local6",
    owners: "owners6",
    proto: "ip6",
    type: "ipv6_addr",
    multicast: { addr: "ff00::", len: 8 },
  },
};

function sha512hex(s: string): string {
  return hashHex("sha512", s);
}

function networkHash(network: string): string {
  return sha512hex(network).slice(0, 16);
}

/** The element comment of an attachment: the same instance hash the reference's nftables backend puts in its rule comments. */
export function nftMasqComment(network: string, containerID: string, ifname: string): string {
  return `${networkHash(network)}-${sha512hex(`${ifname}:${containerID}`).slice(0, 16)}`;
}

/** The owner tag stored in the owners map: 32 bits of a hash of the whole attachment identity. */
export function nftMasqTag(network: string, containerID: string, ifname: string): number {
  return parseInt(sha512hex(`${network}\n${containerID}\n${ifname}`).slice(0, 8), 16);
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

/** One pod address with the family it belongs to, in canonical text. */
interface Addr {
  family: 4 | 6;
  ip: string;
}

/** What our table holds, as `nft -j list table` shows it. */
interface Listing {
  /** "4 10.1.0.5" -> present. */
  pods: Set<string>;
  /** "4 10.1.0.5" -> owner. */
  owners: Map<string, { tag: number; comment?: string }>;
  locals: { family: 4 | 6; ip: string; key: string; comment?: string }[];
  /** undefined when the chain does not exist. */
  chain?: { hook?: string; type?: string; rules: unknown[][] };
}

const id = (a: Addr): string => `${a.family} ${a.ip}`;

/** The rule of each family, in nft syntax and in the JSON form `nft -j` prints it (for CHECK). */
function constantRules(): { text: string; json: unknown[] }[] {
  return [LAYOUT[4], LAYOUT[6]].map((f) => {
    const saddr = { payload: { protocol: f.proto, field: "saddr" } };
    const daddr = { payload: { protocol: f.proto, field: "daddr" } };
    return {
      text: `${f.proto} saddr @${f.pods} ${f.proto} daddr != ${f.multicast.addr}/${f.multicast.len} ${f.proto} saddr . ${f.proto} daddr != @${f.local} masquerade`,
      json: [
        { match: { op: "==", left: saddr, right: `@${f.pods}` } },
        { match: { op: "!=", left: daddr, right: { prefix: f.multicast } } },
        { match: { op: "!=", left: { concat: [saddr, daddr] }, right: `@${f.local}` } },
        { masquerade: null },
      ],
    };
  });
}

/**
 * Declarations that make ADD self-sufficient: `add` of an existing table, set or chain is a no-op, and the chain is
 * flushed and refilled so that a damaged or older rule set is repaired by the next ADD. All of it lands in the same
 * transaction as the elements, so no packet ever sees the chain empty.
 */
function declarations(): string[] {
  const lines = [
    `add table ${MASQ_NFT_TABLE} { comment "cni-ts bridge ipMasq: masquerade pod traffic leaving its subnet"; }`,
  ];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    lines.push(`add set ${MASQ_NFT_TABLE} ${f.pods} { type ${f.type}; comment "pod addresses"; }`);
    lines.push(
      `add set ${MASQ_NFT_TABLE} ${f.local} { type ${f.type} . ${f.type}; flags interval; comment "pod address . pod subnet"; }`,
    );
    lines.push(
      `add map ${MASQ_NFT_TABLE} ${f.owners} { type ${f.type} : mark; comment "pod address -> owner tag, guards deletes"; }`,
    );
  }
  lines.push(`add chain ${MASQ_NFT_TABLE} ${CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`);
  lines.push(`flush chain ${MASQ_NFT_TABLE} ${CHAIN}`);
  for (const r of constantRules()) lines.push(`add rule ${MASQ_NFT_TABLE} ${CHAIN} ${r.text}`);
  return lines;
}

const el = (set: string, body: string): string => elementOf(MASQ_NFT_TABLE, set, body);
const dropSetElem = (set: string, key: string): string[] => dropSetElement(MASQ_NFT_TABLE, set, key);

/** Release the address's ownership if `tag` holds it (or nobody does); abort the transaction if another tag does. */
function releaseOwner(a: Addr, tag: number): string[] {
  const f = LAYOUT[a.family];
  return [`add ${el(f.owners, `${a.ip} : ${hex32(tag)}`)}`, `delete ${el(f.owners, a.ip)}`];
}

/** Everything of one address, under the owner guard: the owner entry, the pods element, the listed local elements. */
function releaseAddress(a: Addr, tag: number, localKeys: readonly string[]): string[] {
  const f = LAYOUT[a.family];
  return [...releaseOwner(a, tag), ...dropSetElem(f.pods, a.ip), ...localKeys.flatMap((k) => dropSetElem(f.local, k))];
}

function addLines(e: NormalizedMasqEntry): string[] {
  const f = LAYOUT[e.family];
  const comment = nftMasqComment(e.network, e.containerID, e.ifname);
  const tag = nftMasqTag(e.network, e.containerID, e.ifname);
  return [
    `add ${el(f.pods, e.ip)}`,
    // `create`, not `add`: an interval that overlaps one already there (the same address re-ADDed with another
    // subnet) must fail so that nftAddMasq replaces it. Debian 12's kernel (6.1) answers `add` of such an interval
    // with success and inserts nothing; 6.18 says EEXIST to both.
    `create ${el(f.local, `${e.ip} . ${e.subnet} comment "${comment}"`)}`,
    `add ${el(f.owners, `${e.ip} comment "${comment}" : ${hex32(tag)}`)}`,
  ];
}

/** Run a script on our table; undefined on success, else why it failed (lib/netfilter/nft.ts) and nft's stderr. */
async function nftScript(
  lines: readonly string[],
  netns: string | undefined,
): Promise<{ failure: NftFailure; stderr: string } | undefined> {
  const e = await nftApply(lines, netns);
  return e && { failure: nftFailure(e, TABLE_NAME), stderr: e.stderr };
}

function addrOf(text: unknown): Addr | undefined {
  const ip = typeof text === "string" ? parseIP(text) : undefined;
  return ip ? { family: ip.family, ip: bigIntToIP(ip.family, ip.value) } : undefined;
}

/** Read our table in one `nft -j list table`; undefined when it does not exist. */
async function listTable(netns: string | undefined): Promise<Listing | undefined> {
  const objects = await nftListTable(TABLE_NAME, netns);
  if (!objects) return undefined;
  const out: Listing = { pods: new Set(), owners: new Map(), locals: [] };
  const elements = elementsOf(objects);
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    for (const e of elements.get(f.pods) ?? []) {
      const a = addrOf(e.val);
      if (a) out.pods.add(id(a));
    }
    for (const e of elements.get(f.owners) ?? []) {
      const a = addrOf(e.val);
      if (a && typeof e.value === "number") out.owners.set(id(a), { tag: e.value, comment: e.comment });
    }
    for (const e of elements.get(f.local) ?? []) {
      const local = parseLocal(e);
      if (local) out.locals.push(local);
    }
  }
  const chain = chainsOf(objects).get(CHAIN);
  if (chain) out.chain = { hook: chain.hook, type: chain.type, rules: chain.rules.map((r) => r.expr) };
  return out;
}

/** A local element: {concat: [addr, {prefix: {addr, len}}]}; a /32 (/128) subnet comes back as a bare address. */
function parseLocal({ val, comment }: NftElement): Listing["locals"][number] | undefined {
  const parts = (val as { concat?: unknown[] } | null)?.concat;
  if (!Array.isArray(parts) || parts.length !== 2) return undefined;
  const a = addrOf(parts[0]);
  if (!a) return undefined;
  const net = parts[1] as string | { prefix?: { addr?: string; len?: number } };
  const cidr =
    typeof net === "string"
      ? parseCidr(`${net}/${a.family === 4 ? 32 : 128}`)
      : parseCidr(`${net.prefix?.addr ?? ""}/${net.prefix?.len ?? ""}`);
  if (!cidr) return undefined;
  return { ...a, key: `${a.ip} . ${bigIntToIP(cidr.family, cidr.network)}/${cidr.prefix}`, comment };
}

/** ADD for the nftables backend: one transaction in the common case (no other owner's element in the way). */
export async function nftAddMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<void> {
  requireTool("nft", "ipMasq");
  const adds = [...new Set(entries.flatMap(addLines))];
  // Every ADD re-asserts the constant rules (~15 ms more than elements alone): a ruleset flushed by another tool
  // is repaired by the next pod instead of silently leaving every pod unmasqueraded.
  let r = await nftScript([...declarations(), ...adds], netns);
  for (let attempt = 1; r && attempt <= ATTEMPTS && r.failure === "taken"; attempt++) {
    // An address is still held by another tag (reused before its old owner's DEL), or one of our addresses has a
    // local element with another subnet. The newest ADD owns the address: release the previous owner (guarded by
    // the tag we saw, so a concurrent change makes this round fail instead of deleting blindly) and drop every
    // local element of the address before adding ours.
    const listing = (await listTable(netns)) ?? { pods: new Set<string>(), owners: new Map(), locals: [] };
    const lines = declarations();
    const done = new Set<string>();
    for (const e of entries) {
      const a: Addr = { family: e.family, ip: e.ip };
      if (done.has(id(a))) continue;
      done.add(id(a));
      const owner = listing.owners.get(id(a));
      const mine = nftMasqTag(e.network, e.containerID, e.ifname);
      if (owner && owner.tag !== mine) lines.push(...releaseOwner(a, owner.tag));
      const locals = listing.locals.filter((l) => l.family === a.family && l.ip === a.ip);
      for (const l of locals) lines.push(...dropSetElem(LAYOUT[a.family].local, l.key));
    }
    r = await nftScript([...lines, ...adds], netns);
  }
  if (r) throw new CniError(ErrorCode.KernelOperationFailed, `nftables ipMasq setup failed: ${r.stderr}`);
}

/** DEL for the nftables backend: by "ip/prefix" hints when given, else (or when they fall short) by element comment. */
export async function nftDelMasq(
  network: string,
  containerID: string,
  ifname: string,
  hints: readonly string[],
  netns?: string,
): Promise<void> {
  if (!hasExecutable("nft")) return;
  const tag = nftMasqTag(network, containerID, ifname);
  const comment = nftMasqComment(network, containerID, ifname);
  const hinted = hints.map((h) => parseCidr(h)).filter((c) => c !== undefined);
  if (hinted.length > 0 && hinted.length === hints.length) {
    const lines = hinted.flatMap((c) => {
      const a: Addr = { family: c.family, ip: bigIntToIP(c.family, c.ip) };
      return releaseAddress(a, tag, [`${a.ip} . ${bigIntToIP(c.family, c.network)}/${c.prefix}`]);
    });
    // Success: every hinted element is gone or was never there. Failure (no table yet, or an address already
    // belongs to another attachment) aborts the whole transaction: sort it out by comment.
    const r = await nftScript(lines, netns);
    if (!r || r.failure === "no-table") return;
    log.debug(`ipMasq: nftables DEL by hints failed (${r.stderr}); looking for the elements by comment`);
  }
  await releaseMatching(
    netns,
    (c) => c === comment,
    () => tag,
    `attachment ${network}/${containerID}/${ifname}`,
  );
}

/**
 * Release every address whose owner entry (or, for an address nobody owns, a local element) carries a comment that
 * `pick` selects; addresses owned under another comment are left alone. `tagOf` gives the guard for an address
 * without owner entry. `live`, asked after each read and only when something is selected, names comments that
 * must stay after all. Re-reads after a lost race.
 */
async function releaseMatching(
  netns: string | undefined,
  pick: (comment: string | undefined) => boolean,
  tagOf: () => number,
  what: string,
  live?: LiveMasqKeys,
): Promise<void> {
  // A stale read (an element taken or gone meanwhile, the table deleted) is read again; anything else is final.
  const failed = await nftApplyWithRetry(
    TABLE_NAME,
    async () => {
      const listing = await listTable(netns);
      if (!listing) return [];
      const doomed = new Map<string, { a: Addr; tag: number; comment: string | undefined }>();
      for (const [key, o] of listing.owners) {
        if (!pick(o.comment)) continue;
        const [fam, ip] = key.split(" ") as [string, string];
        doomed.set(key, { a: { family: fam === "4" ? 4 : 6, ip }, tag: o.tag, comment: o.comment });
      }
      for (const l of listing.locals) {
        const key = id(l);
        if (pick(l.comment) && !listing.owners.has(key) && !doomed.has(key))
          doomed.set(key, { a: { family: l.family, ip: l.ip }, tag: tagOf(), comment: l.comment });
      }
      // Asked after the read (see LiveMasqKeys): an owner that appeared since is still seen, and one whose ADD comes
      // later writes elements this round never listed and so never deletes (its tag fails our guard on a shared address).
      if (doomed.size > 0 && live) {
        const spared = await live();
        for (const [key, d] of doomed) if (d.comment !== undefined && spared.has(d.comment)) doomed.delete(key);
      }
      if (doomed.size === 0) return [];
      return [...doomed.values()].flatMap(({ a, tag }) =>
        releaseAddress(
          a,
          tag,
          listing.locals.filter((l) => l.family === a.family && l.ip === a.ip).map((l) => l.key),
        ),
      );
    },
    netns,
  );
  if (!failed) return;
  throw new CniError(ErrorCode.KernelOperationFailed, `nftables ipMasq teardown of ${what} failed: ${failed.stderr}`);
}

/** GC for the nftables backend: addresses whose comment names `network` but none of the valid or live attachments. */
export async function nftGcMasq(
  network: string,
  valid: readonly Attachment[],
  netns?: string,
  live?: LiveMasqKeys,
): Promise<void> {
  if (!hasExecutable("nft")) return;
  const prefix = `${networkHash(network)}-`;
  const keep = new Set(valid.map((a) => nftMasqComment(network, a.containerID, a.ifname)));
  // An ownerless leftover has no tag to show; guard it with 0, which only fails if someone takes the address meanwhile.
  await releaseMatching(
    netns,
    (c) => c?.startsWith(prefix) === true && !keep.has(c),
    () => 0,
    `network ${network}`,
    live,
  );
}

/** CHECK for the nftables backend: the two rules, and every entry's three elements, owned by the entry. */
export async function nftCheckMasq(
  entries: readonly NormalizedMasqEntry[],
  netns?: string,
): Promise<string | undefined> {
  requireTool("nft", "ipMasq");
  const listing = await listTable(netns);
  if (!listing) return `nftables table ${MASQ_NFT_TABLE} does not exist`;
  const chain = listing.chain;
  if (chain?.type !== "nat" || chain.hook !== "postrouting")
    return `nftables chain ${MASQ_NFT_TABLE} ${CHAIN} is missing or is not a nat postrouting chain`;
  const actual = chain.rules.map((r) => JSON.stringify(r));
  const missingRule = constantRules().find((r) => !actual.includes(JSON.stringify(r.json)));
  if (missingRule) return `nftables chain ${MASQ_NFT_TABLE} ${CHAIN} lacks the rule "${missingRule.text}"`;
  for (const e of entries) {
    const f = LAYOUT[e.family];
    const who = `attachment ${e.network}/${e.containerID}/${e.ifname}`;
    const key = id({ family: e.family, ip: e.ip });
    if (!listing.pods.has(key)) return `nftables set ${f.pods} has no element ${e.ip} for ${who}`;
    const owner = listing.owners.get(key);
    if (!owner) return `nftables map ${f.owners} has no element ${e.ip} for ${who}`;
    if (owner.tag !== nftMasqTag(e.network, e.containerID, e.ifname))
      return `nftables address ${e.ip} belongs to another attachment than ${who}`;
    const local = `${e.ip} . ${e.subnet}`;
    if (!listing.locals.some((l) => l.key === local))
      return `nftables set ${f.local} has no element ${local} for ${who}`;
  }
  return undefined;
}
