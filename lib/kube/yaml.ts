/**
 * The part of YAML that kubeconfig files use: block mappings and sequences ("- " items holding mappings),
 * plain, single- and double-quoted scalars, comments, and the empty flow collections `{}` and `[]`. Anything else
 * (anchors, tags, multi-line scalars, flow collections with content, several documents) is refused with the line
 * number rather than read wrongly: a kubeconfig that uses them can be converted with
 * `kubectl config view --raw -o json` and given as JSON.
 *
 * @example
 *   parseYamlSubset("clusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n")
 *   // { clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443" } }] }
 */

/** Text that is not in the subset (or not YAML at all). */
export class YamlSubsetError extends Error {
  override name = "YamlSubsetError";
}

interface Line {
  no: number;
  indent: number;
  text: string;
}

function stripComment(s: string): string {
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

function scalar(raw: string, no: number): unknown {
  const s = raw.trim();
  if (s === "" || s === "~" || s === "null") return null;
  if (s === "{}") return {};
  if (s === "[]") return [];
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new YamlSubsetError(`line ${no}: unterminated double-quoted string`);
    try {
      return JSON.parse(s) as unknown;
    } catch {
      throw new YamlSubsetError(`line ${no}: a double-quoted string with an escape this reader does not know`);
    }
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new YamlSubsetError(`line ${no}: unterminated single-quoted string`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!|>{[]/.test(s) || s === "---" || s === "...")
    throw new YamlSubsetError(
      `line ${no}: ${JSON.stringify(s.slice(0, 20))} needs more YAML than this reader knows; give the kubeconfig as JSON (kubectl config view --raw -o json)`,
    );
  if (s === "true" || s === "false") return s === "true";
  if (/^-?\d+$/.test(s)) return Number(s);
  return s;
}

/** "key: value" split at the first ": " (or a trailing ":"), outside quotes. */
function splitKey(text: string, no: number): [string, string] | undefined {
  const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s'"#][^:]*?)\s*:(?:\s+(.*))?$/.exec(text);
  if (!m) return undefined;
  const key = scalar(m[1]!, no);
  return [String(key), m[2] ?? ""];
}

export function parseYamlSubset(text: string): unknown {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.includes("\t") && /^\s*\t/.test(raw)) throw new YamlSubsetError(`line ${i + 1}: a tab in the indentation`);
    const t = stripComment(raw).trimEnd();
    if (t.trim() === "" || t === "---") return;
    lines.push({ no: i + 1, indent: t.length - t.trimStart().length, text: t.trimStart() });
  });
  if (lines.length === 0) return null;
  let pos = 0;

  function block(indent: number): unknown {
    const first = lines[pos]!;
    if (first.text.startsWith("- ") || first.text === "-") return sequence(indent);
    return mapping(indent);
  }

  function value(rest: string, parentIndent: number, no: number): unknown {
    if (rest !== "") return scalar(rest, no);
    const next = lines[pos];
    // A key with nothing after it holds the block below, or is null. Kubernetes writes sequences under a key at
    // the key's own indentation ("contexts:\n- name: x"), which YAML allows.
    if (next && (next.indent > parentIndent || (next.indent === parentIndent && next.text.startsWith("-"))))
      return block(next.indent);
    return null;
  }

  function mapping(indent: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    while (pos < lines.length) {
      const l = lines[pos]!;
      if (l.indent < indent) break;
      if (l.indent > indent) throw new YamlSubsetError(`line ${l.no}: unexpected indentation`);
      if (l.text.startsWith("- ") || l.text === "-") break;
      const kv = splitKey(l.text, l.no);
      if (!kv) throw new YamlSubsetError(`line ${l.no}: expected "key: value"`);
      pos++;
      if (Object.hasOwn(out, kv[0]))
        throw new YamlSubsetError(`line ${l.no}: key ${JSON.stringify(kv[0])} appears twice`);
      out[kv[0]] = value(kv[1], indent, l.no);
    }
    return out;
  }

  function sequence(indent: number): unknown[] {
    const out: unknown[] = [];
    while (pos < lines.length) {
      const l = lines[pos]!;
      if (l.indent !== indent || !(l.text.startsWith("- ") || l.text === "-")) {
        if (l.indent > indent) throw new YamlSubsetError(`line ${l.no}: unexpected indentation`);
        break;
      }
      const rest = l.text === "-" ? "" : l.text.slice(2).trimStart();
      if (rest === "") {
        pos++;
        out.push(value("", indent, l.no));
      } else if (splitKey(rest, l.no)) {
        // "- key: value" opens a mapping whose keys line up with "key".
        const inner = indent + (l.text.length - rest.length);
        lines[pos] = { no: l.no, indent: inner, text: rest };
        out.push(mapping(inner));
      } else {
        pos++;
        out.push(scalar(rest, l.no));
      }
    }
    return out;
  }

  const doc = block(lines[0]!.indent);
  if (pos < lines.length) throw new YamlSubsetError(`line ${lines[pos]!.no}: unexpected indentation`);
  return doc;
}
