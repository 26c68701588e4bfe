/**
 * iptables backend: the reference's layout (iptables-rules.ts), per family of the pod's addresses one save and,
 * when anything is missing, one restore. A restore that lost a race (another ADD made a chain between our read and
 * our write) is recomputed from a fresh read.
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import { hasIptables, requireIptables, restoreFilter, saveFilter, TOOLS } from "./apply.js";
import { addLines, blindDelLines, checkProblem, delLines } from "./iptables-rules.js";
import { familiesOf, type PodAddr } from "./pod.js";

const ATTEMPTS = 3;

const ofFamily = (addrs: readonly PodAddr[], f: Family) => addrs.filter((a) => a.family === f);

/** ADD: the chains, jumps and address rules (and the bridge's isolation rules) of every family of `addrs`. */
export async function iptAdd(adminChain: string, addrs: readonly PodAddr[], bridge: string | undefined): Promise<void> {
  const families = familiesOf(addrs);
  for (const f of families) requireIptables(f);
  for (const f of families) {
    let error = "";
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const lines = addLines(await saveFilter(f), { adminChain, addrs: ofFamily(addrs, f), bridge });
      const r = lines.length === 0 ? { ok: true, stderr: "" } : await restoreFilter(f, lines);
      error = r.ok ? "" : r.stderr;
      if (r.ok) break;
    }
    if (error) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: ${TOOLS[f].restore} failed: ${error}`);
  }
}

/**
 * DEL: the address rules. First blind (`-D` of every rule: one process, right whenever ADD's rules are all there);
 * if iptables refuses (a rule is gone already), read the table and delete what is present.
 */
export async function iptDel(addrs: readonly PodAddr[]): Promise<void> {
  const errors: string[] = [];
  await Promise.all(
    familiesOf(addrs).map(async (f) => {
      if (!hasIptables(f)) return;
      const mine = ofFamily(addrs, f);
      if ((await restoreFilter(f, blindDelLines(mine))).ok) return;
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const lines = delLines(await saveFilter(f), mine);
        if (lines.length === 0) return;
        const r = await restoreFilter(f, lines);
        if (r.ok) return;
        if (attempt === ATTEMPTS - 1) errors.push(`${TOOLS[f].restore}: ${r.stderr}`);
        else log.debug(`firewall DEL: retrying after ${r.stderr}`);
      }
    }),
  );
  if (errors.length > 0) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: iptables teardown failed: ${errors.join("; ")}`);
}

/** CHECK: what the reference checks (chains, jumps, address rules), read from one save per family. */
export async function iptCheck(adminChain: string, addrs: readonly PodAddr[]): Promise<string | undefined> {
  for (const f of familiesOf(addrs)) {
    requireIptables(f);
    const problem = checkProblem(await saveFilter(f), { adminChain, addrs: ofFamily(addrs, f), bridge: undefined });
    if (problem) return `${TOOLS[f].save.replace("-save", "")}: ${problem}`;
  }
  return undefined;
}
