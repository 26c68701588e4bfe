/**
 * bridge DEL: best effort and idempotent. It works from what it knows, not from what is still alive: the host veth
 * name follows from the attachment, masquerade state is keyed by the attachment, and IPAM releases by attachment.
 * So an empty CNI_NETNS, a deleted namespace, a vanished interface or a second DEL all end the same way: nothing
 * left. Every step runs even if an earlier one failed; the first failure is reported at the end.
 */
import { existsSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { delegate } from "../../lib/invoke.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { log } from "../../lib/log.js";
import { delMasq } from "../../lib/masq.js";
import { inspectNetns } from "../../lib/netns.js";
import type { CmdContext } from "../../lib/skel.js";
import { parseResult } from "../../lib/version.js";
import { loadBridgeConfig, type BridgeConfig } from "./config.js";
import { hostVethName } from "./names.js";
import { delSpoofCheck } from "./spoofcheck.js";

const GONE = /Cannot find device|does not exist|No such device/;

/** /proc/sys/net/ipv4/conf/<name> exists for every interface of our namespace: a check without a spawn. */
async function hostLinkExists(name: string): Promise<boolean> {
  return existsSync(`/proc/sys/net/ipv4/conf/${name}`);
}

async function deleteLink(name: string, netns?: string): Promise<void> {
  try {
    await new IpBatch().cmd("link", "del", "dev", name).run(netns, `deleting ${name}`);
  } catch (e) {
    if (!(e instanceof CniError && GONE.test(e.message))) throw e;
  }
}

/** The config as far as it can be read: DEL must clean up even when a key is now invalid. */
function lenientConfig(ctx: CmdContext): Partial<BridgeConfig> & { name: string } {
  try {
    return loadBridgeConfig(ctx.config, new Map());
  } catch (e) {
    log.warn(`bridge DEL: config not fully valid (${(e as Error).message}); cleaning up with what can be read`);
    const ipam = ctx.config.ipam;
    const ipamType = typeof ipam?.type === "string" && /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/.test(ipam.type) ? ipam.type : undefined;
    return { name: ctx.config.name, ipamType, ipMasq: ctx.config.ipMasq === true, macspoofchk: ctx.config.macspoofchk === true };
  }
}

/** Addresses of this attachment from prevResult ("ip/prefix"): a hint for masquerade teardown, never required. */
function prevIPs(ctx: CmdContext): string[] {
  try {
    return (parseResult(ctx.config.prevResult, ctx.version).ips ?? []).map((ip) => ip.address);
  } catch {
    return [];
  }
}

export async function del(ctx: CmdContext): Promise<void> {
  const conf = lenientConfig(ctx);
  const errors: unknown[] = [];
  const step = async (what: string, f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      log.warn(`bridge DEL: ${what}: ${(e as Error).message}`);
      errors.push(e);
    }
  };
  // Independent steps, run at the same time. Deleting either end of a veth pair deletes both: the pod end first
  // while its namespace exists; the host end by its derived name covers an empty or vanished CNI_NETNS.
  const links = async () => {
    if (ctx.netns !== "" && inspectNetns(ctx.netns) === "ok") {
      let podGone = false;
      await step("pod interface", async () => {
        await deleteLink(ctx.ifname, ctx.netns);
        podGone = true;
      });
      if (podGone && !(await hostLinkExists(hostVethName(ctx.containerID, ctx.ifname)))) return;
    }
    await step("host interface", () => deleteLink(hostVethName(ctx.containerID, ctx.ifname)));
  };
  await Promise.all([
    links(),
    // A runtime's DEL releases the whole attachment: an owner token the runtime's environment may carry is dropped.
    conf.ipamType ? step("IPAM", () => delegate(conf.ipamType!, "DEL", ctx, { env: { CNI_TS_IPAM_OWNER: undefined } }).then(() => undefined)) : undefined,
    conf.ipMasq ? step("masquerade", () => delMasq(conf.name, ctx.containerID, ctx.ifname, prevIPs(ctx))) : undefined,
    conf.macspoofchk ? step("macspoofchk", () => delSpoofCheck(hostVethName(ctx.containerID, ctx.ifname))) : undefined,
  ]);
  if (errors.length > 0) {
    const first = errors[0];
    throw first instanceof CniError ? first : new CniError(ErrorCode.Internal, String(first));
  }
}
