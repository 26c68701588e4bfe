/**
 * The objects a list-watch knows, by name, and the resourceVersion to watch from. Pure: a list replaces it, a
 * watch event changes it, and each says whether anything that matters changed (a Node's status heartbeat arrives
 * as MODIFIED every few seconds; only the fields kept by `parse` count).
 *
 * @example
 *   const c = new ObjectCache((o) => parseNode(o));
 *   c.replace(list.items, list.metadata.resourceVersion);
 *   c.apply({ type: "MODIFIED", object: node }); // { changed: false } for a heartbeat
 */
import type { WatchEvent } from "./watchstream.js";

/** What `apply` did with an event. */
export type ApplyOutcome =
  | { kind: "changed"; name: string }
  | { kind: "unchanged"; name?: string }
  /** An ERROR event: the watch must end; `gone` (410) means the resourceVersion is too old, so list again. */
  | { kind: "error"; code: number; reason: string; message: string; gone: boolean }
  /** An object the parser refused: logged by the caller, the cache keeps what it had for that name. */
  | { kind: "refused"; name: string | undefined; message: string };

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined;

/** metadata.resourceVersion of an object or list, if it has one. */
export function resourceVersionOf(o: unknown): string | undefined {
  const rv = obj(obj(o)?.metadata)?.resourceVersion;
  return typeof rv === "string" && rv !== "" ? rv : undefined;
}

export class ObjectCache<T> {
  private readonly items = new Map<string, { value: T; key: string }>();
  resourceVersion: string | undefined;

  /** `parse` turns an API object into what is kept, or throws (the message is logged) when it cannot. */
  constructor(private readonly parse: (o: Obj) => { name: string; value: T }) {}

  /** Everything known, sorted by name (so that plans do not depend on event order). */
  values(): T[] {
    return [...this.items.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v.value);
  }

  get size(): number {
    return this.items.size;
  }

  /** A full list: the cache becomes exactly these objects. Returns the objects refused by `parse`. */
  replace(
    items: readonly unknown[],
    resourceVersion: string | undefined,
  ): Array<{ name: string | undefined; message: string }> {
    const refused: Array<{ name: string | undefined; message: string }> = [];
    this.items.clear();
    for (const raw of items) {
      const o = obj(raw);
      try {
        if (!o) throw new Error("a list item that is not an object");
        const { name, value } = this.parse(o);
        this.items.set(name, { value, key: JSON.stringify(value) });
      } catch (e) {
        refused.push({ name: nameOf(o), message: (e as Error).message });
      }
    }
    this.resourceVersion = resourceVersion;
    return refused;
  }

  /** One watch event. The resourceVersion moves on with every event that carries one, bookmarks included. */
  apply(ev: WatchEvent): ApplyOutcome {
    if (ev.type === "ERROR") {
      const code = typeof ev.object.code === "number" ? ev.object.code : 0;
      const reason = typeof ev.object.reason === "string" ? ev.object.reason : "";
      const message = typeof ev.object.message === "string" ? ev.object.message : "";
      return { kind: "error", code, reason, message, gone: code === 410 || reason === "Expired" || reason === "Gone" };
    }
    const rv = resourceVersionOf(ev.object);
    if (ev.type === "BOOKMARK") {
      if (rv !== undefined) this.resourceVersion = rv;
      return { kind: "unchanged" };
    }
    let parsed: { name: string; value: T };
    try {
      parsed = this.parse(ev.object);
    } catch (e) {
      if (rv !== undefined) this.resourceVersion = rv;
      return { kind: "refused", name: nameOf(ev.object), message: (e as Error).message };
    }
    if (rv !== undefined) this.resourceVersion = rv;
    const { name, value } = parsed;
    if (ev.type === "DELETED") {
      return this.items.delete(name) ? { kind: "changed", name } : { kind: "unchanged", name };
    }
    const key = JSON.stringify(value);
    if (this.items.get(name)?.key === key) return { kind: "unchanged", name };
    this.items.set(name, { value, key });
    return { kind: "changed", name };
  }
}

function nameOf(o: Obj | undefined): string | undefined {
  const n = obj(o?.metadata)?.name;
  return typeof n === "string" ? n : undefined;
}
