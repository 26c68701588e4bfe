/** What the lab prints: a progress line while it works, then tables a person reads at a glance. */

const tty = process.stderr.isTTY === true;
let lastLen = 0;

/** One live line on a terminal (rewritten in place), plain lines otherwise (CI logs). */
export function progress(text: string): void {
  if (tty) {
    process.stderr.write(`\r${text.padEnd(lastLen)}`);
    lastLen = text.length;
  } else process.stderr.write(`... ${text}\n`);
}

export function endProgress(): void {
  if (tty && lastLen > 0) process.stderr.write(`\r${" ".repeat(lastLen)}\r`);
  lastLen = 0;
}

/** Columns padded to the widest cell, like kubectl's tables. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
