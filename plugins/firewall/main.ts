/**
 * The `firewall` plugin: chained after the main plugin, it lets the pod's forwarded traffic through a node whose
 * FORWARD policy drops it (accept rules for the result's addresses, conntrack for replies), with the operator's
 * admin chain first, and optionally isolates bridges from each other (`ingressPolicy: same-bridge`). iptables in
 * the reference's layout, or nftables with constant rules and sets. See docs/firewall.md.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import { gcMarkers, listMarkers, markAttachment, markerDetail, unmarkAttachment } from "../../lib/marker.js";
import { requireBackendTool } from "../../lib/netfilter/backend.js";
import type { CmdContext, GcContext, PluginDefinition } from "../../lib/skel.js";
import type { Attachment, Result } from "../../lib/types.js";
import { parseResult, requirePrevResult } from "../../lib/version.js";
import { FIREWALL_CONF_SHAPE, loadFirewallConfig, type Backend, type FirewallConfig } from "./config.js";
import { iptAdd, iptCheck, iptDel } from "./iptables.js";
import { ownerTag } from "./nft-rules.js";
import { nftAdd, nftCheck, nftDel } from "./nft.js";
import { bridgeOf, decodeAddrs, encodeAddrs, podAddresses, type PodAddr } from "./pod.js";

function requirePrev(ctx: CmdContext): Result {
  return requirePrevResult(
    ctx.config,
    ctx.version,
    "missing prevResult from earlier plugin",
    "firewall runs chained after a plugin that returns the pod's addresses",
  );
}

const bridgeFor = (conf: FirewallConfig, prev: Result): string | undefined =>
  conf.ingressPolicy === "same-bridge" ? bridgeOf(prev) : undefined;

/** The marker's detail word: the backend that holds the rules and the addresses they name. */
const markerText = (backend: Backend, addrs: readonly PodAddr[]): string => `${backend}:${encodeAddrs(addrs)}`;

function parseMarkerText(text: string | undefined): { backend: Backend; addrs: PodAddr[] } | undefined {
  const m = /^(iptables|nftables):(.*)$/.exec(text ?? "");
  return m ? { backend: m[1] as Backend, addrs: decodeAddrs(m[2]!) } : undefined;
}

async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadFirewallConfig(ctx.config);
  const prev = requirePrev(ctx);
  const addrs = podAddresses(prev);
  const bridge = bridgeFor(conf, prev);
  // The reference's rules are per address (and isolation per address family): no address, nothing to do.
  if (addrs.length === 0) return prev;
  markAttachment("firewall", conf.name, ctx.containerID, ctx.ifname, markerText(conf.backend, addrs));
  if (conf.backend === "nftables") await nftAdd(addrs, ownerTag(conf.name, ctx.containerID, ctx.ifname), bridge);
  else await iptAdd(conf.adminChain, addrs, bridge);
  return prev;
}

/**
 * iptables address rules carry no owner: an address another live attachment still uses (its marker names it, e.g.
 * after the address moved to a new pod before this DEL ran) keeps its rules.
 */
function notInUseElsewhere(
  addrs: readonly PodAddr[],
  self: Attachment & { network: string },
  keep?: (a: Attachment & { network: string }) => boolean,
): PodAddr[] {
  const used = new Set<string>();
  for (const m of listMarkers("firewall")) {
    if (m.network === self.network && m.containerID === self.containerID && m.ifname === self.ifname) continue;
    if (keep && !keep(m)) continue;
    const held = parseMarkerText(m.detail);
    if (held?.backend === "iptables") for (const a of held.addrs) used.add(a.ip);
  }
  return addrs.filter((a) => !used.has(a.ip));
}

/** Remove one attachment's rules from the backend that holds them. */
async function teardown(
  backend: Backend,
  addrs: readonly PodAddr[],
  who: Attachment & { network: string },
  keep?: (a: Attachment & { network: string }) => boolean,
): Promise<void> {
  if (backend === "nftables") await nftDel(addrs, ownerTag(who.network, who.containerID, who.ifname));
  else await iptDel(notInUseElsewhere(addrs, who, keep));
}

