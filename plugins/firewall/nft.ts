/**
 * nftables backend: our table `inet cni_ts_firewall` (nft-rules.ts), through lib/netfilter. ADD is one `nft -f` in
 * the usual case; DEL is one `nft -f`, with a listing only when the first transaction is refused (the table is
 * gone, or another attachment owns an address now).
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { hasExecutable } from "../../lib/exec.js";
import { requireTool } from "../../lib/netfilter/backend.js";
import { nftApply, nftApplyWithRetry, nftFailure, nftListTable } from "../../lib/netfilter/nft.js";
import {
  addScript,
  delScript,
  FIREWALL_NFT_NAME,
  nftCheckProblem,
  ownedByOthers,
  parseListing,
  type NftState,
} from "./nft-rules.js";
import type { PodAddr } from "./pod.js";

async function listState(): Promise<NftState | undefined> {
  const objects = await nftListTable(FIREWALL_NFT_NAME);
  return objects ? parseListing(objects) : undefined;
}

/** ADD: the addresses become ours (taken over from a stale owner if need be), the bridge joins the isolated set. */
export async function nftAdd(addrs: readonly PodAddr[], tag: number, bridge: string | undefined): Promise<void> {
  requireTool("nft", "firewall");
  const err = await nftApplyWithRetry(FIREWALL_NFT_NAME, async (attempt) => {
    if (attempt === 0) return addScript(addrs, tag, bridge);
    // An address still owned by an attachment that is gone (its DEL has not run): the newest ADD wins.
    const state = await listState();
    return addScript(addrs, tag, bridge, state ? ownedByOthers(state, addrs, tag) : []);
  });
  if (err) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: nft failed: ${err.stderr}`);
}

/** DEL: the addresses this attachment owns; those another attachment owns now stay. No table: nothing to do. */
export async function nftDel(addrs: readonly PodAddr[], tag: number): Promise<void> {
  if (addrs.length === 0 || !hasExecutable("nft")) return;
  // Blind first: right whenever the elements are ours; no table means nothing to remove (and no listing).
  const first = await nftApply(delScript(addrs, tag));
  if (!first || nftFailure(first, FIREWALL_NFT_NAME) === "no-table") return;
  const err = await nftApplyWithRetry(FIREWALL_NFT_NAME, async () => {
    const state = await listState();
    if (!state) return [];
    const others = new Set(ownedByOthers(state, addrs, tag).map((a) => a.ip));
    return delScript(
      addrs.filter((a) => !others.has(a.ip)),
      tag,
    );
  });
  if (err) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: nft teardown failed: ${err.stderr}`);
}

/** CHECK: the chain with its constant rules, the addresses owned by this attachment, the isolated bridge. */
export async function nftCheck(
  addrs: readonly PodAddr[],
  tag: number,
  bridge: string | undefined,
): Promise<string | undefined> {
  requireTool("nft", "firewall");
  const state = await listState();
  if (!state) return `nft table ${FIREWALL_NFT_NAME} does not exist`;
  return nftCheckProblem(state, addrs, tag, bridge);
}
