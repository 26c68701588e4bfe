/**
 * iptables backend of ipMasq, in the reference's layout (`plugins:pkg/ip/ipmasq_iptables_linux.go`), so that the
 * reference bridge and ours recognise, check and delete each other's rules:
 *
 *   -N CNI-<sha512(network + containerID) hex, 24 chars>                         (table nat)
 *   -A CNI-…  -d <subnet>     -m comment --comment "name: \"<net>\" id: \"<id>\"" -j ACCEPT
 *   -A CNI-…  ! -d 224.0.0.0/4 -m comment --comment "…"                          -j MASQUERADE   (IPv6: ff00::/8)
 *   -A POSTROUTING -s <ip>/32 -m comment --comment "…"                           -j CNI-…
 *
 * The chain is per (network, containerID): the reference ignores ifname "for historical reasons", and so must we
 * to share its chain names. Two interfaces of one container on one network therefore share a chain, and a DEL of
 * either removes both masquerades.
 *
 * Every change is one `iptables-restore --noflush` per family, after one `iptables-save -t nat` to learn what is
 * there: the restore applies atomically (one nft transaction under iptables-nft, one table replace under legacy),
 * and no rule text depends on the caller knowing the pod's addresses, which a DEL often does not (plugins#810).
 * Differences from the reference, all on the side of fewer leftovers: a re-ADD rebuilds the chain with every
 * ACCEPT before the MASQUERADE (the reference's AppendUnique puts a second subnet's ACCEPT after it, where it never
 * matches), DEL finds the jumps by target instead of by address, and GC works (the reference's is a FIXME).
 */
import type { Family } from "../cidr.js";
import { CniError, ErrorCode } from "../errors.js";
import { hashHex } from "../hash.js";
import type { Attachment } from "../types.js";
import { canonicalCidr, hostAddr, hostCidr } from "./addr.js";
import { requireTool } from "./backend.js";
import { deleteChains, IPTABLES, restoreTable, restoreWithRetry, saveTable } from "./iptables.js";
import {
  option,
  parseSave,
  quoteWord,
  ruleComment,
  ruleTarget,
  rulesOf,
  tokenize,
  type SavedRule,
  type SavedTable,
} from "./iptables-save.js";
import type { LiveMasqKeys, NormalizedMasqEntry } from "./masq-entry.js";

const MULTICAST: Record<Family, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };

/** The reference's chain name: "CNI-" + sha512(network + containerID) in hex, cut to 28 characters. */
export function iptablesMasqChain(network: string, containerID: string): string {
  return `CNI-${hashHex("sha512", network + containerID)}`.slice(0, 28);
}