/**
 * The backend DEL tears down: the one ADD marked, else the config's; a config that does not validate names none,
 * and DEL then looks in both (it must not fail: the runtime would stop before bridge and leak the pod's interface).
 */
function delBackends(ctx: CmdContext, marked: Backend | undefined): Backend[] {
  if (marked) return [marked];
  try {
    return [loadFirewallConfig(ctx.config).backend];
  } catch (e) {
    log.warn(`firewall DEL: ${(e as Error).message}; looking in both backends`);
    return ["iptables", "nftables"];
  }
}

/**
 * DEL: the attachment's address rules, from prevResult or, without one (netns gone, containerd's second DEL), from
 * the marker ADD wrote; nothing known, nothing to do (no process). Chains, jumps and isolation rules stay, as in the
 * reference: other pods and bridges use them.
 */
async function del(ctx: CmdContext): Promise<void> {
  const who = { network: ctx.config.name, containerID: ctx.containerID, ifname: ctx.ifname };
  const marked = parseMarkerText(markerDetail("firewall", who.network, ctx.containerID, ctx.ifname));
  const raw = ctx.config.prevResult;
  const fromPrev = raw === undefined || raw === null ? [] : podAddresses(parseResult(raw, ctx.version));
  const addrs = fromPrev.length > 0 ? fromPrev : (marked?.addrs ?? []);
  if (addrs.length === 0) return;
  for (const backend of delBackends(ctx, marked?.backend)) await teardown(backend, addrs, who);
  unmarkAttachment("firewall", who.network, ctx.containerID, ctx.ifname);
}

/** CHECK: what ADD made for the addresses in prevResult is there (code 103 otherwise). */
async function check(ctx: CmdContext): Promise<void> {
  const conf = loadFirewallConfig(ctx.config);
  const prev = requirePrev(ctx);
  const addrs = podAddresses(prev);
  if (addrs.length === 0) return;
  const problem =
    conf.backend === "nftables"
      ? await nftCheck(addrs, ownerTag(conf.name, ctx.containerID, ctx.ifname), bridgeFor(conf, prev))
      : await iptCheck(conf.adminChain, addrs);
  if (problem)
    throw new CniError(
      ErrorCode.CheckFailed,
      `firewall: ${problem}`,
      `attachment ${ctx.containerID}/${ctx.ifname} of network ${conf.name}`,
    );
}

/** GC: the rules of this network's marked attachments that are not in the valid list. */
async function gc(ctx: GcContext): Promise<void> {
  if (ctx.validAttachments === undefined) return;
  const network = ctx.config.name;
  const valid = new Set(ctx.validAttachments.map((a) => `${a.containerID}\n${a.ifname}`));
  const isValid = (m: Attachment & { network: string }) =>
    m.network !== network || valid.has(`${m.containerID}\n${m.ifname}`);
  const stale = listMarkers("firewall").filter((m) => !isValid(m));
  const errors: string[] = [];
  for (const m of stale) {
    const held = parseMarkerText(m.detail);
    if (!held) continue;
    // Addresses still held by a valid attachment keep their rules (stale markers do not count).
    await teardown(held.backend, held.addrs, m, isValid).catch((e: Error) => errors.push(e.message));
  }
  if (errors.length > 0)
    throw new CniError(ErrorCode.KernelOperationFailed, `firewall GC failed: ${errors.join("; ")}`);
  gcMarkers("firewall", network, ctx.validAttachments);
}

/** STATUS: the config is valid and its backend's tool is installed (code 50 otherwise). */
async function status(ctx: CmdContext): Promise<void> {
  requireBackendTool(loadFirewallConfig(ctx.config).backend, "firewall");
}

/** The firewall plugin definition for the multi-call executable. */
export const firewall: PluginDefinition = {
  name: "firewall",
  about:
    "CNI firewall plugin (cni-ts): accept forwarded pod traffic and isolate bridges (iptables or nftables), chained after the main plugin",
  // The rules live on the node; DEL must work after the pod's namespace is gone.
  netns: "ignored",
  config: FIREWALL_CONF_SHAPE,
  add,
  del,
  check,
  gc,
  status,
};
