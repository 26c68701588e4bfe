/**
 * nftables backend: our table `inet cni_ts_firewall` (nft-rules.ts). ADD is one `nft -f` in the usual case; DEL
 * is one `nft -f`, with a listing only when the first transaction is refused (the table is gone, or another
 * attachment owns an address now).
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { hasExecutable } from "../../lib/masq.js";
import { nftList, nftRun, requireNft } from "./apply.js";
import { addScript, delScript, nftCheckProblem, ownedByOthers } from "./nft-rules.js";
import type { PodAddr } from "./pod.js";

const ATTEMPTS = 3;

/** ADD: the addresses become ours (taken over from a stale owner if need be), the bridge joins the isolated set. */
export async function nftAdd(addrs: readonly PodAddr[], tag: number, bridge: string | undefined): Promise<void> {
  requireNft();
  let r = await nftRun(addScript(addrs, tag, bridge));
  for (let attempt = 1; !r.ok && attempt < ATTEMPTS; attempt++) {
    // An address still owned by an attachment that is gone (its DEL has not run): the newest ADD wins.
    const state = await nftList();
    r = await nftRun(addScript(addrs, tag, bridge, state ? ownedByOthers(state, addrs, tag) : []));
  }
  if (!r.ok) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: nft failed: ${r.stderr}`);
}

/** DEL: the addresses this attachment owns; those another attachment owns now stay. */
export async function nftDel(addrs: readonly PodAddr[], tag: number): Promise<void> {
  if (addrs.length === 0 || !hasExecutable("nft")) return;
  if ((await nftRun(delScript(addrs, tag))).ok) return;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const state = await nftList();
    if (!state) return;
    const others = new Set(ownedByOthers(state, addrs, tag).map((a) => a.ip));
    const mine = addrs.filter((a) => !others.has(a.ip));
    const script = delScript(mine, tag);
    if (script === "") return;
    const r = await nftRun(script);
    if (r.ok) return;
    if (attempt === ATTEMPTS - 1) throw new CniError(ErrorCode.KernelOperationFailed, `firewall: nft teardown failed: ${r.stderr}`);
  }
}

/** CHECK: the chain with its constant rules, the addresses owned by this attachment, the isolated bridge. */
export async function nftCheck(addrs: readonly PodAddr[], tag: number, bridge: string | undefined): Promise<string | undefined> {
  requireNft();
  const state = await nftList();
  if (!state) return "nft table inet cni_ts_firewall does not exist";
  return nftCheckProblem(state, addrs, tag, bridge);
}
