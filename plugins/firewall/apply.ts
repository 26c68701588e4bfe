/**
 * The firewall's runner: the only place it starts processes. One `iptables-save -t filter` and one
 * `iptables-restore --noflush` per family and call (atomic: a pod's rules appear all at once or not at all), one
 * `nft -f -` per call, `nft -j list table` only when a first try needs a look. Once lib/netfilter offers the same
 * (save parsing, restore and nft runners), these functions become thin calls into it.
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { run, timedOutError } from "../../lib/exec.js";
import { hasExecutable } from "../../lib/masq.js";
import { parseFilter, restoreInput, type FilterTable } from "./iptables-rules.js";
import { FIREWALL_NFT_TABLE, parseListing, type NftState } from "./nft-rules.js";

const TIMEOUT_MS = 20_000;

/** The tools of each family. */
export const TOOLS: Record<Family, { save: string; restore: string }> = {
  4: { save: "iptables-save", restore: "iptables-restore" },
  6: { save: "ip6tables-save", restore: "ip6tables-restore" },
};

/** Are both tools of the family installed? A family without them holds no rule of ours. */
export function hasIptables(family: Family): boolean {
  return hasExecutable(TOOLS[family].save) && hasExecutable(TOOLS[family].restore);
}

/** Code 100 naming the missing tool, before any change. */
export function requireIptables(family: Family): void {
  for (const tool of [TOOLS[family].save, TOOLS[family].restore]) {
    if (!hasExecutable(tool)) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: ${tool} not found in PATH`, `PATH=${process.env.PATH ?? ""}`);
  }
}

/** The family's filter table. */
export async function saveFilter(family: Family): Promise<FilterTable> {
  const r = await run(TOOLS[family].save, ["-t", "filter"], { timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(`firewall: ${TOOLS[family].save} -t filter`, r);
  if (r.code !== 0) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: ${TOOLS[family].save} -t filter: ${r.stderr.trim() || `exit ${r.code}`}`);
  return parseFilter(r.stdout);
}

/** One atomic restore of filter lines; ok false (with stderr) when iptables refused them. */
export async function restoreFilter(family: Family, lines: readonly string[]): Promise<{ ok: boolean; stderr: string }> {
  // -w: legacy iptables waits for the xtables lock instead of failing; iptables-nft ignores it.
  const r = await run(TOOLS[family].restore, ["--noflush", "-w"], { input: restoreInput(lines), timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(`firewall: ${TOOLS[family].restore}`, r);
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

/** Code 100 naming nft, before any change. */
export function requireNft(): void {
  if (!hasExecutable("nft")) throw new CniError(ErrorCode.KernelOperationFailed, "firewall: nft not found in PATH", `PATH=${process.env.PATH ?? ""}`);
}

/** One atomic `nft -f -` transaction. */
export async function nftRun(script: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await run("nft", ["-f", "-"], { input: script, timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError("firewall: nft -f", r);
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

/** Our table's state, or undefined when the table does not exist. */
export async function nftList(): Promise<NftState | undefined> {
  const [family, name] = FIREWALL_NFT_TABLE.split(" ") as [string, string];
  const r = await run("nft", ["-j", "list", "table", family, name], { timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError("firewall: nft list table", r);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new CniError(ErrorCode.KernelOperationFailed, `firewall: nft list table ${FIREWALL_NFT_TABLE}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return parseListing(r.stdout);
}
