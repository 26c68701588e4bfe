/**
 * Running nft: one script as one transaction (`nft -f -`: all of it applies, or none), reading one table
 * (`nft -j list table`), the element syntax shared by our tables, and what a failed transaction means.
 *
 * What nft 1.0.6 prints (6.1 and 6.18 kernels) and what it means for a script computed from a read of the table:
 * - "Could not process rule: File exists" (EEXIST; EBUSY on older kernels for a map): a key is held with another
 *   value (an address or hostPort another owner holds), or an interval overlaps one already there ("taken").
 * - "Could not process rule: No such file or directory" at an element, a rule handle or a chain: something the read
 *   showed is gone, a concurrent DEL removed it ("gone").
 * - "No such file or directory" with the caret on the table's name: the table does not exist ("no-table").
 * - anything else (syntax, permission, a kernel without nat support): "failed".
 * "taken" and "gone" both mean the read went stale: read again and recompute. Which of them a caller retries is its
 * own decision (an ADD that never deletes by handle only meets "taken").
 *
 * @example
 *   const err = await nftApply(["add table inet t", "add set inet t s { type ipv4_addr; }"]);
 *   if (err && nftFailure(err, "t") === "taken") { ... read the table and try again ... }
 */
import { run, timedOutError } from "../exec.js";
import { CniError, ErrorCode } from "../errors.js";
import { inNetns } from "../netns.js";
import { classifyStderr, ToolError } from "../tool-error.js";

const TIMEOUT_MS = 20_000;
// A transaction built from a read that went stale is recomputed from a fresh read; three rounds are plenty, since
// each loss means another writer made progress.
const ATTEMPTS = 3;

