/**
 * nftables backend of ipMasq: one table of our own, `inet cni_ts_masq`, never the reference's
 * `inet cni_plugins_masquerade`, so the two plugins can run side by side without flushing each other's chain.
 *
 * Layout (per family; shown for IPv4):
 *   map pods4  { type ipv4_addr : mark }                               pod address      -> owner tag
 *   map local4 { type ipv4_addr . ipv4_addr : mark; flags interval }   pod address . pod subnet -> owner tag
 *   chain postrouting { type nat hook postrouting priority srcnat
 *     ip saddr . ip daddr @local4 return                      # to its own subnet: keep the pod's address
 *     ip saddr @pods4 ip daddr != 224.0.0.0/4 masquerade      # anywhere else but multicast: masquerade
 *   }
 * Four rules in all, whatever the number of pods: a pod costs two hash/interval lookups, never a rule walk.
 *
 * Why maps with an owner tag, not plain sets: an address can move from a deleted attachment A to a new one B
 * before A's DEL has run (IPAM released it first). A's late DEL must not remove B's element, and a comment cannot
 * protect it, because the kernel deletes elements by key alone. The tag (32 bits of a hash of network, containerID
 * and ifname) makes the ownership test atomic: `add element { key : tagA }` is a no-op when A owns the key, creates
 * it when nobody does, and fails with EEXIST when another tag is there. So every delete is sent as
 *   add element M { key : tag }; delete element M { key }
 * in one transaction: it removes A's element, is harmless when there is none, and aborts when B owns it.
 * The element comment (`<hash16(network)>-<hash16(ifname:containerID)>`, the reference's instance hash, 33 of the
 * 128 characters nft allows) is what DEL and GC search for: the tag is too short to name a network.
 *
 * The negated map lookup `ip saddr . ip daddr != @local4` would save a rule, but kernels before 6.x refuse an
 * inverted lookup into a map (EINVAL), hence `return` first.
 */
import { createHash } from "node:crypto";
import { bigIntToIP, parseCidr, parseIP } from "./cidr.js";
import { CniError, ErrorCode } from "./errors.js";
import { run } from "./exec.js";
import { log } from "./log.js";
import { hasExecutable, requireExecutable, type NormalizedMasqEntry } from "./masq.js";
import { inNetns } from "./netns.js";
import type { Attachment } from "./types.js";

/** Family and name of our table (`nft list table inet cni_ts_masq`). */
export const MASQ_NFT_TABLE = "inet cni_ts_masq";
const TABLE_NAME = "cni_ts_masq";
const CHAIN = "postrouting";
const TIMEOUT_MS = 20_000;
// A transaction that lost a race (another plugin changed an element between our read and our write) is re-read
// and re-sent; three rounds are plenty, since each loss means another writer made progress.
const ATTEMPTS = 3;

interface FamilyLayout {
  family: 4 | 6;
  pods: string;
  local: string;
  proto: "ip" | "ip6";
  type: "ipv4_addr" | "ipv6_addr";
  multicast: { addr: string; len: number };
}

const LAYOUT: Record<4 | 6, FamilyLayout> = {
  4: { family: 4, pods: "pods4", local: "local4", proto: "ip", type: "ipv4_addr", multicast: { addr: "224.0.0.0", len: 4 } },
  6: { family: 6, pods: "pods6", local: "local6", proto: "ip6", type: "ipv6_addr", multicast: { addr: "ff00::", len: 8 } },
};
const MAPS = new Set(["pods4", "local4", "pods6", "local6"]);

function sha512hex(s: string): string {
  return createHash("sha512").update(s).digest("hex");
}

/** The element comment of an attachment: the same instance hash the reference's nftables backend puts in its rule comments. */
export function nftMasqComment(network: string, containerID: string, ifname: string): string {
  return `${networkHash(network)}-${sha512hex(`${ifname}:${containerID}`).slice(0, 16)}`;
}

function networkHash(network: string): string {
  return sha512hex(network).slice(0, 16);
}

