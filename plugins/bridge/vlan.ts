/**
 * VLANs on the bridge: the ports' membership (`bridge -batch`), the VLAN gateway interface, and what CHECK compares.
 *
 * With `vlan` and `isGateway`, the gateway cannot sit on the bridge itself (the bridge device is not a member of the
 * pods' VLAN), so, as the reference does, the gateway addresses go on one end of a veth pair named `<bridge>.<vlan>`
 * in the node's namespace, whose other end is a port of the bridge with the VLAN as its PVID, untagged. That port is
 * named from the bridge and the VLAN (the reference picks a random name), so every ADD agrees on it, and it is shared
 * by all pods of the VLAN: DEL and GC leave it, as they leave the bridge.
 */
import { runOk } from "../../lib/exec.js";
import { hashHex } from "../../lib/hash.js";
import type { LinkInfo } from "../../lib/ip/read.js";

/** A trunk's VLAN IDs, `min` to `max` inclusive. */
export interface VlanRange {
  min: number;
  max: number;
}

/**
 * The VLAN part of a bridge config (config.ts BridgeConfig has these fields): what this module reads, declared here
 * so that config.ts depends on this module and not the other way round.
 */
export interface VlanConf {
  bridge: string;
  isGateway: boolean;
  /** 0: no VLAN. */
  vlan: number;
  vlanTrunk: readonly VlanRange[];
  preserveDefaultVlan: boolean;
}

/** The gateway end: `<bridge>.<vlan>`, the reference's name. config.ts refuses a bridge name that makes it too long. */
export function vlanGatewayName(bridge: string, vlan: number): string {
  return `${bridge}.${vlan}`;
}

/** The gateway pair's bridge port: `vgw` + 8 hex, from the bridge and the VLAN only. */
export function vlanGatewayPort(bridge: string, vlan: number): string {
  return `vgw${hashHex("sha256", `vlan-gateway\r\n${bridge}\r\n${vlan}`).slice(0, 8)}`;
}

export function usesVlanGateway(conf: Pick<VlanConf, "vlan" | "isGateway">): boolean {
  return conf.vlan !== 0 && conf.isGateway;
}

/** A VLAN config: the bridge is created with vlan_filtering, the port gets VLANs, CHECK reads them. */
export function hasVlans(conf: Pick<VlanConf, "vlan" | "vlanTrunk">): boolean {
  return conf.vlan !== 0 || conf.vlanTrunk.length > 0;
}

/** Whether a bridge, as `ip -details -json` shows it, enforces its ports' VLANs (off where the kernel lacks it). */
export function vlanFilteringOn(bridge: Pick<LinkInfo, "linkinfo">): boolean {
  return bridge.linkinfo?.info_data?.vlan_filtering === 1;
}

/** A pod's host veth: the default VID 1 removed (unless preserveDefaultVlan), the PVID untagged, trunk VIDs tagged. */
export function portVlanLines(
  conf: Pick<VlanConf, "vlan" | "vlanTrunk" | "preserveDefaultVlan">,
  dev: string,
): string[] {
  if (!hasVlans(conf)) return [];
  const lines: string[] = [];
  if (!conf.preserveDefaultVlan) lines.push(`vlan del dev ${dev} vid 1`);
  lines.push(`vlan add dev ${dev} vid ${conf.vlan || 1} pvid untagged`);
  for (const t of conf.vlanTrunk)
    lines.push(`vlan add dev ${dev} vid ${t.min === t.max ? t.min : `${t.min}-${t.max}`}`);
  return lines;
}

/**
 * The gateway port's membership. Every ADD of the VLAN re-adds the PVID (idempotent), so a pod ADDed while another
 * ADD is between creating the pair and this line still finds its gateway when it returns. Only the ADD that created
 * the pair removes VID 1: the line fails on a port without it.
 */
export function gatewayPortVlanLines(
  conf: Pick<VlanConf, "bridge" | "vlan" | "preserveDefaultVlan">,
  created: boolean,
): string[] {
  const dev = vlanGatewayPort(conf.bridge, conf.vlan);
  const lines: string[] = [];
  if (created && !conf.preserveDefaultVlan) lines.push(`vlan del dev ${dev} vid 1`);
  lines.push(`vlan add dev ${dev} vid ${conf.vlan} pvid untagged`);
  return lines;
}

export async function applyVlanLines(lines: readonly string[], what: string): Promise<void> {
  if (lines.length === 0) return;
  await runOk("bridge", ["-batch", "-"], {
    input: `${lines.join("\n")}\n`,
    what: `bridge vlan setup of ${what} failed`,
  });
}

/** One port's VLANs as the kernel holds them: VID -> flags, ranges expanded. */
export type PortVlans = Map<number, string[]>;

export async function readPortVlans(dev: string): Promise<PortVlans> {
  return parsePortVlans(
    await runOk("bridge", ["-json", "vlan", "show", "dev", dev], { what: `bridge vlan show dev ${dev} failed` }),
    dev,
  );
}

export function parsePortVlans(json: string, dev: string): PortVlans {
  const rows = JSON.parse(json.trim() || "[]") as Array<{
    ifname: string;
    vlans?: Array<{ vlan: number; vlanEnd?: number; flags?: string[] }>;
  }>;
  const out: PortVlans = new Map();
  for (const v of rows.find((r) => r.ifname === dev)?.vlans ?? [])
    for (let id = v.vlan; id <= (v.vlanEnd ?? v.vlan); id++) out.set(id, v.flags ?? []);
  return out;
}

/** What differs between a pod port's VLANs and the config, or undefined. Extra VIDs added by others are not ours. */
export function portVlanProblem(
  conf: Pick<VlanConf, "vlan" | "vlanTrunk" | "preserveDefaultVlan">,
  dev: string,
  have: PortVlans,
): string | undefined {
  if (!hasVlans(conf)) return undefined;
  const pvid = conf.vlan || 1;
  const flags = have.get(pvid);
  if (!flags?.includes("PVID") || !flags.includes("Egress Untagged"))
    return `VLAN ${pvid} is not the untagged PVID of ${dev}`;
  for (const t of conf.vlanTrunk) {
    for (let id = t.min; id <= t.max; id++) if (!have.has(id)) return `trunk VLAN ${id} is not on ${dev}`;
  }
  const trunk1 = conf.vlanTrunk.some((t) => t.min <= 1 && 1 <= t.max);
  if (!conf.preserveDefaultVlan && pvid !== 1 && !trunk1 && have.has(1)) return `default VLAN 1 is still on ${dev}`;
  return undefined;
}
