/**
 * Running iptables: one `iptables-save -t TABLE` to read, one atomic `iptables-restore --noflush` to write (one nft
 * transaction under iptables-nft, one table replace under legacy), `iptables -N` to create a shared chain without
 * emptying it, `iptables -C` where only iptables can judge a rule, and the chain teardown both masquerade and portmap
 * do: delete chains with every rule that jumps to them, re-reading after a lost race.
 *
 * Every function takes `netns`: plugins call them without it (they already run in the node's namespace); tests pass
 * a namespace of their own so that nothing touches the machine's root namespace.
 *
 * @example
 *   const saved = await saveTable(4, "nat");
 *   if (saved.ok && !saved.table.chains.has("CNI-X")) await restoreTable(4, "nat", [":CNI-X - [0:0]"]);
 */
import type { Family } from "../cidr.js";
import { hasExecutable, run, timedOutError } from "../exec.js";
import { log } from "../log.js";
import { inNetns } from "../netns.js";
import { ToolError } from "../tool-error.js";
import { deleteLine, parseSave, ruleTarget, type SavedRule, type SavedTable } from "./iptables-save.js";

const TIMEOUT_MS = 20_000;
// A restore that lost a race (another pod's ADD or DEL changed a chain between our save and our restore) is
// recomputed from a fresh save; three rounds are plenty, since each loss means another writer made progress.
const ATTEMPTS = 3;

/** The tools of each family. */
export const IPTABLES: Record<Family, { save: string; restore: string; cmd: string }> = {
  4: { save: "iptables-save", restore: "iptables-restore", cmd: "iptables" },
  6: { save: "ip6tables-save", restore: "ip6tables-restore", cmd: "ip6tables" },
};

/** Whether the family's save and restore tools are installed (a family without them holds nothing of ours). */
export function hasSaveRestore(family: Family): boolean {
  return hasExecutable(IPTABLES[family].save) && hasExecutable(IPTABLES[family].restore);
}

/** `iptables-save -t TABLE` of a family; not ok (with the reason) when the family's tools cannot read it. */
export async function saveTable(
  family: Family,
  table: string,
  netns?: string,
): Promise<{ ok: true; table: SavedTable } | { ok: false; error: string }> {
  const tool = IPTABLES[family].save;
  const [file, args] = inNetns(netns, tool, ["-t", table]);
  const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
  if (r.code !== 0 || r.timedOut)
    return {
      ok: false,
      error: `${tool} -t ${table}: ${r.timedOut ? `no answer within ${r.timeoutMs} ms, killed` : r.stderr.trim() || `exit ${r.code}`}`,
    };
  return { ok: true, table: parseSave(r.stdout, table) };
}

