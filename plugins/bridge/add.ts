/**
 * bridge ADD: IPAM and the bridge read in parallel, one batch on the node (bridge, veth pair with the pod end
 * created directly in the pod, port flags, gateway), one script in the pod (sysctls, addresses, routes),
 * masquerade, then a bounded wait until the port forwards. Anything created is removed again if a later step fails
 * (the reference leaves the veth behind).
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { randomBytes } from "../../lib/hash.js";
import { delegate } from "../../lib/invoke.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { getLink, ipJson, type LinkInfo } from "../../lib/ip/read.js";
import { log } from "../../lib/log.js";
import { markAttachment } from "../../lib/marker.js";
import { ToolError } from "../../lib/tool-error.js";
import { addMasq, delMasq, resolveMasqBackend } from "../../lib/netfilter/masq.js";
import type { CmdContext } from "../../lib/skel.js";
import { ensureSysctl, writeSysctl } from "../../lib/sysctl.js";
import type { Interface, Result } from "../../lib/types.js";
import { versionAtLeast } from "../../lib/version.js";
import { loadBridgeConfig, type BridgeConfig } from "./config.js";
import { gatewaysOf, routesOf, type GatewayAddr } from "./gateway.js";
import { hostBatch, readBridge, sharedLinkCreated, type BridgeState, type HostPlan } from "./host.js";
import { masqEntries } from "./masq-entries.js";
import { hostVethAlias, hostVethName, randomMac } from "./names.js";
import { podScript, waitForDad } from "./pod.js";
import { addSpoofCheck, delSpoofCheck } from "./spoofcheck.js";
import { applyVlanLines, gatewayPortVlanLines, portVlanLines, vlanGatewayName } from "./vlan.js";

const PORT_WAIT_MS = [0, 20, 50, 100, 250, 500, 1000, 1000];

/**
 * Undo, best effort, in reverse: the caller's error is the one that matters. Only what this ADD made: masquerade and
 * spoof check come after the veth, so without a veth of ours there are none of ours either, and an ADD refused
 * because the attachment is live (IPAM or the veth said 102) must not strip that live pod's rules.
 */
async function rollback(
  conf: BridgeConfig,
  ctx: CmdContext,
  hostVeth: string | undefined,
  ipamDone: boolean,
  ipamOwner: Record<string, string>,
): Promise<void> {
  if (hostVeth)
    await new IpBatch()
      .cmd("link", "del", "dev", hostVeth)
      .run()
      .catch(() => undefined);
  if (hostVeth && conf.macspoofchk) await delSpoofCheck(hostVeth, conf.name).catch(() => undefined);
  if (hostVeth && conf.ipMasq) await delMasq(conf.name, ctx.containerID, ctx.ifname).catch(() => undefined);
  // With this ADD's owner token, our host-local releases what this ADD reserved and nothing else: a concurrent ADD
  // of the same attachment (a runtime retrying after a timeout) may hold it now. Other IPAMs ignore the variable.
  if (ipamDone && conf.ipamType)
    await delegate(conf.ipamType, "DEL", ctx, { env: ipamOwner }).catch((e: unknown) =>
      log.warn(`bridge: IPAM DEL during rollback failed: ${String(e)}`),
    );
}

/** Names this ADD to host-local (CNI_TS_IPAM_OWNER), so that its rollback can release exactly what it reserved. */
function ipamOwnerEnv(): Record<string, string> {
  return { CNI_TS_IPAM_OWNER: randomBytes(16).toString("hex") };
}

/** Explain a failed node batch: which of the two interfaces is in the way. */
async function explainVethFailure(e: unknown, ctx: CmdContext, hostVeth: string): Promise<unknown> {
  if (!(e instanceof ToolError && e.kind === "exists")) return e;
  const inPod = await ipJson<LinkInfo[]>(["link", "show", "dev", ctx.ifname], ctx.netns)
    .then((l) => l.length > 0)
    .catch(() => false);
  if (inPod)
    return new CniError(
      ErrorCode.AlreadyInUse,
      `container veth name provided (${ctx.ifname}) already exists`,
      `in ${ctx.netns}`,
    );
  if (await getLink(hostVeth)) {
    return new CniError(
      ErrorCode.AlreadyInUse,
      `host interface ${hostVeth} of ${ctx.containerID}/${ctx.ifname} already exists`,
      "a previous ADD of this attachment was not followed by DEL: run DEL first",
    );
  }
  return e;
}

