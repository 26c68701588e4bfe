/**
 * bridge GC (spec 1.1): forward to IPAM (the spec's MUST), then drop the masquerade and spoof-check state of
 * attachments that are neither in `cni.dev/valid-attachments` nor live on the node (plugins/bridge/live.ts).
 *
 * Why liveness and not the list alone: a runtime computes the list before it calls GC, and an ADD may finish in
 * between (the spec forbids GC during ADD; runtimes do it anyway). host-local keeps such an attachment's address
 * (its in-progress protection and grace period), so the bridge must keep its masquerade, or the pod keeps an
 * address it cannot leave the subnet with. An attachment whose namespace is gone has no veth, and its state goes.
 */
import { delegate } from "../../lib/invoke.js";
import { gcMasq } from "../../lib/netfilter/masq.js";
import type { GcContext } from "../../lib/skel.js";
import { loadBridgeConfig } from "./config.js";
import { readLiveLinks } from "./live.js";
import { hostVethName } from "./names.js";
import { gcSpoofCheck } from "./spoofcheck.js";

export async function gc(ctx: GcContext): Promise<void> {
  const conf = loadBridgeConfig(ctx.config, ctx.args);
  if (conf.ipamType) await delegate(conf.ipamType, "GC", ctx);
  const valid = ctx.validAttachments;
  if (valid === undefined) return;
  // Each backend reads its state and only then asks for the live links, per attempt: see lib/masq `LiveMasqKeys`.
  if (conf.ipMasq) await gcMasq(conf.name, valid, undefined, async () => (await readLiveLinks()).masqKeys);
  if (conf.macspoofchk) {
    const keep = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
    await gcSpoofCheck(conf.name, keep, async () => (await readLiveLinks()).veths);
  }
}