/** Run `lines` as one nft transaction; undefined on success, else the ToolError (a timeout throws code 11). */
export async function nftApply(lines: readonly string[], netns?: string): Promise<ToolError | undefined> {
  const [file, args] = inNetns(netns, "nft", ["-f", "-"]);
  const r = await run(file, args, { input: `${lines.join("\n")}\n`, timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError("nft -f -", r);
  if (r.code === 0) return undefined;
  const failedLine = /^\/dev\/stdin:\d+:[^\n]*\n([^\n]*)/.exec(r.stderr)?.[1];
  return new ToolError({ tool: "nft", what: "nft -f -", status: r.code, stderr: r.stderr.trim(), failedLine });
}

/**
 * Read, compute, apply, on table `tableName`: `step(attempt)` reads what it needs and returns the script (none:
 * nothing to do). A transaction that fails because the read went stale ("taken", "gone", "no-table") is recomputed
 * by the next step, up to three times; any other failure is final. Undefined on success, else the last failure.
 */
export async function nftApplyWithRetry(
  tableName: string,
  step: (attempt: number) => Promise<readonly string[]>,
  netns?: string,
): Promise<ToolError | undefined> {
  let error: ToolError | undefined;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const lines = await step(attempt);
    if (lines.length === 0) return undefined;
    error = await nftApply(lines, netns);
    if (!error || nftFailure(error, tableName) === "failed") return error;
  }
  return error;
}

/** What a failed transaction means for its caller (see the module comment). */
export type NftFailure = "taken" | "gone" | "no-table" | "failed";

/** Classify a failed nft transaction on table `tableName` (the name alone, e.g. "cni_ts_masq"). */
export function nftFailure(e: ToolError, tableName: string): NftFailure {
  if (e.kind === "exists" || e.kind === "busy") return "taken";
  if (e.kind !== "not-found") return "failed";
  return tableMissing(e.stderr, tableName) ? "no-table" : "gone";
}

/**
 * True when nft refused a script because table `tableName` does not exist: nft points its caret at the table name,
 * where a missing element gets "Could not process rule" under the element.
 */
export function tableMissing(stderr: string, tableName: string): boolean {
  const m = /:(\d+)-(\d+): Error: No such file or directory\n(.*)\n/.exec(stderr);
  return m !== null && m[3]!.slice(Number(m[1]) - 1, Number(m[2])) === tableName;
}

/**
 * The objects of `nft -j list table inet NAME` (each `{table}`, `{chain}`, `{rule}`, `{set}`, `{map}`, …), or
 * undefined when the table does not exist. Other failures: code 100; output that is no JSON: code 6.
 */
export async function nftListTable(tableName: string, netns?: string): Promise<Record<string, unknown>[] | undefined> {
  const what = `nft list table inet ${tableName}`;
  const [file, args] = inNetns(netns, "nft", ["-j", "list", "table", "inet", tableName]);
  const r = await run(file, args, { timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(what, r);
  if (r.code !== 0) {
    // The only object `list table` names is the table.
    if (classifyStderr(r.stderr) === "not-found") return undefined;
    throw new CniError(ErrorCode.KernelOperationFailed, `${what}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return parseNftJson(r.stdout, `nft -j list table inet ${tableName}`);
}

/** The objects of an `nft -j` document; code 6 (decoding failure) when it is no JSON. */
export function parseNftJson(json: string, what: string): Record<string, unknown>[] {
  try {
    return (JSON.parse(json) as { nftables?: Record<string, unknown>[] }).nftables ?? [];
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `${what}: unparsable JSON`, json.slice(0, 200));
  }
}

/** `{elem: {val, comment}}` or a bare value, as nft -j prints set and map elements. */
export function unwrapElem(item: unknown): { val: unknown; comment?: string } {
  if (typeof item === "object" && item !== null && "elem" in item) {
    const inner = (item as { elem: { val?: unknown; comment?: unknown } }).elem;
    return { val: inner.val, comment: typeof inner.comment === "string" ? inner.comment : undefined };
  }
  return { val: item };
}

/** `element inet NAME SET { BODY }`, to follow `add`, `create` or `delete`. */
export function elementOf(table: string, set: string, body: string): string {
  return `element ${table} ${set} { ${body} }`;
}

/** Delete a set element whether or not it is there (add, then delete: nft 1.0 has no `destroy`). */
export function dropSetElement(table: string, set: string, key: string): string[] {
  return [`add ${elementOf(table, set, key)}`, `delete ${elementOf(table, set, key)}`];
}

/** One element of a set or map in an `nft -j` listing: key, comment, and for a map its value. */
export interface NftElement {
  val: unknown;
  comment?: string;
  /** The mapped value (maps only). */
  value?: unknown;
}

/** The elements of every set and map of a listing, by name. */
export function elementsOf(objects: readonly Record<string, unknown>[]): Map<string, NftElement[]> {
  const out = new Map<string, NftElement[]>();
  for (const obj of objects) {
    const set = (obj.set ?? obj.map) as { name?: string; elem?: unknown[] } | undefined;
    if (typeof set?.name !== "string") continue;
    const elems = out.get(set.name) ?? [];
    // A map element is [key, value]; a set element a value or {elem: {val, comment}} (a concatenation is {concat}).
    for (const item of set.elem ?? [])
      elems.push(Array.isArray(item) ? { ...unwrapElem(item[0]), value: item[1] } : unwrapElem(item));
    out.set(set.name, elems);
  }
  return out;
}

/** One rule of a listing: its handle (for `delete rule … handle N`), its comment, and its expressions. */
export interface NftRule {
  handle?: number;
  comment?: string;
  expr: unknown[];
}

/** One chain of a listing: hook and type (base chains only) and its rules in order. */
export interface NftChain {
  hook?: string;
  type?: string;
  rules: NftRule[];
}

/** The chains of a listing, by name; a rule whose chain object is not listed still gets an entry. */
export function chainsOf(objects: readonly Record<string, unknown>[]): Map<string, NftChain> {
  const out = new Map<string, NftChain>();
  for (const obj of objects) {
    const chain = obj.chain as { name?: string; hook?: string; type?: string } | undefined;
    if (chain?.name)
      out.set(chain.name, { hook: chain.hook, type: chain.type, rules: out.get(chain.name)?.rules ?? [] });
    const rule = obj.rule as { chain?: string; handle?: number; comment?: string; expr?: unknown[] } | undefined;
    if (rule?.chain) {
      const c = out.get(rule.chain) ?? { rules: [] };
      c.rules.push({
        handle: typeof rule.handle === "number" ? rule.handle : undefined,
        comment: typeof rule.comment === "string" ? rule.comment : undefined,
        expr: rule.expr ?? [],
      });
      out.set(rule.chain, c);
    }
  }
  return out;
}

/** The line deleting a rule by the handle a listing showed (fails with "gone" when it went meanwhile). */
export function deleteRuleLine(table: string, chain: string, handle: number): string {
  return `delete rule ${table} ${chain} handle ${handle}`;
}
