/**
 * The node's side of an attachment: the bridge (created on first use, MAC pinned), the VLAN gateway pair (vlan.ts),
 * the host end of the veth pair and its bridge-port flags, the gateway addresses, the node sysctls. One `ip -batch`
 * for all of it.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { ipJson, type AddrInfo, type LinkInfo } from "../../lib/ip/read.js";
import { cidrsOverlap, parseCidr } from "../../lib/cidr.js";
import { ToolError } from "../../lib/tool-error.js";
import type { BridgeConfig } from "./config.js";
import type { GatewayAddr } from "./gateway.js";
import { hasVlans, usesVlanGateway, vlanFilteringOn, vlanGatewayName, vlanGatewayPort } from "./vlan.js";

export interface LinkState {
  exists: boolean;
  mac?: string;
  kind?: string;
  mtu?: number;
  /** A bridge's `vlan_filtering` (off on kernels without it, and on bridges made without it). */
  vlanFiltering?: boolean;
  addrs: AddrInfo[];
}

export interface BridgeState extends LinkState {
  /** With vlan and isGateway: the `<bridge>.<vlan>` gateway interface (vlan.ts). */
  vlanGw?: LinkState;
}

/** What the kernel holds under one link name right now (one spawn: link details and addresses). */
async function readLink(name: string): Promise<LinkState> {
  let links: Array<LinkInfo & { addr_info?: AddrInfo[] }>;
  try {
    links = await ipJson<Array<LinkInfo & { addr_info?: AddrInfo[] }>>(["-details", "addr", "show", "dev", name]);
  } catch (e) {
    if (e instanceof ToolError && e.kind === "not-found") return { exists: false, addrs: [] };
    throw e;
  }
  const link = links[0];
  if (!link) return { exists: false, addrs: [] };
  const state: LinkState = { exists: true, addrs: link.addr_info ?? [] };
  if (link.address !== undefined) state.mac = link.address;
  if (link.linkinfo?.info_kind !== undefined) state.kind = link.linkinfo.info_kind;
  if (link.mtu !== undefined) state.mtu = link.mtu;
  if (state.kind === "bridge") state.vlanFiltering = vlanFilteringOn(link);
  return state;
}

/** The bridge, and with vlan and isGateway its VLAN gateway interface, read in parallel. */
export async function readBridge(conf: Pick<BridgeConfig, "bridge" | "vlan" | "isGateway">): Promise<BridgeState> {
  const [state, vlanGw] = await Promise.all([
    readLink(conf.bridge),
    usesVlanGateway(conf) ? readLink(vlanGatewayName(conf.bridge, conf.vlan)) : Promise.resolve(undefined),
  ]);
  if (state.exists && state.kind !== "bridge") {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `"${conf.bridge}" already exists but is not a bridge`,
      `it is a ${state.kind ?? "link of unknown kind"}`,
    );
  }
  return vlanGw ? { ...state, vlanGw } : state;
}

/**
 * Gateway address changes on `dev` (the bridge, or the VLAN gateway interface), with the reference's rule for an
 * address that is in the way (forceAddress).
 */
function gatewayLines(
  b: IpBatch,
  conf: BridgeConfig,
  dev: string,
  addrs: readonly AddrInfo[],
  gateways: readonly GatewayAddr[],
): void {
  for (const gw of gateways) {
    const want = parseCidr(gw.cidr)!;
    for (const a of addrs) {
      if (a.scope === "link") continue;
      const have = parseCidr(`${a.local}/${a.prefixlen}`);
      if (!have || have.family !== want.family || `${a.local}/${a.prefixlen}` === gw.cidr) continue;
      // IPv4: one gateway address per bridge. IPv6: several, unless their subnets overlap.
      const overlaps = have.family === 4 || cidrsOverlap(have, want);
      if (!overlaps) continue;
      if (!conf.forceAddress) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `"${dev}" already has an IP address different from ${gw.cidr}`,
          `it has ${a.local}/${a.prefixlen}; set forceAddress to replace it, or remove it`,
        );
      }
      b.cmd("addr", "del", `${a.local}/${a.prefixlen}`, "dev", dev);
    }
    // nodad: the gateway must answer the pod's first packets, not after ~2 s of duplicate address detection.
    b.cmd("addr", "replace", gw.cidr, "dev", dev, ...(gw.family === 6 ? ["nodad"] : []));
  }
}

export interface HostPlan {
  hostVeth: string;
  /** names.ts hostVethAlias: marks the veth as the live attachment's, for GC. */
  hostAlias: string;
  hostMac: string;
  podIfname: string;
  podMac: string;
  netns: string;
  bridgeMac: string;
  gateways: GatewayAddr[];
  /** MACs for a VLAN gateway pair this ADD creates: the `<bridge>.<vlan>` end and its bridge port. */
  vlanGwMac: string;
  vlanGwPortMac: string;
}