/** The reference's rule comment, Go's `name: %q id: %q` (identical to JSON quoting for the names we accept). */
export function iptablesMasqComment(network: string, containerID: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerID)}`;
}

/** ADD for the iptables backend: per family one save and one restore, whatever the number of entries. */
export async function iptAddMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<void> {
  for (const family of [4, 6] as const) {
    const mine = entries.filter((e) => e.family === family);
    if (mine.length === 0) continue;
    requireTool(IPTABLES[family].save, "ipMasq");
    requireTool(IPTABLES[family].restore, "ipMasq");
    // The usual case, a container's first attachment on this network: its chain does not exist yet, so the whole
    // layout can be written without reading the table. `-N` fails if the chain exists (another interface of the
    // container, a leftover), and then nothing of the restore is applied and the read-and-compute path decides.
    if ((await restoreTable(family, "nat", addLines(mine, family, EMPTY_NAT, true), netns)).ok) continue;
    const error = await restoreWithRetry(
      family,
      "nat",
      async () => {
        const saved = await saveTable(family, "nat", netns);
        if (!saved.ok)
          throw new CniError(ErrorCode.KernelOperationFailed, `iptables ipMasq setup failed: ${saved.error}`);
        return addLines(mine, family, saved.table);
      },
      netns,
    );
    if (error !== undefined)
      throw new CniError(ErrorCode.KernelOperationFailed, `iptables ipMasq setup failed: ${error}`);
  }
}

const EMPTY_NAT: SavedTable = parseSave("");

function addLines(
  entries: readonly NormalizedMasqEntry[],
  family: Family,
  nat: SavedTable,
  createChains = false,
): string[] {
  const groups = new Map<string, { comment: string; subnets: string[]; ips: string[] }>();
  for (const e of entries) {
    const chain = iptablesMasqChain(e.network, e.containerID);
    let g = groups.get(chain);
    if (!g) {
      // Keep the subnets already accepted: another interface of the same container on the same network shares
      // this chain (the reference's AppendUnique keeps them too).
      const kept = rulesOf(nat, chain)
        .filter((r) => ruleTarget(r) === "ACCEPT")
        .map((r) => option(r.args, "-d"))
        .filter((d) => d !== undefined && !d.negated)
        .map((d) => canonicalCidr(d!.value, family))
        .filter((d) => d !== undefined);
      g = { comment: quoteWord(iptablesMasqComment(e.network, e.containerID)), subnets: kept, ips: [] };
      groups.set(chain, g);
    }
    if (!g.subnets.includes(e.subnet)) g.subnets.push(e.subnet);
    if (!g.ips.includes(e.ip)) g.ips.push(e.ip);
  }
  const lines: string[] = [];
  const same = (a: readonly string[], b: readonly string[]) =>
    a.length === b.length && a.every((l, i) => tokenize(l).join("\0") === tokenize(b[i]!).join("\0"));
  for (const [chain, g] of groups) {
    const want = [
      ...g.subnets.map((s) => `-A ${chain} -d ${s} -m comment --comment ${g.comment} -j ACCEPT`),
      `-A ${chain} ! -d ${MULTICAST[family]} -m comment --comment ${g.comment} -j MASQUERADE`,
    ];
    const have = rulesOf(nat, chain).map((r) => r.raw);
    // A chain that is already right stays untouched, so a repeated ADD keeps its counters and costs no write.
    // Otherwise declaring it under --noflush flushes it (legacy and nft alike) and it is rebuilt whole.
    if (createChains) lines.push(`-N ${chain}`, ...want);
    else if (!nat.chains.has(chain) || !same(have, want)) lines.push(`:${chain} - [0:0]`, ...want);
    for (const ip of g.ips) {
      if (!jumpsFrom(nat, chain, ip, family))
        lines.push(`-A POSTROUTING -s ${ip} -m comment --comment ${g.comment} -j ${chain}`);
    }
  }
  return lines;
}

/** Whether POSTROUTING sends traffic from `ip` to `chain`. */
function jumpsFrom(nat: SavedTable, chain: string, ip: string, family: Family): boolean {
  return rulesOf(nat, "POSTROUTING").some(
    (r) => ruleTarget(r) === chain && canonicalCidr(option(r.args, "-s")?.value ?? "", family) === hostCidr(ip, family),
  );
}

/** Remove chains (lib/netfilter/iptables deleteChains) and throw code 100 with the first family's error. */
async function deleteMasqChains(
  netns: string | undefined,
  pick: (nat: SavedTable) => Set<string> | Promise<Set<string>>,
  what: string,
  keepJump?: (r: SavedRule) => boolean,
  blind?: Partial<Record<Family, readonly string[]>>,
): Promise<void> {
  const failed = await deleteChains({ table: "nat", pick, keepJump, blind, who: "ipMasq", netns });
  if (failed.length > 0)
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `iptables ipMasq teardown of ${what} failed: ${failed[0]!.stderr}`,
    );
}

/**
 * DEL for the iptables backend. With the attachment's addresses ("ip/prefix" hints, from prevResult), only the
 * POSTROUTING jumps from those addresses go, and the per-container chain goes once nothing jumps to it: another
 * interface of the same pod on the same network keeps its masquerade. Without hints (no prevResult), every jump to
 * the chain and the chain itself go, as the reference's teardown does.
 */
export async function iptDelMasq(
  network: string,
  containerID: string,
  netns?: string,
  hints: readonly string[] = [],
): Promise<void> {
  const chain = iptablesMasqChain(network, containerID);
  const mine = new Set(hints.flatMap((h) => hostAddr(h) ?? []));
  const keepJump =
    mine.size === 0
      ? undefined
      : (r: SavedRule) => {
          const src = option(r.args, "-s")?.value;
          const a = src ? hostAddr(src) : undefined;
          return a !== undefined && !mine.has(a);
        };
  // What ADD wrote for these addresses, when the attachment is this container's only one on the network: its jumps,
  // then the chain. One restore instead of a save and a restore on every pod's DEL.
  const comment = quoteWord(iptablesMasqComment(network, containerID));
  const blind: Partial<Record<Family, string[]>> = {};
  for (const ip of mine) {
    const family = ip.includes(":") ? 6 : 4;
    blind[family] ??= [];
    blind[family].push(`-D POSTROUTING -s ${hostCidr(ip, family)} -m comment --comment ${comment} -j ${chain}`);
  }
  for (const lines of Object.values(blind)) lines.push(`-F ${chain}`, `-X ${chain}`);
  await deleteMasqChains(netns, () => new Set([chain]), `${network}/${containerID}`, keepJump, blind);
}

/** The reference comment's (network, containerID), or undefined for any other comment. */
function parseComment(text: string): { network: string; containerID: string } | undefined {
  const m = /^name: ("(?:[^"\\]|\\.)*") id: ("(?:[^"\\]|\\.)*")$/.exec(text);
  if (!m) return undefined;
  try {
    return { network: JSON.parse(m[1]!) as string, containerID: JSON.parse(m[2]!) as string };
  } catch {
    return undefined;
  }
}

/**
 * GC for the iptables backend: masquerade chains of `network` whose containerID is not among the valid attachments'
 * and that no live attachment names (`live`, asked after each read of the nat table, only when a chain is stale).
 * A chain is recognised by a rule comment naming the network and a container whose chain name is that very chain;
 * portmap's chains carry the same comment under other names and are left alone. A chain without any rule names
 * nobody and stays.
 */
export async function iptGcMasq(
  network: string,
  valid: readonly Attachment[],
  netns?: string,
  live?: LiveMasqKeys,
): Promise<void> {
  const keep = new Set(valid.map((a) => a.containerID));
  await deleteMasqChains(
    netns,
    async (nat) => {
      const stale = new Set<string>();
      for (const r of nat.rules) {
        const c = ruleComment(r);
        const id = c !== undefined ? parseComment(c) : undefined;
        if (!id || id.network !== network || keep.has(id.containerID)) continue;
        const chain = iptablesMasqChain(id.network, id.containerID);
        if (r.chain === chain || ruleTarget(r) === chain) stale.add(chain);
      }
      // A jump an ADD adds after this read keeps its chain anyway: the restore then fails on "-X" (chain in use)
      // and the next round reads again.
      if (stale.size > 0 && live) for (const chain of await live()) stale.delete(chain);
      return stale;
    },
    `network ${network}`,
  );
}

/** CHECK for the iptables backend: chain, its ACCEPT and MASQUERADE rules, and the POSTROUTING jump per address. */
export async function iptCheckMasq(
  entries: readonly NormalizedMasqEntry[],
  netns?: string,
): Promise<string | undefined> {
  for (const family of [4, 6] as const) {
    const mine = entries.filter((e) => e.family === family);
    if (mine.length === 0) continue;
    requireTool(IPTABLES[family].save, "ipMasq");
    const saved = await saveTable(family, "nat", netns);
    if (!saved.ok) return `cannot read the nat table: ${saved.error}`;
    const nat = saved.table;
    for (const e of mine) {
      const chain = iptablesMasqChain(e.network, e.containerID);
      const who = `${e.network}/${e.containerID}`;
      if (!nat.chains.has(chain)) return `iptables chain ${chain} (nat) of ${who} is missing`;
      const rules = rulesOf(nat, chain);
      const masq = rules.findIndex((r) => {
        const d = option(r.args, "-d");
        return (
          ruleTarget(r) === "MASQUERADE" && d?.negated === true && canonicalCidr(d.value, family) === MULTICAST[family]
        );
      });
      if (masq < 0) return `iptables chain ${chain} of ${who} has no "! -d ${MULTICAST[family]} -j MASQUERADE" rule`;
      const accept = rules.findIndex((r) => {
        const d = option(r.args, "-d");
        return ruleTarget(r) === "ACCEPT" && d?.negated === false && canonicalCidr(d.value, family) === e.subnet;
      });
      if (accept < 0 || accept > masq)
        return `iptables chain ${chain} of ${who} does not accept traffic to ${e.subnet} before masquerading`;
      if (!jumpsFrom(nat, chain, e.ip, family))
        return `iptables has no POSTROUTING rule sending traffic from ${e.ip} to ${chain} (${who})`;
    }
  }
  return undefined;
}
