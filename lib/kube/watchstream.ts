/**
 * The body of a Kubernetes watch: one JSON object per line, `{"type": "ADDED", "object": {...}}`, sent in
 * chunks that split lines anywhere. The decoder is pure (fed strings, hands back events) so that the protocol
 * rules are unit-tested without a socket.
 *
 * @example
 *   const d = new WatchDecoder();
 *   d.push('{"type":"ADDED","object":{"metadata":{"name":"n1"}}}\n{"ty'); // [ADDED n1]
 *   d.push('pe":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}\n'); // [BOOKMARK 12]
 */

export const WATCH_TYPES = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] as const;
export type WatchType = (typeof WATCH_TYPES)[number];

export interface WatchEvent {
  type: WatchType;
  object: Record<string, unknown>;
}

/** An answer that does not follow the protocol: the watch is dropped and started again. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

// A Node object is a few kB; a line this long is not one, and must not grow without bound in memory.
const MAX_LINE = 8 * 1024 * 1024;

/** One line of a watch as an event; ProtocolError when it is not one. */
export function parseWatchLine(line: string): WatchEvent {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new ProtocolError(`a watch line is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const o = v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  const type = o?.type;
  const object = o?.object;
  if (typeof type !== "string" || !(WATCH_TYPES as readonly string[]).includes(type))
    throw new ProtocolError(`a watch event of unknown type ${JSON.stringify(type)}`);
  if (object === null || typeof object !== "object" || Array.isArray(object))
    throw new ProtocolError(`a ${type} watch event without an object`);
  return { type: type as WatchType, object: object as Record<string, unknown> };
}

export class WatchDecoder {
  private buf = "";

  push(chunk: string): WatchEvent[] {
    this.buf += chunk;
    const out: WatchEvent[] = [];
    for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line !== "") out.push(parseWatchLine(line));
    }
    if (this.buf.length > MAX_LINE) throw new ProtocolError(`a watch line longer than ${MAX_LINE} bytes`);
    return out;
  }

  /** The stream ended: a last event without its newline still counts; half an event is an error. */
  end(): WatchEvent[] {
    const rest = this.buf.trim();
    this.buf = "";
    return rest === "" ? [] : [parseWatchLine(rest)];
  }
}