/**
 * The node's batch: bridge (create or adopt), the veth pair with its pod end created directly in the pod's
 * namespace (no move between namespaces), port flags, up, gateways.
 */
export function hostBatch(conf: BridgeConfig, state: BridgeState, plan: HostPlan): IpBatch {
  const b = new IpBatch();
  const br = conf.bridge;
  if (!state.exists) {
    const create: Array<string | number> = ["link", "add", "name", br, "address", plan.bridgeMac];
    if (conf.mtu) create.push("mtu", conf.mtu);
    create.push("type", "bridge");
    if (hasVlans(conf)) create.push("vlan_filtering", 1);
    b.cmd(...create);
  } else {
    // Pin the MAC of a bridge we did not create, so it stops following its lowest port (kubernetes#63922).
    b.cmd("link", "set", "dev", br, "address", plan.bridgeMac);
    // A bridge made without vlan_filtering (by an earlier non-VLAN network of the same name, or by hand) accepts
    // the port's `bridge vlan` lines and ignores them: the pod would share every VLAN. Its other ports keep their
    // default PVID 1, so their traffic goes on as before.
    if (hasVlans(conf) && !state.vlanFiltering) b.cmd("link", "set", "dev", br, "type", "bridge", "vlan_filtering", 1);
  }
  if (conf.promiscMode) b.cmd("link", "set", "dev", br, "promisc", "on");
  b.cmd("link", "set", "dev", br, "up");
  if (state.vlanGw && !state.vlanGw.exists) vlanGatewayPairLines(b, conf, state, plan);
  const veth: Array<string | number> = ["link", "add", "name", plan.hostVeth, "address", plan.hostMac];
  if (conf.mtu) veth.push("mtu", conf.mtu);
  veth.push("type", "veth", "peer", "name", plan.podIfname, "address", plan.podMac);
  if (conf.mtu) veth.push("mtu", conf.mtu);
  veth.push("netns", plan.netns);
  b.cmd(...veth);
  // Right after the veth and long before the masquerade exists: GC keeps the state of an attachment whose veth it
  // finds with this alias. (An alias given to `link add` is ignored by the kernel.)
  b.cmd("link", "set", "dev", plan.hostVeth, "alias", plan.hostAlias);
  b.cmd("link", "set", "dev", plan.hostVeth, "master", br);
  if (conf.hairpinMode || conf.portIsolation) {
    b.cmd(
      "link",
      "set",
      "dev",
      plan.hostVeth,
      "type",
      "bridge_slave",
      "hairpin",
      conf.hairpinMode ? "on" : "off",
      "isolated",
      conf.portIsolation ? "on" : "off",
    );
  }
  b.cmd("link", "set", "dev", plan.hostVeth, "up");
  if (conf.isGateway) {
    if (state.vlanGw) gatewayLines(b, conf, vlanGatewayName(br, conf.vlan), state.vlanGw.addrs, plan.gateways);
    else gatewayLines(b, conf, br, state.addrs, plan.gateways);
  }
  return b;
}

/**
 * Which shared link (one every ADD of the network uses, made by whichever comes first) a node batch line creates:
 * the bridge, the VLAN gateway pair, or neither. A `link add` of one of them failing with `exists` means a concurrent
 * ADD made it between our read and our batch.
 */
export function sharedLinkCreated(
  line: string | undefined,
  conf: Pick<BridgeConfig, "bridge" | "vlan">,
): "bridge" | "vlan-gateway" | undefined {
  if (line === undefined || !line.startsWith("link add name ")) return undefined;
  if (line.startsWith(`link add name ${conf.bridge} `) && / type bridge( vlan_filtering 1)?$/.test(line))
    return "bridge";
  if (conf.vlan !== 0 && line.includes(` type veth peer name ${vlanGatewayName(conf.bridge, conf.vlan)} `))
    return "vlan-gateway";
  return undefined;
}

/**
 * The VLAN gateway pair, before the pod's veth: if a concurrent ADD made it first, this line fails with nothing of
 * the pod's made yet, and add.ts reads the node again and adopts it. MTU: the bridge's, as the reference.
 */
function vlanGatewayPairLines(b: IpBatch, conf: BridgeConfig, state: BridgeState, plan: HostPlan): void {
  const gw = vlanGatewayName(conf.bridge, conf.vlan);
  const port = vlanGatewayPort(conf.bridge, conf.vlan);
  const mtu = conf.mtu || state.mtu;
  const mtuArgs = mtu ? ["mtu", mtu] : [];
  b.cmd(
    "link",
    "add",
    "name",
    port,
    "address",
    plan.vlanGwPortMac,
    ...mtuArgs,
    "type",
    "veth",
    "peer",
    "name",
    gw,
    "address",
    plan.vlanGwMac,
    ...mtuArgs,
  );
  b.cmd("link", "set", "dev", port, "master", conf.bridge);
  b.cmd("link", "set", "dev", port, "up");
  b.cmd("link", "set", "dev", gw, "up");
}
