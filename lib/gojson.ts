/**
 * Go's JSON key rule, in one place: how the reference plugins read an object key into a struct field.
 *
 * The reference decodes its config (and a prevResult, and a delegate's result) with Go's `encoding/json` into
 * structs. A key matches a field's JSON name exactly, or else case-insensitively (Unicode simple folding); keys that
 * match no field are ignored; when several keys land on one field, the last one in the text wins, and an object
 * given twice for a struct-typed field is merged into it, as Go decodes the second into the first. Runtimes rely on
 * the fold: containerd's go-cni sends capability arguments from Go structs without JSON tags, so a port mapping
 * arrives as `{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`. Maps (`capabilities`, free-form
 * values) keep their keys exactly as sent.
 *
 * A plugin states the Go shape of its config once (`goStruct`, `goList`, `goMap`, `GO_ANY`); `decodeGo` rewrites a
 * parsed value so that every key that names a field is spelled as the field's JSON name, and the validators after it
 * read ordinary camelCase keys. Keys that name no field stay as they are (a config passes unknown keys through).
 *
 * @example
 *   const MAPPING = goStruct({ hostPort: GO_ANY, containerPort: GO_ANY, protocol: GO_ANY, hostIP: GO_ANY });
 *   decodeGo(parseJsonText('{"HostPort":8080,"hostport":9090}'), MAPPING) // { hostPort: 9090 }
 */

/** A Go type as far as key matching cares: a struct, a slice, a map, or anything else (kept as decoded). */
export type GoType = GoStruct | GoList | GoMap | GoAny;

export interface GoAny {
  readonly kind: "any";
}

export interface GoList {
  readonly kind: "list";
  readonly of: GoType;
}

export interface GoMap {
  readonly kind: "map";
  readonly of: GoType;
}

export interface GoStruct {
  readonly kind: "struct";
  /** JSON name -> type, as the struct's `json:"..."` tags (or, untagged, the Go field names) say. */
  readonly fields: Readonly<Record<string, GoType>>;
  /** foldKey(JSON name) -> JSON name, for the case-insensitive match. */
  readonly folded: ReadonlyMap<string, string>;
}

/** A leaf, or a free-form value (`interface{}`): kept exactly as sent. */
export const GO_ANY: GoAny = Object.freeze({ kind: "any" });

export function goList(of: GoType): GoList {
  return { kind: "list", of };
}

export function goMap(of: GoType): GoMap {
  return { kind: "map", of };
}

/**
 * A struct with these JSON field names. Two names that fold to the same key would make the match ambiguous; Go
 * resolves that by field order, and none of the reference's structs has such a pair, so it is refused here.
 */
export function goStruct(fields: Record<string, GoType>): GoStruct {
  const folded = new Map<string, string>();
  for (const name of Object.keys(fields)) {
    const key = foldKey(name);
    const clash = folded.get(key);
    if (clash !== undefined) throw new Error(`goStruct: fields ${clash} and ${name} differ only in case`);
    folded.set(key, name);
  }
  return { kind: "struct", fields: { ...fields }, folded };
}

/** A struct with the fields of `base` and `more` (Go's embedded struct: its fields are promoted). `more` wins. */
export function goExtend(base: GoStruct, more: Record<string, GoType>): GoStruct {
  const fields: Record<string, GoType> = { ...base.fields };
  for (const [name, type] of Object.entries(more)) {
    // A field of the outer struct hides an embedded one of the same (folded) name.
    const hidden = base.folded.get(foldKey(name));
    if (hidden !== undefined) delete fields[hidden];
    fields[name] = type;
  }
  return goStruct(fields);
}

/**
 * The key Go's case-insensitive match compares: ASCII letters upper-cased, and the two non-ASCII runes whose simple
 * case fold reaches an ASCII letter (U+017F LONG S -> S, U+212A KELVIN SIGN -> K) mapped to it. Every other rune
 * is compared as it is: a field name is ASCII, so no other non-ASCII rune can fold onto one.
 */
export function foldKey(key: string): string {
  let out = "";
  for (const ch of key) {
    if (ch === "\u017f") out += "S";
    else if (ch === "\u212a") out += "K";
    else if (ch >= "a" && ch <= "z") out += String.fromCharCode(ch.charCodeAt(0) - 32);
    else out += ch;
  }
  return out;
}

/** Every key of every object in source order, duplicates included (JSON.parse keeps only the last). */
const sourceEntries = new WeakMap<object, ReadonlyArray<readonly [string, unknown]>>();

function entriesOf(obj: object): ReadonlyArray<readonly [string, unknown]> {
  return sourceEntries.get(obj) ?? Object.entries(obj);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An own, enumerable property even for the key "__proto__" (plain assignment would set the prototype). */
function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Go's `encoding/json` refuses input nested deeper than this (its scanner's maxNestingDepth). */
export const MAX_JSON_DEPTH = 10000;

