/**
 * bridge DEL: best effort and idempotent. It works from what it knows, not from what is still alive: the host veth
 * name follows from the attachment, masquerade state is keyed by the attachment, and IPAM releases by attachment.
 * So an empty CNI_NETNS, a deleted namespace, a path that is no longer a namespace (an unmounted one's empty file),
 * a vanished interface or a second DEL all end the same way: nothing of the attachment left. It removes only links
 * that are the attachment's own (owner.ts): a DEL after a refused ADD leaves the live pod that was in the way alone.
 * Every step runs even if an earlier one failed; the first failure is reported at the end.
 */
import { existsSync, readFileSync } from "node:fs";
import { asCniError } from "../../lib/errors.js";
import { delegate } from "../../lib/invoke.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { getLink, ipJson, type LinkInfo } from "../../lib/ip/read.js";
import { log } from "../../lib/log.js";
import { hasMarker, markerDetail, unmarkAttachment } from "../../lib/marker.js";
import { delMasq } from "../../lib/netfilter/masq.js";
import { inspectNetns, netnsForDel } from "../../lib/netns.js";
import type { CmdContext } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { ToolError } from "../../lib/tool-error.js";
import { parseResult } from "../../lib/version.js";
import { loadBridgeConfig, type BridgeConfig } from "./config.js";
import { hostVethAlias, hostVethName } from "./names.js";
import { hostVethOwner, prevHostMac, prevPodMac, sameMac, type HostVethView, type Ownership } from "./owner.js";
import { delSpoofCheck } from "./spoofcheck.js";

/** The link is already gone: what DEL wants, however iproute2 words it. */
const isGone = (e: unknown): boolean => e instanceof ToolError && e.kind === "not-found";

/** /proc/sys/net/ipv4/conf/<name> exists for every interface of our namespace: a check without a spawn. */
function hostLinkExists(name: string): boolean {
  return existsSync(`/proc/sys/net/ipv4/conf/${name}`);
}

/**
 * The link named like the attachment's host veth (`present`: hostLinkExists said so), as far as ownership needs it.
 * With a MAC from prevResult, sysfs answers without a process when it shows our namespace (its MAC there is the one
 * ADD chose); else one `ip -d -json`.
 */
async function readHostVeth(
  name: string,
  present: boolean,
  prevMac: string | undefined,
): Promise<HostVethView | undefined> {
  if (!present) return undefined;
  if (prevMac !== undefined) {
    try {
      const mac = readFileSync(`/sys/class/net/${name}/address`, "utf8").trim();
      if (sameMac(mac, prevMac)) return { mac };
    } catch {
      // not in this sysfs: ask ip
    }
  }
  const links = await ipJson<Array<LinkInfo & { ifalias?: string }>>(["-details", "link", "show", "dev", name]).catch(
    (e: unknown) => {
      if (isGone(e)) return [];
      throw e;
    },
  );
  const l = links[0];
  return l ? { kind: l.linkinfo?.info_kind, alias: l.ifalias, mac: l.address } : undefined;
}

async function deleteLink(name: string, netns?: string): Promise<void> {
  try {
    await new IpBatch().cmd("link", "del", "dev", name).run(netns, `deleting ${name}`);
  } catch (e) {
    if (!isGone(e)) throw e;
  }
}

/** The config as far as it can be read: DEL must clean up even when a key is now invalid. */
function lenientConfig(ctx: CmdContext): Partial<BridgeConfig> & { name: string } {
  try {
    return loadBridgeConfig(ctx.config, new Map());
  } catch (e) {
    log.warn(`bridge DEL: config not fully valid (${(e as Error).message}); cleaning up with what can be read`);
    const ipam = ctx.config.ipam;
    const ipamType =
      typeof ipam?.type === "string" && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ipam.type) ? ipam.type : undefined;
    return {
      name: ctx.config.name,
      ipamType,
      ipMasq: ctx.config.ipMasq === true,
      macspoofchk: ctx.config.macspoofchk === true,
    };
  }
}

/** prevResult, when it can be read: a hint for masquerade teardown and ownership, never required. */
function prevResultOf(ctx: CmdContext): Result | undefined {
  if (ctx.config.prevResult === undefined || ctx.config.prevResult === null) return undefined;
  try {
    return parseResult(ctx.config.prevResult, ctx.version);
  } catch {
    return undefined;
  }
}