/** Runs the node batch; returns the state it was built on (a concurrent ADD's bridge or VLAN gateway adopted). */
async function applyHost(conf: BridgeConfig, read: BridgeState, plan: HostPlan, ctx: CmdContext): Promise<BridgeState> {
  // No gateway address (L2 mode), no VLAN gateway pair: the reference makes it only to hold an address.
  const view = (s: BridgeState): BridgeState => (plan.gateways.length > 0 ? s : { ...s, vlanGw: undefined });
  const state = view(read);
  try {
    await hostBatch(conf, state, plan).run(undefined, "configuring the node");
    return state;
  } catch (e) {
    // Another ADD may have created the bridge or the VLAN gateway pair between our read and our batch. Both come
    // before the pod's veth in the batch, so nothing of this pod exists yet: adopt what is there and go again, once.
    const shared = e instanceof ToolError && e.kind === "exists" ? sharedLinkCreated(e.failedLine, conf) : undefined;
    const lostRace =
      (shared === "bridge" && !state.exists) || (shared === "vlan-gateway" && state.vlanGw?.exists === false);
    if (lostRace) {
      const now = view(await readBridge(conf));
      if (now.exists !== state.exists || now.vlanGw?.exists !== state.vlanGw?.exists) {
        await hostBatch(conf, now, Object.assign(plan, { bridgeMac: now.mac ?? plan.bridgeMac })).run(
          undefined,
          "configuring the node",
        );
        return now;
      }
    }
    throw await explainVethFailure(e, ctx, plan.hostVeth);
  }
}

function nodeSysctls(conf: BridgeConfig, hostVeth: string, gateways: readonly GatewayAddr[]): void {
  writeSysctl(["net", "ipv6", "conf", conf.bridge, "accept_ra"], "0", { optional: true });
  writeSysctl(["net", "ipv6", "conf", hostVeth, "accept_ra"], "0", { optional: true });
  if (!conf.isGateway) return;
  if (gateways.some((g) => g.family === 4)) ensureSysctl(["net", "ipv4", "ip_forward"], "1");
  if (gateways.some((g) => g.family === 6)) ensureSysctl(["net", "ipv6", "conf", "all", "forwarding"], "1");
}

/** VLAN membership of the pod's port and, with a VLAN gateway, of the gateway's port: one `bridge -batch`. */
async function applyVlans(conf: BridgeConfig, hostVeth: string, built: BridgeState): Promise<void> {
  const lines = portVlanLines(conf, hostVeth);
  if (built.vlanGw) lines.push(...gatewayPortVlanLines(conf, !built.vlanGw.exists));
  await applyVlanLines(lines, hostVeth);
}

/**
 * The host veth's operstate from sysfs, without a process: sysfs shows the links of the namespace it was mounted in,
 * which on a node (and under `ip netns exec`) is the one the plugin runs in. Elsewhere (a bare `nsenter --net`) it may
 * show another namespace, so the answer counts only if the link there carries the MAC this ADD chose.
 */
function operstateFromSysfs(dev: string, mac: string): string | undefined {
  try {
    if (readFileSync(`/sys/class/net/${dev}/address`, "utf8").trim() !== mac) return undefined;
    return readFileSync(`/sys/class/net/${dev}/operstate`, "utf8").trim().toUpperCase();
  } catch {
    return undefined;
  }
}

/** ADD returns only once the host port forwards, so the pod's first packets are not dropped (plugins#463). */
async function waitForPort(hostVeth: string, hostMac: string): Promise<void> {
  let state = "unknown";
  for (const ms of PORT_WAIT_MS) {
    if (ms) await new Promise((r) => setTimeout(r, ms));
    const operstate =
      operstateFromSysfs(hostVeth, hostMac) ??
      (await ipJson<LinkInfo[]>(["link", "show", "dev", hostVeth]).catch(() => [] as LinkInfo[]))[0]?.operstate;
    state = operstate ?? "missing";
    if (state === "UP") return;
  }
  throw new CniError(
    ErrorCode.KernelOperationFailed,
    `bridge port in error state: ${state}`,
    `${hostVeth} did not come up within 2.9 s`,
  );
}