/** The owner tag stored as element data: 32 bits of a hash of the whole attachment identity. */
export function nftMasqTag(network: string, containerID: string, ifname: string): number {
  return parseInt(sha512hex(`${network}\n${containerID}\n${ifname}`).slice(0, 8), 16);
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

/** One element of one of our maps, as we write it and as we read it back. */
interface Elem {
  map: string;
  /** nft text of the key: "10.1.0.5" or "10.1.0.5 . 10.1.0.0/24". */
  key: string;
  /** The pod address (first key component), to find every element of one address. */
  ip: string;
  tag: number;
  comment?: string;
}

/** The rules of the chain, in nft syntax and in the JSON form `nft -j` prints them (for CHECK). */
function constantRules(): { text: string; json: unknown[] }[] {
  const out: { text: string; json: unknown[] }[] = [];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    const saddr = { payload: { protocol: f.proto, field: "saddr" } };
    const daddr = { payload: { protocol: f.proto, field: "daddr" } };
    out.push({
      text: `${f.proto} saddr . ${f.proto} daddr @${f.local} return`,
      json: [{ match: { op: "==", left: { concat: [saddr, daddr] }, right: `@${f.local}` } }, { return: null }],
    });
    out.push({
      text: `${f.proto} saddr @${f.pods} ${f.proto} daddr != ${f.multicast.addr}/${f.multicast.len} masquerade`,
      json: [
        { match: { op: "==", left: saddr, right: `@${f.pods}` } },
        { match: { op: "!=", left: daddr, right: { prefix: f.multicast } } },
        { masquerade: null },
      ],
    });
  }
  return out;
}

/**
 * Declarations that make ADD self-sufficient: `add` of an existing table, map or chain is a no-op, and the chain
 * is flushed and refilled so that a damaged or older rule set is repaired by the next ADD. All of it lands in one
 * transaction, so no packet ever sees the chain empty.
 */
function declarations(): string[] {
  const lines = [`add table ${MASQ_NFT_TABLE} { comment "cni-ts bridge ipMasq: masquerade pod traffic leaving its subnet"; }`];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    lines.push(`add map ${MASQ_NFT_TABLE} ${f.pods} { type ${f.type} : mark; comment "pod address -> owner tag"; }`);
    lines.push(`add map ${MASQ_NFT_TABLE} ${f.local} { type ${f.type} . ${f.type} : mark; flags interval; comment "pod address . pod subnet -> owner tag"; }`);
  }
  lines.push(`add chain ${MASQ_NFT_TABLE} ${CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`);
  lines.push(`flush chain ${MASQ_NFT_TABLE} ${CHAIN}`);
  for (const r of constantRules()) lines.push(`add rule ${MASQ_NFT_TABLE} ${CHAIN} ${r.text}`);
  return lines;
}

function addLine(e: Elem): string {
  const comment = e.comment === undefined ? "" : ` comment "${e.comment}"`;
  return `add element ${MASQ_NFT_TABLE} ${e.map} { ${e.key}${comment} : ${hex32(e.tag)} }`;
}

/** Delete `e` only if it still carries `e.tag` (see the file comment); a no-op when it is gone. */
function guardedDelete(e: Elem): string[] {
  return [`add element ${MASQ_NFT_TABLE} ${e.map} { ${e.key} : ${hex32(e.tag)} }`, `delete element ${MASQ_NFT_TABLE} ${e.map} { ${e.key} }`];
}

function elementsOf(entries: readonly NormalizedMasqEntry[]): Elem[] {
  const out = new Map<string, Elem>();
  for (const e of entries) {
    const f = LAYOUT[e.family];
    const tag = nftMasqTag(e.network, e.containerID, e.ifname);
    const comment = nftMasqComment(e.network, e.containerID, e.ifname);
    const pods: Elem = { map: f.pods, key: e.ip, ip: e.ip, tag, comment };
    const local: Elem = { map: f.local, key: `${e.ip} . ${e.subnet}`, ip: e.ip, tag, comment };
    out.set(`${pods.map} ${pods.key}`, pods);
    out.set(`${local.map} ${local.key}`, local);
  }
  return [...out.values()];
}

