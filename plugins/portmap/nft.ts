/**
 * nftables backend: reads our table once (`nft -j list table`), then applies one transaction (`nft -f -`).
 * Layout and element syntax: nft-rules.ts.
 */
import { parseIP } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { hasExecutable } from "../../lib/exec.js";
import { requireTool } from "../../lib/netfilter/backend.js";
import { chainsOf, elementsOf, nftApplyWithRetry, nftListTable, parseNftJson } from "../../lib/netfilter/nft.js";
import type { Attachment } from "../../lib/types.js";
import type { PortmapConfig } from "./config.js";
import { nftNetworkTag, nftOwner } from "./identity.js";
import {
  addLines,
  BASE_CHAINS,
  claimOfMapElem,
  claimsOverlap,
  declarations,
  desiredState,
  dropMapElem,
  dropRule,
  dropSetElem,
  LAYOUT,
  parseCondComment,
  PORTMAP_NFT_TABLE,
  TABLE_NAME,
  type Claim,
  type MapElem,
  type SetElem,
} from "./nft-rules.js";
import type { PodAddr } from "./pod.js";

const MAPS = new Set(["dnat4", "dnatip4", "dnat6", "dnatip6"]);
const SETS = new Set(["masq4", "masq6"]);

/** What our table holds, as far as portmap needs to know. */
export interface Listing {
  maps: Array<MapElem & { owner?: string }>;
  sets: Array<SetElem & { owner?: string }>;
  rules: Array<{ handle: number; comment?: string; owner?: string; claim?: Claim }>;
  chains: Map<string, { hook?: string; type?: string; rules: string[] }>;
}

/** One component of a concatenated key or value in nft's element syntax. */
function part(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") {
    const ip = parseIP(v);
    return ip ? v.toLowerCase() : v;
  }
  const o = v as { prefix?: { addr?: string; len?: number }; range?: unknown[] } | null;
  if (o?.prefix) {
    const full = o.prefix.len === (String(o.prefix.addr).includes(":") ? 128 : 32);
    return full ? String(o.prefix.addr) : `${o.prefix.addr}/${o.prefix.len}`;
  }
  if (Array.isArray(o?.range)) return `${part(o.range[0])}-${part(o.range[1])}`;
  return JSON.stringify(v);
}

function concatText(v: unknown): string {
  const c = (v as { concat?: unknown[] } | null)?.concat;
  return Array.isArray(c) ? c.map(part).join(" . ") : part(v);
}

/** Parse `nft -j list table inet cni_ts_portmap` output. */
export function parseListing(json: string): Listing {
  return listingOf(parseNftJson(json, `nft -j list table ${PORTMAP_NFT_TABLE}`));
}

/** Our view of the objects `nft -j list table` printed. */
function listingOf(objects: readonly Record<string, unknown>[]): Listing {
  const out: Listing = { maps: [], sets: [], rules: [], chains: new Map() };
  for (const [name, elems] of elementsOf(objects)) {
    for (const e of elems) {
      if (MAPS.has(name) && e.value !== undefined)
        out.maps.push({ map: name, key: concatText(e.val), value: concatText(e.value), owner: e.comment });
      else if (SETS.has(name) && e.value === undefined)
        out.sets.push({ set: name, key: concatText(e.val), owner: e.comment });
    }
  }
  for (const [name, chain] of chainsOf(objects)) {
    out.chains.set(name, { hook: chain.hook, type: chain.type, rules: chain.rules.map((r) => JSON.stringify(r.expr)) });
    if (name !== "conditional") continue;
    for (const rule of chain.rules) {
      if (rule.handle === undefined) continue;
      const fam = /"ipv6"|"(family|protocol)":"ip6"/.test(JSON.stringify(rule.expr)) ? 6 : 4;
      const parsed = rule.comment !== undefined ? parseCondComment(rule.comment, fam) : undefined;
      out.rules.push({
        handle: rule.handle,
        comment: rule.comment,
        owner: parsed?.owner ?? rule.comment?.split(" ")[0],
        claim: parsed?.claim,
      });
    }
  }
  return out;
}