export async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadBridgeConfig(ctx.config, ctx.args);
  if (!conf.ipamType && !versionAtLeast(ctx.version, "0.3.0")) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "cannot convert: no valid IP addresses",
      `L2 mode (no ipam) needs cniVersion 0.3.0 or later, config is ${ctx.version}`,
    );
  }
  if (conf.ipMasq && conf.ipamType) resolveMasqBackend(conf.ipMasqBackend);
  const hostVeth = hostVethName(ctx.containerID, ctx.ifname);

  const ipamOwner = ipamOwnerEnv();
  const [stateR, ipamR] = await Promise.allSettled([
    readBridge(conf),
    conf.ipamType ? delegate(conf.ipamType, "ADD", ctx, { env: ipamOwner }) : Promise.resolve(undefined),
  ]);
  const ipamDone = ipamR.status === "fulfilled" && ipamR.value !== undefined;
  if (stateR.status === "rejected" || ipamR.status === "rejected") {
    await rollback(conf, ctx, undefined, ipamDone, ipamOwner);
    throw stateR.status === "rejected" ? stateR.reason : (ipamR as PromiseRejectedResult).reason;
  }
  const state = stateR.value;
  const ipam = ipamR.value;
  let created = false;
  try {
    if (ipam && (ipam.ips ?? []).length === 0)
      throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
    const { ips, gateways } = gatewaysOf(ipam?.ips ?? [], conf);
    const routes = routesOf(ipam?.routes ?? [], gateways, conf);
    const hostAlias = hostVethAlias(conf.name, ctx.containerID, ctx.ifname);
    // Built before anything is made, so that a refusal here leaves nothing to undo on the node or in the pod.
    const masqBackend = conf.ipMasq && ips.length > 0 ? resolveMasqBackend(conf.ipMasqBackend) : undefined;
    const masqList = masqBackend ? masqEntries(conf, ctx, ips) : [];
    const plan: HostPlan = {
      hostVeth,
      hostAlias,
      hostMac: randomMac(),
      podIfname: ctx.ifname,
      podMac: conf.mac ?? randomMac(),
      netns: ctx.netns,
      bridgeMac: state.mac ?? randomMac(),
      gateways,
      vlanGwMac: randomMac(),
      vlanGwPortMac: randomMac(),
    };
    // The veth (with its alias) exists before any masquerade or spoof-check state does: a GC that finds this
    // attachment's state then also finds its veth, and keeps the state (docs/bridge.md, GC).
    let built: BridgeState;
    try {
      built = await applyHost(conf, state, plan, ctx);
    } catch (e) {
      // ip -batch stops at its first failing line: a veth made before it is ours to remove, and the MAC chosen by
      // this very ADD tells it apart from a live attachment's veth of the same name.
      created = (await getLink(hostVeth).catch(() => undefined))?.address === plan.hostMac;
      throw e;
    }
    created = true;
    // The pod's side, then the waits that depend on it, run while the node's sysctls and firewall are done. It
    // starts first, right after the node batch: it is the longer chain (nsenter, sh, ip), and everything else
    // here takes the main thread a moment before its own process starts.
    const pod = (async () => {
      await Promise.all([
        podScript(conf, ctx.ifname, ips, routes, gateways).run(ctx.netns),
        applyVlans(conf, hostVeth, built),
      ]);
      if (conf.enabledad && ips.some((ip) => ip.address.includes(":"))) await waitForDad(ctx.netns, ctx.ifname);
      if (!conf.disableContainerInterface) await waitForPort(hostVeth, plan.hostMac);
    })();
    const node = (async () => {
      nodeSysctls(conf, hostVeth, gateways);
      // The marker before the masquerade, naming the backend: a DEL then knows this attachment may hold
      // masquerade, and where (lib/marker.ts), so it needs neither prevResult nor a look into the other backend.
      if (masqBackend) markAttachment("masq", conf.name, ctx.containerID, ctx.ifname, masqBackend);
      await Promise.all([
        masqBackend ? addMasq(masqBackend, masqList) : undefined,
        conf.macspoofchk ? addSpoofCheck(conf.name, hostVeth, plan.podMac) : undefined,
      ]);
    })();
    // Both settle before a failure is rolled back: nothing of this ADD still runs while its veth is removed.
    for (const r of await Promise.allSettled([pod, node])) if (r.status === "rejected") throw r.reason;

    const interfaces: Interface[] = [
      { name: conf.bridge, mac: plan.bridgeMac },
      { name: hostVeth, mac: plan.hostMac },
      { name: ctx.ifname, mac: plan.podMac, sandbox: ctx.netns },
    ];
    if (built.vlanGw)
      interfaces.push({ name: vlanGatewayName(conf.bridge, conf.vlan), mac: built.vlanGw.mac ?? plan.vlanGwMac });
    const result: Result = { interfaces, ips: ips.map((ip) => ({ ...ip, interface: 2 })) };
    if (routes.length > 0) result.routes = routes;
    const dns = conf.dns ?? ipam?.dns;
    if (dns) result.dns = dns;
    return result;
  } catch (e) {
    await rollback(conf, ctx, created ? hostVeth : undefined, ipamDone, ipamOwner);
    throw e;
  }
}
