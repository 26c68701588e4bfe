/**
 * `--forward-accept` against the kernel: per family one `iptables-save -t filter` and, only when something differs,
 * one `iptables-restore --noflush` (recomputed from a fresh read after a lost race), through lib/netfilter. A node
 * in step costs two reads and no write.
 *
 * @example
 *   const plans = await syncForward({ 4: ["10.244.0.0/16"], 6: [] }, false);
 *   await syncForward({ 4: [], 6: [] }, false); // --cleanup: our chains and jumps go
 */
import type { Family } from "../../lib/cidr.js";
import { hasSaveRestore, IPTABLES, restoreWithRetry, saveTable } from "../../lib/netfilter/iptables.js";
import type { SavedTable } from "../../lib/netfilter/iptables-save.js";
import { ToolError } from "../../lib/tool-error.js";
import { planForward, type ForwardPlan } from "./forward.js";

async function readFilter(family: Family, netns: string | undefined): Promise<SavedTable> {
  const saved = await saveTable(family, "filter", netns);
  if (!saved.ok)
    throw new ToolError({
      tool: IPTABLES[family].save,
      what: `reading the filter table for --forward-accept`,
      status: 1,
      stderr: saved.error,
    });
  return saved.table;
}

/**
 * Make each family's chain accept exactly `cidrs[family]` (none: remove our chain and jump), or with dryRun only
 * plan it. A family whose save/restore tools are missing holds nothing of ours and is skipped when it has no CIDR;
 * asked to accept CIDRs there, it is an error. Returns the plans that were applied (or would be); throws on failure
 * (a family that failed changed nothing: its restore is atomic).
 */
export async function syncForward(
  cidrs: Record<Family, readonly string[]>,
  dryRun: boolean,
  netns?: string,
): Promise<ForwardPlan[]> {
  const plans = await Promise.all(
    ([4, 6] as const).map(async (family): Promise<ForwardPlan | undefined> => {
      if (!hasSaveRestore(family)) {
        if (cidrs[family].length === 0) return undefined;
        throw new Error(
          `--forward-accept needs ${IPTABLES[family].save} and ${IPTABLES[family].restore} for ${cidrs[family].join(", ")}: not found in PATH`,
        );
      }
      let plan: ForwardPlan | undefined;
      if (dryRun) return planForward(family, await readFilter(family, netns), cidrs[family]);
      const error = await restoreWithRetry(
        family,
        "filter",
        async () => {
          plan = planForward(family, await readFilter(family, netns), cidrs[family]);
          return plan.lines;
        },
        netns,
      );
      if (error !== undefined)
        throw new ToolError({
          tool: IPTABLES[family].restore,
          what: `--forward-accept (IPv${family})`,
          status: 1,
          stderr: error,
        });
      return plan;
    }),
  );
  return plans.filter((p): p is ForwardPlan => p !== undefined);
}
