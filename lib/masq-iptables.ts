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
import { hashHex } from "./hash.js";
import { bigIntToIP, parseCidr } from "./cidr.js";
import { option, parseSave, tokenize, type SavedNat, type SavedRule } from "./iptables-save.js";
import { CniError, ErrorCode } from "./errors.js";
import { run, timedOutError } from "./exec.js";
import { log } from "./log.js";
import { hasExecutable, requireExecutable, type LiveMasqKeys, type NormalizedMasqEntry } from "./masq.js";
import { inNetns } from "./netns.js";
import type { Attachment } from "./types.js";

const TIMEOUT_MS = 20_000;
// A restore that lost a race (a concurrent DEL removed the rule or chain we meant to delete) is recomputed.
const ATTEMPTS = 3;
const MULTICAST: Record<4 | 6, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };
const TOOLS: Record<4 | 6, { save: string; restore: string }> = {
  4: { save: "iptables-save", restore: "iptables-restore" },
  6: { save: "ip6tables-save", restore: "ip6tables-restore" },
};

/** The reference's chain name: "CNI-" + sha512(network + containerID) in hex, cut to 28 characters. */
export function iptablesMasqChain(network: string, containerID: string): string {
  return ("CNI-" + hashHex("sha512", network + containerID)).slice(0, 28);
}

/** The reference's rule comment, Go's `name: %q id: %q` (identical to JSON quoting for the names we accept). */
export function iptablesMasqComment(network: string, containerID: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerID)}`;
}

/** A string in iptables-restore's quoting: double quotes, with `"` and `\` escaped. */
function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** "10.1.0.0/24", "10.1.0.5" or "10.1.0.5/32" as canonical "addr/prefix" text (iptables-save prints the prefix). */
function canonicalCidr(text: string, family: 4 | 6): string | undefined {
  const c = parseCidr(text.includes("/") ? text : `${text}/${family === 4 ? 32 : 128}`);
  return c && c.family === family ? `${bigIntToIP(c.family, c.network)}/${c.prefix}` : undefined;
}

function hostCidr(ip: string, family: 4 | 6): string {
  return `${ip}/${family === 4 ? 32 : 128}`;
}

async function saveNat(family: 4 | 6, netns: string | undefined): Promise<{ ok: true; nat: SavedNat } | { ok: false; error: string }> {
  const [file, args] = inNetns(netns, TOOLS[family].save, ["-t", "nat"]);
  const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
  if (r.code !== 0 || r.timedOut) return { ok: false, error: `${TOOLS[family].save} -t nat: ${r.timedOut ? `no answer within ${r.timeoutMs} ms, killed` : r.stderr.trim() || `exit ${r.code}`}` };
  return { ok: true, nat: parseSave(r.stdout) };
}