async function nftScript(lines: readonly string[], netns: string | undefined): Promise<{ ok: boolean; stderr: string }> {
  const [file, args] = inNetns(netns, "nft", ["-f", "-"]);
  const r = await run(file, args, { input: lines.join("\n") + "\n", timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw new CniError(ErrorCode.TryAgainLater, "nft -f -: timed out");
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

// EEXIST: an ownership guard met another owner's element, or an interval overlapped another element.
const isClash = (stderr: string): boolean => /File exists/.test(stderr);
// ENOENT: table or map missing.
const isMissing = (stderr: string): boolean => /No such file or directory/.test(stderr);

interface Listing {
  elems: Elem[];
  /** undefined when the chain does not exist. */
  chain?: { hook?: string; type?: string; rules: unknown[][] };
}

/** Read our table in one `nft -j list table`; undefined when it does not exist. */
async function listTable(netns: string | undefined): Promise<Listing | undefined> {
  const [file, args] = inNetns(netns, "nft", ["-j", "list", "table", "inet", TABLE_NAME]);
  const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw new CniError(ErrorCode.TryAgainLater, `nft list table ${MASQ_NFT_TABLE}: timed out`);
  if (r.code !== 0) {
    if (isMissing(r.stderr)) return undefined;
    throw new CniError(ErrorCode.KernelOperationFailed, `nft list table ${MASQ_NFT_TABLE}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  let doc: { nftables?: Record<string, unknown>[] };
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `nft -j list table ${MASQ_NFT_TABLE}: unparsable JSON`, r.stdout.slice(0, 200));
  }
  const out: Listing = { elems: [] };
  for (const obj of doc.nftables ?? []) {
    const map = obj.map as { name?: string; elem?: unknown[] } | undefined;
    if (map?.name !== undefined && MAPS.has(map.name)) {
      for (const item of map.elem ?? []) {
        const e = parseElem(map.name, item);
        if (e) out.elems.push(e);
      }
    }
    const chain = obj.chain as { name?: string; hook?: string; type?: string } | undefined;
    if (chain?.name === CHAIN) out.chain = { hook: chain.hook, type: chain.type, rules: out.chain?.rules ?? [] };
    const rule = obj.rule as { chain?: string; expr?: unknown[] } | undefined;
    if (rule?.chain === CHAIN) {
      out.chain ??= { rules: [] };
      out.chain.rules.push(rule.expr ?? []);
    }
  }
  return out;
}

/** One map element of `nft -j`: `[ {elem: {val, comment}} | val, data ]`; val is an address or {concat: [addr, prefix]}. */
function parseElem(map: string, item: unknown): Elem | undefined {
  if (!Array.isArray(item) || item.length !== 2 || typeof item[1] !== "number") return undefined;
  let val: unknown = item[0];
  let comment: string | undefined;
  if (typeof val === "object" && val !== null && "elem" in val) {
    const inner = (val as { elem: { val?: unknown; comment?: unknown } }).elem;
    val = inner.val;
    if (typeof inner.comment === "string") comment = inner.comment;
  }
  const tag = item[1];
  if (map.startsWith("pods")) {
    const ip = typeof val === "string" ? parseIP(val) : undefined;
    if (!ip) return undefined;
    const text = bigIntToIP(ip.family, ip.value);
    return { map, key: text, ip: text, tag, comment };
  }
  const parts = (val as { concat?: unknown[] } | null)?.concat;
  if (!Array.isArray(parts) || parts.length !== 2) return undefined;
  const ip = typeof parts[0] === "string" ? parseIP(parts[0]) : undefined;
  if (!ip) return undefined;
  const net = parts[1];
  const bits = ip.family === 4 ? 32 : 128;
  // A /32 (/128) subnet comes back as a bare address, any other prefix as {prefix: {addr, len}}.
  const cidr =
    typeof net === "string"
      ? parseCidr(`${net}/${bits}`)
      : parseCidr(`${(net as { prefix?: { addr?: string } }).prefix?.addr ?? ""}/${(net as { prefix?: { len?: number } }).prefix?.len ?? ""}`);
  if (!cidr) return undefined;
  const ipText = bigIntToIP(ip.family, ip.value);
  return { map, key: `${ipText} . ${bigIntToIP(cidr.family, cidr.network)}/${cidr.prefix}`, ip: ipText, tag, comment };
}

/** ADD for the nftables backend: one transaction in the common case (no element of another owner in the way). */
export async function nftAddMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<void> {
  requireExecutable("nft");
  const wanted = elementsOf(entries);
  let r = await nftScript([...declarations(), ...wanted.map(addLine)], netns);
  for (let attempt = 1; !r.ok && attempt <= ATTEMPTS && isClash(r.stderr); attempt++) {
    // Some key is held by another tag (an address reused before its old owner's DEL, or our own element with an
    // older subnet): the newest ADD owns the address, so take every element of our addresses over, each delete
    // guarded by the tag we saw, so a concurrent change makes this round fail instead of deleting blindly.
    const listing = (await listTable(netns)) ?? { elems: [] };
    const lines = declarations();
    const seen = new Set<string>();
    for (const w of wanted) {
      for (const e of listing.elems) {
        if (e.map !== w.map || e.ip !== w.ip || (e.key === w.key && e.tag === w.tag)) continue;
        const id = `${e.map} ${e.key}`;
        if (seen.has(id)) continue;
        seen.add(id);
        lines.push(...guardedDelete(e));
      }
    }
    lines.push(...wanted.map(addLine));
    r = await nftScript(lines, netns);
  }
  if (!r.ok) throw new CniError(ErrorCode.KernelOperationFailed, `nftables ipMasq setup failed: ${r.stderr}`);
}

/** DEL for the nftables backend: by "ip/prefix" hints when given, else (or when they fall short) by element comment. */
export async function nftDelMasq(network: string, containerID: string, ifname: string, hints: readonly string[], netns?: string): Promise<void> {
  if (!hasExecutable("nft")) return;
  const tag = nftMasqTag(network, containerID, ifname);
  const comment = nftMasqComment(network, containerID, ifname);
  const hinted = hints.map((h) => parseCidr(h)).filter((c) => c !== undefined);
  if (hinted.length > 0 && hinted.length === hints.length) {
    const lines: string[] = [];
    for (const c of hinted) {
      const f = LAYOUT[c.family];
      const ip = bigIntToIP(c.family, c.ip);
      const net = `${bigIntToIP(c.family, c.network)}/${c.prefix}`;
      lines.push(...guardedDelete({ map: f.pods, key: ip, ip, tag }), ...guardedDelete({ map: f.local, key: `${ip} . ${net}`, ip, tag }));
    }
    // Success means every hinted element is gone or was never there. A failure (the table is missing, or one of
    // the addresses already belongs to another attachment) aborts the whole transaction: sort it out by comment.
    const r = await nftScript(lines, netns);
    if (r.ok) return;
    log.debug(`ipMasq: nftables DEL by hints failed (${r.stderr}); looking for the elements by comment`);
  }
  await deleteMatching(netns, (e) => e.comment === comment, `attachment ${network}/${containerID}/${ifname}`);
}

/** Delete every element `select` picks, guarded by its owner tag, re-reading after a lost race. */
async function deleteMatching(netns: string | undefined, select: (e: Elem) => boolean, what: string): Promise<void> {
  let last = "";
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const listing = await listTable(netns);
    if (!listing) return;
    const doomed = listing.elems.filter(select);
    if (doomed.length === 0) return;
    const r = await nftScript(doomed.flatMap(guardedDelete), netns);
    if (r.ok) return;
    last = r.stderr;
    if (!isClash(r.stderr) && !isMissing(r.stderr)) break;
  }
  throw new CniError(ErrorCode.KernelOperationFailed, `nftables ipMasq teardown of ${what} failed: ${last}`);
}

/** GC for the nftables backend: elements whose comment names `network` but none of the valid attachments. */
export async function nftGcMasq(network: string, valid: readonly Attachment[], netns?: string): Promise<void> {
  if (!hasExecutable("nft")) return;
  const prefix = `${networkHash(network)}-`;
  const keep = new Set(valid.map((a) => nftMasqComment(network, a.containerID, a.ifname)));
  await deleteMatching(netns, (e) => e.comment !== undefined && e.comment.startsWith(prefix) && !keep.has(e.comment), `network ${network}`);
}

/** CHECK for the nftables backend: the four rules, and both elements of every entry carrying the entry's tag. */
export async function nftCheckMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<string | undefined> {
  requireExecutable("nft");
  const listing = await listTable(netns);
  if (!listing) return `nftables table ${MASQ_NFT_TABLE} does not exist`;
  const chain = listing.chain;
  if (!chain || chain.type !== "nat" || chain.hook !== "postrouting") return `nftables chain ${MASQ_NFT_TABLE} ${CHAIN} is missing or is not a nat postrouting chain`;
  const expected = constantRules();
  const actual = chain.rules.map((r) => JSON.stringify(r));
  const missingRule = expected.find((r) => !actual.includes(JSON.stringify(r.json)));
  if (missingRule) return `nftables chain ${MASQ_NFT_TABLE} ${CHAIN} lacks the rule "${missingRule.text}"`;
  for (const entry of entries) {
    const who = `attachment ${entry.network}/${entry.containerID}/${entry.ifname}`;
    for (const w of elementsOf([entry])) {
      const e = listing.elems.find((x) => x.map === w.map && x.key === w.key);
      if (!e) return `nftables map ${w.map} has no element ${w.key} for ${who}`;
      if (e.tag !== w.tag) return `nftables element ${w.key} of map ${w.map} belongs to another attachment than ${who}`;
    }
  }
  return undefined;
}