async function listTable(): Promise<Listing | undefined> {
  const objects = await nftListTable(TABLE_NAME);
  return objects && listingOf(objects);
}

/** Lines removing every element and conditional rule whose owner `pick` selects. */
function dropLines(listing: Listing, pick: (owner: string | undefined) => boolean): string[] {
  return [
    ...listing.maps.filter((e) => pick(e.owner)).flatMap(dropMapElem),
    ...listing.sets.filter((e) => pick(e.owner)).flatMap(dropSetElem),
    ...listing.rules.filter((r) => pick(r.owner)).map((r) => dropRule(r.handle)),
  ];
}

/** All claims of owners other than `owner` in the listing. */
function foreignClaims(listing: Listing, owner: string): Array<{ claim: Claim; owner?: string; to: string }> {
  const out: Array<{ claim: Claim; owner?: string; to: string }> = [];
  for (const e of listing.maps) {
    const claim = claimOfMapElem(e);
    if (claim && e.owner !== owner) out.push({ claim, owner: e.owner, to: e.value.replace(" . ", ":") });
  }
  for (const r of listing.rules)
    if (r.claim && r.owner !== owner) out.push({ claim: r.claim, owner: r.owner, to: "a conditional rule" });
  return out;
}

/** ADD: code 102 for a hostPort another attachment holds; otherwise one transaction replacing our state. */
export async function nftAdd(
  conf: PortmapConfig,
  containerID: string,
  ifname: string,
  pods: readonly PodAddr[],
): Promise<void> {
  requireTool("nft", "portmap");
  const owner = nftOwner(conf.name, containerID, ifname);
  // Derived again in every round, from the state that round reads.
  const failed = await nftApplyWithRetry(TABLE_NAME, async () => {
    const want = desiredState(conf, owner, pods);
    const listing = await listTable();
    const lines = declarations();
    if (listing) {
      const theirs = foreignClaims(listing, owner);
      for (const c of want.claims) {
        const hit = theirs.find((t) => claimsOverlap(t.claim, c));
        if (!hit) continue;
        throw new CniError(
          ErrorCode.AlreadyInUse,
          `hostPort ${c.port}/${c.proto}${c.hostIP ? ` on ${c.hostIP}` : ""} (IPv${c.family}) is already mapped by another attachment`,
          `owner ${hit.owner ?? "unknown"} in ${PORTMAP_NFT_TABLE} forwards it to ${hit.to}; delete that attachment first`,
        );
      }
      // A repeated ADD replaces what this attachment had: elements that stay the same are left as they are.
      const keepMap = new Set(want.maps.map((e) => `${e.map} ${e.key} ${e.value}`));
      const keepSet = new Set(want.sets.map((e) => `${e.set} ${e.key}`));
      lines.push(
        ...listing.maps
          .filter((e) => e.owner === owner && !keepMap.has(`${e.map} ${e.key} ${e.value}`))
          .flatMap(dropMapElem),
        ...listing.sets.filter((e) => e.owner === owner && !keepSet.has(`${e.set} ${e.key}`)).flatMap(dropSetElem),
        ...listing.rules.filter((r) => r.owner === owner).map((r) => dropRule(r.handle)),
      );
      const mine = new Set([
        ...listing.maps.filter((e) => e.owner === owner).map((e) => `${e.map} ${e.key} ${e.value}`),
        ...listing.sets.filter((e) => e.owner === owner).map((e) => `${e.set} ${e.key}`),
      ]);
      want.maps = want.maps.filter((e) => !mine.has(`${e.map} ${e.key} ${e.value}`));
      want.sets = want.sets.filter((e) => !mine.has(`${e.set} ${e.key}`));
    }
    return [...lines, ...addLines(want, owner)];
  });
  if (failed) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: nftables setup failed: ${failed.stderr}`);
}

/** Remove every element and rule whose owner `pick` selects, re-reading after a lost race. */
async function dropMatching(pick: (owner: string | undefined) => boolean, what: string): Promise<void> {
  if (!hasExecutable("nft")) return;
  const failed = await nftApplyWithRetry(TABLE_NAME, async () => {
    const listing = await listTable();
    return listing ? dropLines(listing, pick) : [];
  });
  if (failed)
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `portmap: nftables teardown of ${what} failed: ${failed.stderr}`,
    );
}

/** DEL: the attachment's elements and rules, found by owner; nothing else needed. */
export async function nftDel(network: string, containerID: string, ifname: string): Promise<void> {
  const owner = nftOwner(network, containerID, ifname);
  await dropMatching((o) => o === owner, `${network}/${containerID}/${ifname}`);
}

/** GC: elements and rules of `network` whose attachment is not in `valid`. */
export async function nftGc(network: string, valid: readonly Attachment[]): Promise<void> {
  const prefix = `${nftNetworkTag(network)}-`;
  const keep = new Set(valid.map((a) => nftOwner(network, a.containerID, a.ifname)));
  await dropMatching((o) => o?.startsWith(prefix) === true && !keep.has(o), `network ${network}`);
}

/** The constant structure: base chains hooked as they must be, and the rules that reference our maps and sets. */
function structureProblem(listing: Listing): string | undefined {
  for (const [name, hook] of Object.entries(BASE_CHAINS)) {
    const c = listing.chains.get(name);
    if (c?.type !== "nat" || c.hook !== hook)
      return `nftables chain ${PORTMAP_NFT_TABLE} ${name} is missing or is not a nat ${hook} chain`;
    if (name !== "postrouting" && !c.rules.some((r) => r.includes('"jump":{"target":"hostports"}')))
      return `nftables chain ${name} does not jump to hostports`;
  }
  const hostports = listing.chains.get("hostports")?.rules ?? [];
  for (const f of [LAYOUT[4], LAYOUT[6]]) {
    for (const m of [f.dnat, f.dnatip])
      if (!hostports.some((r) => r.includes(`"@${m}"`))) return `nftables chain hostports does not look up @${m}`;
    const post = listing.chains.get("postrouting")?.rules ?? [];
    if (!post.some((r) => r.includes(`"@${f.masq}"`) && r.includes("masquerade")))
      return `nftables chain postrouting does not masquerade by @${f.masq}`;
  }
  if (!hostports.some((r) => r.includes('"jump":{"target":"conditional"}')))
    return "nftables chain hostports does not jump to conditional";
  return undefined;
}

/** CHECK: structure, then every element and rule ADD made, owned by this attachment. */
export async function nftCheck(
  conf: PortmapConfig,
  containerID: string,
  ifname: string,
  pods: readonly PodAddr[],
): Promise<string | undefined> {
  requireTool("nft", "portmap");
  const owner = nftOwner(conf.name, containerID, ifname);
  const want = desiredState(conf, owner, pods);
  const listing = await listTable();
  if (!listing) return `nftables table ${PORTMAP_NFT_TABLE} does not exist`;
  const problem = structureProblem(listing);
  if (problem) return problem;
  for (const e of want.maps) {
    const have = listing.maps.find((x) => x.map === e.map && x.key === e.key);
    if (!have) return `nftables map ${e.map} has no element ${e.key} -> ${e.value}`;
    if (have.owner !== owner || have.value !== e.value)
      return `nftables map ${e.map} element ${e.key} maps to ${have.value} for owner ${have.owner ?? "unknown"}, not to ${e.value} for this attachment (${owner})`;
  }
  for (const e of want.sets) {
    if (!listing.sets.some((x) => x.set === e.set && x.key === e.key && x.owner === owner))
      return `nftables set ${e.set} has no element ${e.key} of this attachment`;
  }
  for (const r of want.rules) {
    if (!listing.rules.some((x) => x.comment === r.comment))
      return `nftables chain conditional has no rule "${r.text}"`;
  }
  return undefined;
}