interface Frame {
  obj?: Record<string, unknown>;
  entries?: Array<readonly [string, unknown]>;
  list?: unknown[];
  key?: string;
}

/**
 * Parse JSON text as JSON.parse does (same values, same errors), remembering every key of every object in source
 * order so that `decodeGo` can apply Go's rule for duplicate and differently-cased keys. Like Go, it refuses
 * nesting deeper than MAX_JSON_DEPTH; the walk keeps its own stack, so no depth can overflow the process's.
 *
 * @throws SyntaxError when JSON.parse does (with its message), or "exceeded max depth"
 */
export function parseJsonText(text: string): unknown {
  JSON.parse(text); // validation and the error message; the walk below may then assume well-formed input
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const string = (): string => {
    const start = i++;
    let escaped = false;
    while (text[i] !== '"') {
      if (text[i] === "\\") {
        escaped = true;
        i++;
      }
      i++;
    }
    i++;
    return escaped ? (JSON.parse(text.slice(start, i)) as string) : text.slice(start + 1, i - 1);
  };
  const key = (frame: Frame) => {
    skipSpace();
    frame.key = string();
    skipSpace();
    i++; // ':'
  };
  const stack: Frame[] = [];
  let result: unknown;
  let done = false;
  // A finished value goes into the container being built (or is the result); then come separators and closers.
  const attach = (v: unknown) => {
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        result = v;
        done = true;
        return;
      }
      if (top.list) top.list.push(v);
      else {
        top.entries!.push([top.key!, v]);
        put(top.obj!, top.key!, v);
      }
      skipSpace();
      if (text[i++] === ",") {
        if (top.obj) key(top);
        return;
      }
      // '}' or ']': this container is finished and is itself the value to attach.
      stack.pop();
      if (top.obj) sourceEntries.set(top.obj, top.entries!);
      v = top.obj ?? top.list;
    }
  };
  while (!done) {
    skipSpace();
    const c = text[i];
    // Go counts every array and object, empty ones too.
    if ((c === "{" || c === "[") && stack.length >= MAX_JSON_DEPTH)
      throw new SyntaxError(`exceeded max depth (${MAX_JSON_DEPTH} nested arrays and objects)`);
    if (c === "{") {
      i++;
      const frame: Frame = { obj: {}, entries: [] };
      skipSpace();
      if (text[i] === "}") {
        i++;
        sourceEntries.set(frame.obj!, frame.entries!);
        attach(frame.obj);
      } else {
        stack.push(frame);
        key(frame);
      }
    } else if (c === "[") {
      i++;
      skipSpace();
      if (text[i] === "]") {
        i++;
        attach([]);
      } else stack.push({ list: [] });
    } else if (c === '"') attach(string());
    else {
      const start = i;
      while (i < text.length && !",]} \t\n\r".includes(text[i]!)) i++;
      const token = text.slice(start, i);
      // The JSON number grammar is a subset of Number's, with the same value.
      attach(token === "true" ? true : token === "false" ? false : token === "null" ? null : Number(token));
    }
  }
  return result;
}

/**
 * Rewrite `value` as Go would read it into `type`: keys that name a struct field (exactly, or else by Go's fold)
 * are spelled as the field's JSON name, the last such key wins, objects for a struct field are merged; keys that
 * name no field are kept as sent; maps and free-form values keep their keys. Values of a type other than the one
 * expected are left as they are, for the validators to name. Never throws.
 */
export function decodeGo(value: unknown, type: GoType): unknown {
  switch (type.kind) {
    case "any":
      return value;
    case "list":
      return Array.isArray(value) ? value.map((v) => decodeGo(v, type.of)) : value;
    case "map": {
      if (!isObject(value)) return value;
      const out: Record<string, unknown> = {};
      for (const [k, v] of entriesOf(value)) put(out, k, decodeGo(v, type.of));
      return out;
    }
    case "struct":
      return isObject(value) ? decodeStructInto({}, value, type) : value;
  }
}

function decodeStructInto(
  out: Record<string, unknown>,
  value: Record<string, unknown>,
  type: GoStruct,
): Record<string, unknown> {
  for (const [key, v] of entriesOf(value)) {
    const name = Object.hasOwn(type.fields, key) ? key : type.folded.get(foldKey(key));
    if (name === undefined) {
      put(out, key, v);
      continue;
    }
    const fieldType = type.fields[name]!;
    const before = out[name];
    // Go decodes a second object for a struct field into the value the first one left.
    if (fieldType.kind === "struct" && isObject(before) && isObject(v))
      put(out, name, decodeStructInto(before, v, fieldType));
    else put(out, name, decodeGo(v, fieldType));
  }
  return out;
}
