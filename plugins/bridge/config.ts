/**
 * The bridge plugin's configuration: every key of the reference with its default and its validation
 * (cni-facts 2.1), parsed once into a typed object that flows down to the kernel.
 *
 * @example
 *   const conf = loadBridgeConfig(ctx.config, ctx.args); // conf.bridge === "cni0", conf.l2 === false, ...
 */
import type { CniArgs } from "../../lib/cniargs.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend, goList, goStruct } from "../../lib/gojson.js";
import { PLUGIN_CONF_SHAPE, type DNS, type NetConf } from "../../lib/types.js";
import { validateIfname, validatePluginType } from "../../lib/validate.js";
import { usesVlanGateway, vlanGatewayName, type VlanConf, type VlanRange } from "./vlan.js";

export interface BridgeConfig extends VlanConf {
  name: string;
  cniVersion: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend: string | undefined;
  /** 0 = leave the kernel default. */
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  vlanTrunk: VlanRange[];
  preserveDefaultVlan: boolean;
  enabledad: boolean;
  macspoofchk: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** The IPAM plugin's type; undefined = L2 mode (no addresses). */
  ipamType: string | undefined;
  /** The config's own dns: replaces IPAM's when any field is set. */
  dns: DNS | undefined;
  /** The container interface's MAC (CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac), lower case. */
  mac: string | undefined;
}

/** The reference's `NetConf` (plugins/main/bridge): its keys match case-insensitively, as Go reads them. */
export const BRIDGE_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  bridge: GO_ANY,
  isGateway: GO_ANY,
  isDefaultGateway: GO_ANY,
  forceAddress: GO_ANY,
  ipMasq: GO_ANY,
  ipMasqBackend: GO_ANY,
  mtu: GO_ANY,
  hairpinMode: GO_ANY,
  promiscMode: GO_ANY,
  vlan: GO_ANY,
  vlanTrunk: goList(goStruct({ minID: GO_ANY, maxID: GO_ANY, id: GO_ANY })),
  preserveDefaultVlan: GO_ANY,
  macspoofchk: GO_ANY,
  enabledad: GO_ANY,
  disableContainerInterface: GO_ANY,
  portIsolation: GO_ANY,
  args: goStruct({ cni: goStruct({ mac: GO_ANY }) }),
  runtimeConfig: goStruct({ mac: GO_ANY }),
});

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function bool(conf: Record<string, unknown>, key: string): boolean {
  const v = conf[key];
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  // The reference's own docs write "portIsolation": "true"; accept the two spellings rather than fail a node.
  if (v === "true" || v === "false") return v === "true";
  throw invalid(`${key} must be a boolean, got ${JSON.stringify(v)}`);
}