/** One atomic `iptables-restore --noflush` of `lines` into TABLE: all of them apply, or none (then `stderr` says why). */
export async function restoreTable(
  family: Family,
  table: string,
  lines: readonly string[],
  netns?: string,
): Promise<{ ok: boolean; stderr: string }> {
  const tool = IPTABLES[family].restore;
  // -w: legacy iptables waits for the xtables lock instead of failing; iptables-nft ignores it.
  const [file, args] = inNetns(netns, tool, ["--noflush", "-w"]);
  const r = await run(file, args, { input: [`*${table}`, ...lines, "COMMIT", ""].join("\n"), timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(tool, r);
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

/** `iptables -t TABLE -C CHAIN rule…`: iptables' own judgement whether a rule exists, for words we cannot canonicalise. */
export async function ruleExists(
  family: Family,
  table: string,
  chain: string,
  words: readonly string[],
  netns?: string,
): Promise<boolean> {
  const tool = IPTABLES[family].cmd;
  const [file, args] = inNetns(netns, tool, ["-w", "-t", table, "-C", chain, ...words]);
  const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
  // A hung iptables is not an answer: "missing" would send CHECK after the wrong problem.
  if (r.timedOut) throw timedOutError(`${tool} -t ${table} -C ${chain}`, r);
  return r.code === 0;
}

/**
 * Create chains with `iptables -N`, which fails harmlessly when the chain exists. A restore cannot do it: declaring a
 * chain under --noflush empties an existing one, and two first ADDs racing on a fresh node would each empty what the
 * other just wrote. Throws a ToolError for any other failure.
 */
export async function ensureChains(
  family: Family,
  table: string,
  names: readonly string[],
  netns?: string,
): Promise<void> {
  const tool = IPTABLES[family].cmd;
  for (const name of names) {
    const [file, args] = inNetns(netns, tool, ["-w", "-t", table, "-N", name]);
    const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
    if (r.timedOut) throw timedOutError(`${tool} -t ${table} -N ${name}`, r);
    if (r.code === 0) continue;
    // "Chain already exists", or under iptables-nft when another -N won the race: "CHAIN_USER_ADD failed (File exists)".
    const e = new ToolError({ tool, what: `${tool} -t ${table} -N ${name}`, status: r.code, stderr: r.stderr });
    if (e.kind !== "exists") throw e;
  }
}

/**
 * Save, compute, restore, for one family and table: `step(attempt)` reads what it needs and returns the restore
 * lines (none: nothing to do). A restore that fails (a lost race) is recomputed by the next step, up to three
 * times. Returns undefined on success, else the last restore's stderr.
 */
export async function restoreWithRetry(
  family: Family,
  table: string,
  step: (attempt: number) => Promise<readonly string[]>,
  netns?: string,
): Promise<string | undefined> {
  let error: string | undefined;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const lines = await step(attempt);
    if (lines.length === 0) return undefined;
    const r = await restoreTable(family, table, lines, netns);
    if (r.ok) return undefined;
    error = r.stderr;
  }
  return error;
}

/**
 * Restore lines that delete `chains` and every rule elsewhere that jumps to them; none when none of it exists.
 * `keepJump` spares a jump (and so its chain, which stays used).
 */
export function deleteChainLines(
  saved: SavedTable,
  chains: ReadonlySet<string>,
  keepJump?: (r: SavedRule) => boolean,
): string[] {
  const lines: string[] = [];
  const stillUsed = new Set<string>();
  for (const r of saved.rules) {
    const target = ruleTarget(r);
    if (target === undefined || !chains.has(target) || chains.has(r.chain)) continue;
    if (keepJump?.(r)) stillUsed.add(target);
    else lines.push(deleteLine(r));
  }
  for (const c of chains) if (saved.chains.has(c) && !stillUsed.has(c)) lines.push(`-F ${c}`, `-X ${c}`);
  return lines;
}

/** How deleteChains is told what to remove. */
export interface DeleteChainsSpec {
  table: string;
  /** The chains to delete, chosen from a fresh read of the table (asked again after a lost race). */
  pick: (saved: SavedTable) => ReadonlySet<string> | Promise<ReadonlySet<string>>;
  /** A jump to keep (its chain then stays). */
  keepJump?: (r: SavedRule) => boolean;
  /**
   * Per family, the exact restore lines that do the whole job when the state is what the caller expects: tried
   * first, without a read. A restore is all-or-nothing, so when it fails (a rule already gone, a chain still used)
   * the read-and-compute path decides.
   */
  blind?: Partial<Record<Family, readonly string[]>>;
  /** For the debug line when a family's table cannot be read. */
  who: string;
  netns?: string;
}

/**
 * Delete chains and the jumps to them, in both families at once (independent tables; this is on every pod's DEL
 * path). A family whose tools are missing or whose table cannot be read holds nothing of ours. Returns the families
 * whose restore still failed after the retries, with the stderr.
 */
export async function deleteChains(spec: DeleteChainsSpec): Promise<Array<{ family: Family; stderr: string }>> {
  const outcomes = await Promise.all(
    ([4, 6] as const).map(async (family) => {
      if (!hasSaveRestore(family)) return undefined;
      const exact = spec.blind?.[family];
      if (exact && exact.length > 0 && (await restoreTable(family, spec.table, exact, spec.netns)).ok) return undefined;
      const stderr = await restoreWithRetry(
        family,
        spec.table,
        async () => {
          const saved = await saveTable(family, spec.table, spec.netns);
          if (!saved.ok) {
            log.debug(`${spec.who}: skipping ${IPTABLES[family].save}: ${saved.error}`);
            return [];
          }
          return deleteChainLines(saved.table, await spec.pick(saved.table), spec.keepJump);
        },
        spec.netns,
      );
      return stderr === undefined ? undefined : { family, stderr };
    }),
  );
  return outcomes.filter((o) => o !== undefined);
}
