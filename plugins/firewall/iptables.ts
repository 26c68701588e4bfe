/**
 * iptables backend: the reference's layout (iptables-rules.ts), per family of the pod's addresses one save and,
 * when anything is missing, one restore (lib/netfilter). A restore that lost a race (another ADD made a chain
 * between our read and our write) is recomputed from a fresh read.
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { requireTool } from "../../lib/netfilter/backend.js";
import { hasSaveRestore, IPTABLES, restoreTable, restoreWithRetry, saveTable } from "../../lib/netfilter/iptables.js";
import type { SavedTable } from "../../lib/netfilter/iptables-save.js";
import { addLines, blindDelLines, checkProblem, delLines } from "./iptables-rules.js";
import { familiesOf, type PodAddr } from "./pod.js";

const ofFamily = (addrs: readonly PodAddr[], f: Family) => addrs.filter((a) => a.family === f);

function requireIptables(f: Family): void {
  requireTool(IPTABLES[f].save, "firewall");
  requireTool(IPTABLES[f].restore, "firewall");
}

/** The family's filter table; code 100 when it cannot be read. */
async function readFilter(f: Family): Promise<SavedTable> {
  const saved = await saveTable(f, "filter");
  if (!saved.ok)
    throw new CniError(ErrorCode.KernelOperationFailed, `firewall: cannot read the filter table: ${saved.error}`);
  return saved.table;
}

/** ADD: the chains, jumps and address rules (and the bridge's isolation rules) of every family of `addrs`. */
export async function iptAdd(adminChain: string, addrs: readonly PodAddr[], bridge: string | undefined): Promise<void> {
  const families = familiesOf(addrs);
  for (const f of families) requireIptables(f);
  for (const f of families) {
    const error = await restoreWithRetry(f, "filter", async () =>
      addLines(await readFilter(f), { adminChain, addrs: ofFamily(addrs, f), bridge }),
    );
    if (error !== undefined)
      throw new CniError(ErrorCode.KernelOperationFailed, `firewall: ${IPTABLES[f].restore} failed: ${error}`);
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
      if (!hasSaveRestore(f)) return;
      const mine = ofFamily(addrs, f);
      if ((await restoreTable(f, "filter", blindDelLines(mine))).ok) return;
      const error = await restoreWithRetry(f, "filter", async () => delLines(await readFilter(f), mine));
      if (error !== undefined) errors.push(`${IPTABLES[f].restore}: ${error}`);
    }),
  );
  if (errors.length > 0)
    throw new CniError(ErrorCode.KernelOperationFailed, `firewall: iptables teardown failed: ${errors.join("; ")}`);
}

/** CHECK: what the reference checks (chains, jumps, address rules), read from one save per family. */
export async function iptCheck(adminChain: string, addrs: readonly PodAddr[]): Promise<string | undefined> {
  for (const f of familiesOf(addrs)) {
    requireIptables(f);
    const problem = checkProblem(await readFilter(f), { adminChain, addrs: ofFamily(addrs, f), bridge: undefined });
    if (problem) return `${IPTABLES[f].cmd}: ${problem}`;
  }
  return undefined;
}