/**
 * The attachment's masquerade: from prevResult's addresses when there are some, else by its identity when an ADD of
 * ours marked it; without either (a repeated DEL: containerd's RemovePodSandbox) there is nothing to remove and no
 * process is started. The marker names the backend the ADD wrote to: only that one is touched. Without a marker
 * naming one (an ADD by the reference or an older cni-ts) both are.
 */
async function delMasquerade(network: string, ctx: CmdContext, prev: Result | undefined): Promise<void> {
  const ips = (prev?.ips ?? []).map((ip) => ip.address);
  if (ips.length === 0 && !hasMarker("masq", network, ctx.containerID, ctx.ifname)) return;
  const backend = markerDetail("masq", network, ctx.containerID, ctx.ifname);
  await delMasq(
    network,
    ctx.containerID,
    ctx.ifname,
    ips,
    undefined,
    backend === "iptables" || backend === "nftables" ? backend : undefined,
  );
  unmarkAttachment("masq", network, ctx.containerID, ctx.ifname);
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
  const prev = prevResultOf(ctx);
  const hostVeth = hostVethName(ctx.containerID, ctx.ifname);
  const vethPresent = hostLinkExists(hostVeth);
  // Only the attachment's own links go (owner.ts). Deleting the host veth deletes its pod end with it, so the pod's
  // namespace is entered only for an interface whose host end has no name we know (made by the reference plugin),
  // and only when prevResult proves it is this attachment's by its MAC.
  const links = async () => {
    let owner: Ownership = "absent";
    await step("host interface", async () => {
      owner = hostVethOwner(
        await readHostVeth(hostVeth, vethPresent, prevHostMac(prev, hostVeth)),
        hostVethAlias(conf.name, ctx.containerID, ctx.ifname),
        prevHostMac(prev, hostVeth),
      );
      if (owner === "ours") await deleteLink(hostVeth);
      else if (owner === "foreign")
        log.warn(
          `bridge DEL: ${hostVeth} is not this attachment's (another network's, or not made by cni-ts): left alone`,
        );
    });
    const podMac = prevPodMac(prev, ctx.ifname);
    if (owner !== "absent" || podMac === undefined || netnsForDel(ctx.netns) !== "ok") return;
    await step("pod interface", async () => {
      const link = await getLink(ctx.ifname, ctx.netns).catch((e: unknown) => {
        // The namespace went away between the look and nsenter: its interfaces went with it.
        if (inspectNetns(ctx.netns) !== "ok") return undefined;
        throw e;
      });
      if (!link) return;
      if (sameMac(link.address, podMac)) await deleteLink(ctx.ifname, ctx.netns);
      else
        log.warn(
          `bridge DEL: ${ctx.ifname} in ${ctx.netns} has MAC ${link.address ?? "none"}, not ${podMac} of this attachment's result: left alone`,
        );
    });
  };
  // The links first, and alone until their process has started: deleting a veth is the longest step (the kernel
  // takes ~20 ms to unregister it), and the other steps' first synchronous work (host-local's in-process start, the
  // masquerade's scripts) would otherwise run before it gets going. Without a host veth or a pod namespace path (a
  // repeated DEL) no link process starts, and nothing is worth the wait.
  const linksDone = links();
  if (vethPresent || ctx.netns !== "") await new Promise((r) => setImmediate(r));
  // Then the steps that wait on processes (masquerade, spoof check), then IPAM, which runs in-process meanwhile.
  await Promise.all([
    linksDone,
    conf.ipMasq ? step("masquerade", () => delMasquerade(conf.name, ctx, prev)) : undefined,
    conf.macspoofchk ? step("macspoofchk", () => delSpoofCheck(hostVeth, conf.name)) : undefined,
    // A runtime's DEL releases the whole attachment: an owner token the runtime's environment may carry is dropped.
    conf.ipamType
      ? step("IPAM", () =>
          delegate(conf.ipamType!, "DEL", ctx, { env: { CNI_TS_IPAM_OWNER: undefined } }).then(() => undefined),
        )
      : undefined,
  ]);
  if (errors.length > 0) {
    throw asCniError(errors[0]);
  }
}
