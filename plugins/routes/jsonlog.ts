/**
 * Structured logs for the long-running controller: one JSON object per line on stderr, with time, level and
 * message first, then fields. Values are JSON-encoded, so a Node name or an API message cannot forge a line.
 *
 * @example
 *   const log = jsonLogger();
 *   log.info("route added", { dst: "10.244.2.0/24", via: "172.31.250.2", node: "node2" });
 *   // {"time":"2025-01-01T00:00:00.000Z","level":"info","msg":"route added","dst":"10.244.2.0/24",...}
 */

export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

/** A logger writing JSON lines through `write` (stderr unless told). */
export function jsonLogger(
  write: (line: string) => void = (l) => void process.stderr.write(l),
  now: () => Date = () => new Date(),
): Logger {
  const emit = (level: string, msg: string, fields: Fields = {}) => {
    const rec: Record<string, unknown> = { time: now().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in rec)) rec[k] = v;
    write(`${JSON.stringify(rec)}\n`);
  };
  return {
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}
