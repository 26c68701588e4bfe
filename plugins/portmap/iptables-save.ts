/**
 * Reading and writing the nat table the way iptables-save and iptables-restore see it, and a canonical form of a
 * rule so that what we write and what iptables-save prints back compare equal (iptables reorders `-s/-d/-p` to the
 * front, adds the implicit `-m tcp`, masks addresses and prints `--dports` for `--destination-ports`).
 */
import { bigIntToIP, parseCidr, type Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { run, timedOutError } from "../../lib/exec.js";
import { option, parseSave, tokenize, type SavedNat, type SavedRule } from "../../lib/iptables-save.js";

export { option, parseSave, tokenize, type SavedNat, type SavedRule };

const TIMEOUT_MS = 20_000;

/** The two tools of each family. */
export const TOOLS: Record<Family, { save: string; restore: string; cmd: string }> = {
  4: { save: "iptables-save", restore: "iptables-restore", cmd: "iptables" },
  6: { save: "ip6tables-save", restore: "ip6tables-restore", cmd: "ip6tables" },
};

/** One word in iptables-restore syntax: quoted (with `"` and `\` escaped) when it holds anything but plain characters. */
export function quoteWord(s: string): string {
  return /^[A-Za-z0-9_.:/,!+=@%\-\[\]]+$/.test(s) ? s : `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A rule (its words without `-A CHAIN`) as one restore line. */
export function ruleLine(op: "-A" | "-D" | "-I", chain: string, words: readonly string[], position?: number): string {
  return [op, chain, ...(position === undefined ? [] : [String(position)]), ...words.map(quoteWord)].join(" ");
}

/** "10.1.0.5", "10.1.0.5/24" or "fd00::/64" as iptables prints it: the masked network with its prefix. */
export function canonicalAddr(text: string): string {
  const withPrefix = text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`;
  const c = parseCidr(withPrefix);
  return c ? `${bigIntToIP(c.family, c.network)}/${c.prefix}` : text;
}

const HEADER: Record<string, string> = {
  "-s": "-s", "--source": "-s", "--src": "-s",
  "-d": "-d", "--destination": "-d", "--dst": "-d",
  "-i": "-i", "--in-interface": "-i",
  "-o": "-o", "--out-interface": "-o",
  "-p": "-p", "--protocol": "-p",
};
const ALIASES: Record<string, string> = {
  "--destination-port": "--dport", "--source-port": "--sport",
  "--destination-ports": "--dports", "--source-ports": "--sports",
  "--jump": "-j", "--goto": "-g", "--match": "-m",
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
  return [...["-s", "-d", "-i", "-o", "-p"].flatMap((f) => (header.has(f) ? [header.get(f)!] : [])), ...body].join("\u0000");
}

/** `iptables-save -t nat` of a family; undefined when the family's tools cannot read it (no kernel support). */
export async function saveNat(family: Family): Promise<{ ok: true; nat: SavedNat } | { ok: false; error: string }> {
  const r = await run(TOOLS[family].save, ["-t", "nat"], { timeoutMs: TIMEOUT_MS });
  if (r.code !== 0 || r.timedOut) return { ok: false, error: `${TOOLS[family].save} -t nat: ${r.timedOut ? `no answer within ${r.timeoutMs} ms, killed` : r.stderr.trim() || `exit ${r.code}`}` };
  return { ok: true, nat: parseSave(r.stdout) };
}

/** One atomic `iptables-restore --noflush` of nat lines (one nft transaction under iptables-nft). */
export async function restoreNat(family: Family, lines: readonly string[]): Promise<{ ok: boolean; stderr: string }> {
  // -w: legacy iptables waits for the xtables lock instead of failing; iptables-nft ignores it.
  const r = await run(TOOLS[family].restore, ["--noflush", "-w"], { input: ["*nat", ...lines, "COMMIT", ""].join("\n"), timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError(`${TOOLS[family].restore}`, r);
  return { ok: r.code === 0, stderr: r.stderr.trim() };
}

/** `iptables -t nat -C CHAIN rule…`: iptables' own judgement whether a rule exists, for words we cannot canonicalise. */
export async function ruleExists(family: Family, chain: string, words: readonly string[]): Promise<boolean> {
  const r = await run(TOOLS[family].cmd, ["-w", "-t", "nat", "-C", chain, ...words], { timeoutMs: TIMEOUT_MS });
  // A hung iptables is not an answer: "missing" would send CHECK after the wrong problem.
  if (r.timedOut) throw timedOutError(`${TOOLS[family].cmd} -t nat -C ${chain}`, r);
  return r.code === 0;
}