async function restore(family: 4 | 6, lines: readonly string[], netns: string | undefined): Promise<{ ok: boolean; stderr: string }> {
  // -w: legacy iptables takes the xtables lock instead of failing when another writer holds it; iptables-nft ignores it.
  const [file, args] = inNetns(netns, TOOLS[family].restore, ["--noflush", "-w"]);
  const r = await run(file, args, { input: ["*nat", ...lines, "COMMIT", ""].join("\n"), timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(`${TOOLS[family].restore}`, r);
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

/** ADD for the iptables backend: per family one save and one restore, whatever the number of entries. */
export async function iptAddMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<void> {
  for (const family of [4, 6] as const) {
    const mine = entries.filter((e) => e.family === family);
    if (mine.length === 0) continue;
    requireExecutable(TOOLS[family].save);
    requireExecutable(TOOLS[family].restore);
    // The usual case, a container's first attachment on this network: its chain does not exist yet, so the whole
    // layout can be written without reading the table. `-N` fails if the chain exists (another interface of the
    // container, a leftover), and then nothing of the restore is applied and the read-and-compute path decides.
    if ((await restore(family, addLines(mine, family, EMPTY_NAT, true), netns)).ok) continue;
    let error: string | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const saved = await saveNat(family, netns);
      if (!saved.ok) throw new CniError(ErrorCode.KernelOperationFailed, `iptables ipMasq setup failed: ${saved.error}`);
      const lines = addLines(mine, family, saved.nat);
      const r = lines.length === 0 ? { ok: true, stderr: "" } : await restore(family, lines, netns);
      error = r.ok ? undefined : r.stderr;
      if (r.ok) break;
    }
    if (error !== undefined) throw new CniError(ErrorCode.KernelOperationFailed, `iptables ipMasq setup failed: ${error}`);
  }
}

const EMPTY_NAT: SavedNat = parseSave("");

function addLines(entries: readonly NormalizedMasqEntry[], family: 4 | 6, nat: SavedNat, createChains = false): string[] {
  const groups = new Map<string, { comment: string; subnets: string[]; ips: string[] }>();
  for (const e of entries) {
    const chain = iptablesMasqChain(e.network, e.containerID);
    let g = groups.get(chain);
    if (!g) {
      // Keep the subnets already accepted: another interface of the same container on the same network shares
      // this chain (the reference's AppendUnique keeps them too).
      const kept = nat.rules
        .filter((r) => r.chain === chain && option(r.args, "-j")?.value === "ACCEPT")
        .map((r) => option(r.args, "-d"))
        .filter((d) => d !== undefined && !d.negated)
        .map((d) => canonicalCidr(d!.value, family))
        .filter((d) => d !== undefined);
      g = { comment: quote(iptablesMasqComment(e.network, e.containerID)), subnets: kept, ips: [] };
      groups.set(chain, g);
    }
    if (!g.subnets.includes(e.subnet)) g.subnets.push(e.subnet);
    if (!g.ips.includes(e.ip)) g.ips.push(e.ip);
  }
  const lines: string[] = [];
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((l, i) => tokenize(l).join("\0") === tokenize(b[i]!).join("\0"));
  for (const [chain, g] of groups) {
    const want = [
      ...g.subnets.map((s) => `-A ${chain} -d ${s} -m comment --comment ${g.comment} -j ACCEPT`),
      `-A ${chain} ! -d ${MULTICAST[family]} -m comment --comment ${g.comment} -j MASQUERADE`,
    ];
    const have = nat.rules.filter((r) => r.chain === chain).map((r) => r.raw);
    // A chain that is already right stays untouched, so a repeated ADD keeps its counters and costs no write.
    // Otherwise declaring it under --noflush flushes it (legacy and nft alike) and it is rebuilt whole.
    if (createChains) lines.push(`-N ${chain}`, ...want);
    else if (!nat.chains.has(chain) || !same(have, want)) lines.push(`:${chain} - [0:0]`, ...want);
    for (const ip of g.ips) {
      const present = nat.rules.some(
        (r) => r.chain === "POSTROUTING" && option(r.args, "-j")?.value === chain && canonicalCidr(option(r.args, "-s")?.value ?? "", family) === hostCidr(ip, family),
      );
      if (!present) lines.push(`-A POSTROUTING -s ${ip} -m comment --comment ${g.comment} -j ${chain}`);
    }
  }
  return lines;
}

/** Restore lines that delete `chains` and every rule jumping to them; empty when none of it exists. */
function deleteLines(nat: SavedNat, chains: ReadonlySet<string>, keepJump?: (r: SavedRule) => boolean): string[] {
  const lines: string[] = [];
  const stillUsed = new Set<string>();
  for (const r of nat.rules) {
    const target = option(r.args, "-j")?.value;
    if (target === undefined || !chains.has(target) || chains.has(r.chain)) continue;
    if (keepJump?.(r)) stillUsed.add(target);
    else lines.push(`-D ${r.raw.slice(3)}`);
  }
  // A chain another interface of the same container still jumps to stays (the chain is per container, as the
  // reference names it; its rules are the same for every interface of one network).
  for (const c of chains) if (nat.chains.has(c) && !stillUsed.has(c)) lines.push(`-F ${c}`, `-X ${c}`);
  return lines;
}

/**
 * Remove `pick(nat)` chains in one restore per family, re-reading after a lost race. A family whose tables cannot
 * be read (no binary, no kernel support) holds nothing of ours, like the reference's "supported" test.
 */
async function deleteChains(
  netns: string | undefined,
  pick: (nat: SavedNat) => Set<string> | Promise<Set<string>>,
  what: string,
  keepJump?: (r: SavedRule) => boolean,
  blind?: Partial<Record<4 | 6, readonly string[]>>,
): Promise<void> {
  // iptables and ip6tables tables are independent: both at once, since this is on every pod's DEL path.
  const errors = await Promise.all(([4, 6] as const).map(async (family) => {
    if (!hasExecutable(TOOLS[family].save) || !hasExecutable(TOOLS[family].restore)) return undefined;
    // The exact lines, tried first without reading the table: a restore is all-or-nothing, and when it fails (a rule
    // already gone, the chain still used by another interface) the read-and-compute path below decides.
    const exact = blind?.[family];
    if (exact && exact.length > 0 && (await restore(family, exact, netns)).ok) return undefined;
    let error: string | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const saved = await saveNat(family, netns);
      if (!saved.ok) {
        log.debug(`ipMasq: skipping ${TOOLS[family].save}: ${saved.error}`);
        return undefined;
      }
      const lines = deleteLines(saved.nat, await pick(saved.nat), keepJump);
      const r = lines.length === 0 ? { ok: true, stderr: "" } : await restore(family, lines, netns);
      error = r.ok ? undefined : r.stderr;
      if (r.ok) break;
    }
    return error;
  }));
  const error = errors.find((e) => e !== undefined);
  if (error !== undefined) throw new CniError(ErrorCode.KernelOperationFailed, `iptables ipMasq teardown of ${what} failed: ${error}`);
}

/**
 * DEL for the iptables backend. With the attachment's addresses ("ip/prefix" hints, from prevResult), only the
 * POSTROUTING jumps from those addresses go, and the per-container chain goes once nothing jumps to it: another
 * interface of the same pod on the same network keeps its masquerade. Without hints (no prevResult), every jump to
 * the chain and the chain itself go, as the reference's teardown does.
 */
export async function iptDelMasq(network: string, containerID: string, netns?: string, hints: readonly string[] = []): Promise<void> {
  const chain = iptablesMasqChain(network, containerID);
  const mine = new Set(hints.flatMap((h) => {
    const c = parseCidr(h.includes("/") ? h : `${h}/${h.includes(":") ? 128 : 32}`);
    return c ? [bigIntToIP(c.family, c.ip)] : [];
  }));
  const keepJump = mine.size === 0 ? undefined : (r: SavedRule) => {
    const src = option(r.args, "-s")?.value;
    const c = src ? parseCidr(src.includes("/") ? src : `${src}/${src.includes(":") ? 128 : 32}`) : undefined;
    return c !== undefined && !mine.has(bigIntToIP(c.family, c.ip));
  };
  // What ADD wrote for these addresses, when the attachment is this container's only one on the network: its jumps,
  // then the chain. One restore instead of a save and a restore on every pod's DEL.
  const comment = quote(iptablesMasqComment(network, containerID));
  const blind: Partial<Record<4 | 6, string[]>> = {};
  for (const ip of mine) {
    const family = ip.includes(":") ? 6 : 4;
    (blind[family] ??= []).push(`-D POSTROUTING -s ${hostCidr(ip, family)} -m comment --comment ${comment} -j ${chain}`);
  }
  for (const lines of Object.values(blind)) lines.push(`-F ${chain}`, `-X ${chain}`);
  await deleteChains(netns, () => new Set([chain]), `${network}/${containerID}`, keepJump, blind);
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
export async function iptGcMasq(network: string, valid: readonly Attachment[], netns?: string, live?: LiveMasqKeys): Promise<void> {
  const keep = new Set(valid.map((a) => a.containerID));
  await deleteChains(
    netns,
    async (nat) => {
      const stale = new Set<string>();
      for (const r of nat.rules) {
        const c = option(r.args, "--comment");
        const id = c ? parseComment(c.value) : undefined;
        if (!id || id.network !== network || keep.has(id.containerID)) continue;
        const chain = iptablesMasqChain(id.network, id.containerID);
        if (r.chain === chain || option(r.args, "-j")?.value === chain) stale.add(chain);
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
export async function iptCheckMasq(entries: readonly NormalizedMasqEntry[], netns?: string): Promise<string | undefined> {
  for (const family of [4, 6] as const) {
    const mine = entries.filter((e) => e.family === family);
    if (mine.length === 0) continue;
    requireExecutable(TOOLS[family].save);
    const saved = await saveNat(family, netns);
    if (!saved.ok) return `cannot read the nat table: ${saved.error}`;
    const nat = saved.nat;
    for (const e of mine) {
      const chain = iptablesMasqChain(e.network, e.containerID);
      const who = `${e.network}/${e.containerID}`;
      if (!nat.chains.has(chain)) return `iptables chain ${chain} (nat) of ${who} is missing`;
      const rules = nat.rules.filter((r) => r.chain === chain);
      const masq = rules.findIndex((r) => {
        const d = option(r.args, "-d");
        return option(r.args, "-j")?.value === "MASQUERADE" && d?.negated === true && canonicalCidr(d.value, family) === MULTICAST[family];
      });
      if (masq < 0) return `iptables chain ${chain} of ${who} has no "! -d ${MULTICAST[family]} -j MASQUERADE" rule`;
      const accept = rules.findIndex((r) => {
        const d = option(r.args, "-d");
        return option(r.args, "-j")?.value === "ACCEPT" && d?.negated === false && canonicalCidr(d.value, family) === e.subnet;
      });
      if (accept < 0 || accept > masq) return `iptables chain ${chain} of ${who} does not accept traffic to ${e.subnet} before masquerading`;
      const jump = nat.rules.some(
        (r) => r.chain === "POSTROUTING" && option(r.args, "-j")?.value === chain && canonicalCidr(option(r.args, "-s")?.value ?? "", family) === hostCidr(e.ip, family),
      );
      if (!jump) return `iptables has no POSTROUTING rule sending traffic from ${e.ip} to ${chain} (${who})`;
    }
  }
  return undefined;
}
