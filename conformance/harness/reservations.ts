/**
 * host-local's state on disk as the checks see it: one file per reserved IP in `<dataDir>/<network>`, whose first
 * line is the owner's container ID. Read by `gone.reservations`, `expect.reservations` and the sample's summary.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseIP } from "../../lib/cidr.js";

/** host-local reservation files (named by an IP) in `<dataDir>/<network>`, with their owner container ID. */
export function reservations(dataDir: string, network: string): Array<{ ip: string; owner: string }> {
  const dir = join(dataDir, network);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ ip: string; owner: string }> = [];
  for (const n of names) {
    if (!parseIP(n.replaceAll("_", ":"))) continue;
    let owner = "";
    try {
      owner = readFileSync(join(dir, n), "utf8").split(/\r?\n/)[0]!.trim();
    } catch {
      // vanished meanwhile
    }
    out.push({ ip: n, owner });
  }
  return out;
}
