/**
 * Reading iptables-save output: the nat table's chains and rules, split into words exactly as iptables-restore
 * would read them back. Shared by the masquerade backend (lib/masq-iptables) and portmap.
 *
 * @example
 *   const nat = parseSave(stdoutOfIptablesSave);
 *   const jumps = nat.rules.filter((r) => option(r.args, "-j")?.value === "CNI-abc");
 */

/** One `-A CHAIN …` line of iptables-save. */
export interface SavedRule {
  raw: string;
  chain: string;
  args: string[];
}

/** The nat table: its chains and its rules in order. */
export interface SavedNat {
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

/** Parse iptables-save output, keeping only the nat table. */
export function parseSave(text: string): SavedNat {
  const nat: SavedNat = { chains: new Set(), rules: [] };
  let inNat = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) inNat = line === "*nat";
    else if (!inNat) continue;
    else if (line.startsWith(":")) nat.chains.add(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ")) {
      const words = tokenize(line);
      nat.rules.push({ raw: line, chain: words[1] ?? "", args: words.slice(2) });
    }
  }
  return nat;
}

/** The value after `flag` (or one of its spellings), and whether a `!` precedes it. */
export function option(args: readonly string[], ...flags: string[]): { value: string; negated: boolean } | undefined {
  const i = args.findIndex((a) => flags.includes(a));
  if (i < 0 || i + 1 >= args.length) return undefined;
  return { value: args[i + 1]!, negated: args[i - 1] === "!" };
}