function int(conf: Record<string, unknown>, key: string, min: number, max: number, message?: string): number {
  const v = conf[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v))
    throw invalid(`${key} must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw invalid(message ?? `${key} must be between ${min} and ${max}, got ${v}`);
  return v;
}

const MAC = /^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$/;

/** A unicast MAC for a container interface; multicast or malformed is code 7 (config) or 4 (CNI_ARGS). */
export function validateMac(mac: unknown, where: string, code: number = ErrorCode.InvalidNetworkConfig): string {
  if (typeof mac !== "string" || !MAC.test(mac))
    throw new CniError(code, `${where} is not a MAC address: ${JSON.stringify(mac)}`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new CniError(code, `${where} ${mac} is a multicast address`);
  if (/^(00:){5}00$/.test(mac)) throw new CniError(code, `${where} ${mac} is the zero address`);
  return mac.toLowerCase();
}

function vlanTrunk(v: unknown): VlanRange[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid("vlanTrunk must be an array of {id} or {minID, maxID}");
  return v.map((t: unknown, i) => {
    const o = (t ?? {}) as Record<string, unknown>;
    const bad = (why: string) => invalid(`vlanTrunk[${i}]: ${why}`);
    const id = o.id;
    if (id !== undefined && id !== null) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > 4094)
        throw bad("incorrect trunk id parameter");
      return { min: id, max: id };
    }
    const { minID, maxID } = o;
    if (minID === undefined || maxID === undefined) throw bad("minID and maxID are both required");
    if (typeof minID !== "number" || !Number.isInteger(minID) || minID < 1 || minID > 4094)
      throw bad("incorrect trunk minID parameter");
    if (typeof maxID !== "number" || !Number.isInteger(maxID) || maxID < 1 || maxID > 4094)
      throw bad("incorrect trunk maxID parameter");
    if (maxID < minID) throw bad("minID is greater than maxID in trunk parameter");
    return { min: minID, max: maxID };
  });
}

function dns(v: unknown): DNS | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw invalid("dns must be an object");
  const o = v as Record<string, unknown>;
  const out: DNS = {};
  for (const key of ["nameservers", "search", "options"] as const) {
    const list = o[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || list.some((x) => typeof x !== "string"))
      throw invalid(`dns.${key} must be an array of strings`);
    if (list.length > 0) out[key] = list as string[];
  }
  if (o.domain !== undefined && o.domain !== null && o.domain !== "") {
    if (typeof o.domain !== "string") throw invalid("dns.domain must be a string");
    out.domain = o.domain;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The container MAC from the three places a runtime can put it; the later wins (reference precedence). */
function containerMac(conf: NetConf, args: CniArgs): string | undefined {
  let mac: string | undefined;
  const fromArgs = args.get("MAC");
  if (fromArgs) mac = validateMac(fromArgs, "CNI_ARGS MAC", ErrorCode.InvalidEnvironmentVariables);
  const cniArgs = conf.args?.cni?.mac;
  if (cniArgs !== undefined && cniArgs !== "") mac = validateMac(cniArgs, "args.cni.mac");
  const rc = conf.runtimeConfig?.mac;
  if (rc !== undefined && rc !== "") mac = validateMac(rc, "runtimeConfig.mac");
  return mac;
}

export function loadBridgeConfig(conf: NetConf, args: CniArgs): BridgeConfig {
  const c = conf as Record<string, unknown>;
  const bridge = c.bridge === undefined || c.bridge === "" ? "cni0" : c.bridge;
  if (typeof bridge !== "string") throw invalid("bridge must be a string");
  validateIfname(bridge, "bridge", ErrorCode.InvalidNetworkConfig);

  const ipam = conf.ipam;
  if (ipam !== undefined && (typeof ipam !== "object" || ipam === null || Array.isArray(ipam)))
    throw invalid("ipam must be an object");
  const ipamType =
    ipam?.type === undefined || ipam.type === "" ? undefined : validatePluginType(ipam.type, "ipam.type");

  const backend = c.ipMasqBackend;
  if (backend !== undefined && backend !== null && backend !== "" && backend !== "iptables" && backend !== "nftables") {
    throw invalid(
      `unknown ipmasq backend ${JSON.stringify(backend)}`,
      'ipMasqBackend must be "iptables" or "nftables"',
    );
  }

  const out: BridgeConfig = {
    name: conf.name,
    cniVersion: conf.cniVersion,
    bridge,
    isGateway: bool(c, "isGateway") || bool(c, "isDefaultGateway"),
    isDefaultGateway: bool(c, "isDefaultGateway"),
    forceAddress: bool(c, "forceAddress"),
    ipMasq: bool(c, "ipMasq"),
    ipMasqBackend: typeof backend === "string" && backend !== "" ? backend : undefined,
    mtu: int(c, "mtu", 0, 65535),
    hairpinMode: bool(c, "hairpinMode"),
    promiscMode: bool(c, "promiscMode"),
    vlan: int(c, "vlan", 0, 4094, `invalid VLAN ID ${JSON.stringify(c.vlan)} (must be between 0 and 4094)`),
    vlanTrunk: vlanTrunk(c.vlanTrunk),
    preserveDefaultVlan: bool(c, "preserveDefaultVlan"),
    enabledad: bool(c, "enabledad"),
    macspoofchk: bool(c, "macspoofchk"),
    disableContainerInterface: bool(c, "disableContainerInterface"),
    portIsolation: bool(c, "portIsolation"),
    ipamType,
    dns: dns(c.dns),
    mac: containerMac(conf, args),
  };
  if (out.mtu !== 0 && out.mtu < 68) throw invalid(`mtu ${out.mtu} is below the minimum of 68`);
  if (out.hairpinMode && out.promiscMode)
    throw invalid("cannot set hairpin mode and promiscuous mode at the same time");
  if (out.disableContainerInterface && out.ipamType)
    throw invalid("cannot use IPAM when DisableContainerInterface flag is set");
  if (usesVlanGateway(out) && vlanGatewayName(bridge, out.vlan).length > 15) {
    throw invalid(
      `VLAN gateway interface name "${vlanGatewayName(bridge, out.vlan)}" is longer than 15 characters`,
      "with vlan and isGateway the gateway is the interface <bridge>.<vlan>: use a shorter bridge name",
    );
  }
  return out;
}
