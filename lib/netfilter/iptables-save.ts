/**
 * The iptables-save / iptables-restore text format: reading a table's chains and rules (split into words exactly
 * as iptables-restore reads them), writing rule lines with its quoting, and a canonical form of a rule so that what
 * we write and what iptables-save prints back compare equal (iptables reorders `-s/-d/-p` to the front, adds the
 * implicit `-m tcp`, masks addresses and prints `--dports` for `--destination-ports`). Pure functions, no process.
 *
 * @example
 *   const nat = parseSave(stdoutOfIptablesSave);
 *   const jumps = nat.rules.filter((r) => ruleTarget(r) === "CNI-abc");
 *   const line = ruleLine("-A", "CNI-abc", ["-d", "10.1.0.0/24", "-m", "comment", "--comment", 'name: "n"', "-j", "ACCEPT"]);
 */
import { canonicalAddr } from "./addr.js";

/** One `-A CHAIN …` line of iptables-save. */
export interface SavedRule {
  raw: string;
  chain: string;
  args: string[];
}

/** One table (nat, filter, …) as iptables-save prints it: its chains and its rules in order. */
export interface SavedTable {
  chains: Set<string>;
  rules: SavedRule[];
}

/** Split a save line into words the way iptables-restore does: double quotes group, a backslash escapes. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Parse iptables-save output, keeping only `table` (nat unless named). */
export function parseSave(text: string, table = "nat"): SavedTable {
  const saved: SavedTable = { chains: new Set(), rules: [] };
  let inTable = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) inTable = line === `*${table}`;
    else if (!inTable) continue;
    else if (line.startsWith(":")) saved.chains.add(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ")) {
      const words = tokenize(line);
      saved.rules.push({ raw: line, chain: words[1] ?? "", args: words.slice(2) });
    }
  }
  return saved;
}

/** The value after `flag` (or one of its spellings), and whether a `!` precedes it. */
export function option(args: readonly string[], ...flags: string[]): { value: string; negated: boolean } | undefined {
  const i = args.findIndex((a) => flags.includes(a));
  if (i < 0 || i + 1 >= args.length) return undefined;
  return { value: args[i + 1]!, negated: args[i - 1] === "!" };
}

/** The rule's target (`-j`), or undefined for a rule without one. */
export function ruleTarget(r: SavedRule): string | undefined {
  return option(r.args, "-j", "--jump")?.value;
}

/** The rules of one chain, in order. */
export function rulesOf(saved: SavedTable, chain: string): SavedRule[] {
  return saved.rules.filter((r) => r.chain === chain);
}

/** One word in iptables-restore syntax: quoted (with `"` and `\` escaped) when it holds anything but plain characters. */
export function quoteWord(s: string): string {
  return /^[A-Za-z0-9_.:/,!+=@%\-[\]]+$/.test(s) ? s : `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A rule (its words without `-A CHAIN`) as one restore line. */
export function ruleLine(op: "-A" | "-D" | "-I", chain: string, words: readonly string[], position?: number): string {
  return [op, chain, ...(position === undefined ? [] : [String(position)]), ...words.map(quoteWord)].join(" ");
}

/** The restore line deleting a rule exactly as iptables-save printed it. */
export function deleteLine(r: SavedRule): string {
  return `-D ${r.raw.slice(3)}`;
}

const HEADER: Record<string, string> = {
  "-s": "-s",
  "--source": "-s",
  "--src": "-s",
  "-d": "-d",
  "--destination": "-d",
  "--dst": "-d",
  "-i": "-i",
  "--in-interface": "-i",
  "-o": "-o",
  "--out-interface": "-o",
  "-p": "-p",
  "--protocol": "-p",
};
const ALIASES: Record<string, string> = {
  "--destination-port": "--dport",
  "--source-port": "--sport",
  "--destination-ports": "--dports",
  "--source-ports": "--sports",
  "--jump": "-j",
  "--goto": "-g",
  "--match": "-m",
};

/**
 * A rule's words in one canonical text: header options (-s -d -i -o -p) first in a fixed order with addresses
 * masked, the implicit protocol match dropped, long option spellings shortened, everything else in its order.
 * Two rules iptables treats as the same rule (as far as our rules and the usual conditions go) compare equal.
 */
export function canonicalRule(args: readonly string[]): string {
  const header = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const negated = args[i] === "!" && HEADER[args[i + 1] ?? ""] !== undefined;
    const flag = HEADER[args[negated ? i + 1 : i]!];
    if (flag !== undefined && i + (negated ? 2 : 1) < args.length) {
      let value = args[i + (negated ? 2 : 1)]!;
      if (flag === "-s" || flag === "-d") value = canonicalAddr(value);
      if (flag === "-p") value = value.toLowerCase();
      i += negated ? 2 : 1;
      // "-s 0.0.0.0/0" matches everything: iptables stores no address at all and prints none.
      if (!negated && (value === "0.0.0.0/0" || value === "::/0")) continue;
      header.set(flag, `${negated ? "! " : ""}${flag} ${value}`);
      continue;
    }
    rest.push(ALIASES[args[i]!] ?? args[i]!);
  }
  const proto = header.get("-p")?.split(" ").pop();
  const body: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    // `-p tcp` loads the tcp match implicitly; iptables-save spells it out as `-m tcp`.
    if (rest[i] === "-m" && rest[i + 1] === proto) {
      i++;
      continue;
    }
    body.push(rest[i]!);
  }
  return [...["-s", "-d", "-i", "-o", "-p"].flatMap((f) => (header.has(f) ? [header.get(f)!] : [])), ...body].join(
    "\u0000",
  );
}

/** Whether `chain` holds a rule iptables would treat as `words` (see canonicalRule). */
export function hasRule(saved: SavedTable, chain: string, words: readonly string[]): boolean {
  const want = canonicalRule(words);
  return rulesOf(saved, chain).some((r) => canonicalRule(r.args) === want);
}

/**
 * The restore line that adds `words` to `chain` unless an equal rule is there already (then none): appended, or
 * inserted at `position` (1: first, for a jump no other rule may shadow). For ensure-jump and constant rules.
 */
export function ensureRuleLines(
  saved: SavedTable,
  chain: string,
  words: readonly string[],
  position?: number,
): string[] {
  if (hasRule(saved, chain, words)) return [];
  return [position === undefined ? ruleLine("-A", chain, words) : ruleLine("-I", chain, words, position)];
}

/** The comment (`-m comment --comment`) of a rule, or undefined. */
export function ruleComment(r: SavedRule): string | undefined {
  return option(r.args, "--comment")?.value;
}

/** Restore lines deleting every rule (of `chain`, or of any chain) whose comment `pick` selects. */
export function deleteCommentedLines(saved: SavedTable, pick: (comment: string) => boolean, chain?: string): string[] {
  return saved.rules
    .filter((r) => (chain === undefined || r.chain === chain) && pick(ruleComment(r) ?? ""))
    .map(deleteLine);
}
