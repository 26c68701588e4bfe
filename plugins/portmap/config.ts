/**
 * The portmap plugin's configuration: the reference's keys (cni-facts 2.4) with their defaults, the
 * `portMappings` capability validated up front (ports, protocol, hostIP), and the choice of backend.
 *
 * @example
 *   const conf = loadPortmapConfig(ctx.config); // conf.mappings[0] = { hostPort: 8080, containerPort: 80, protocol: "tcp" }
 */
import { formatIP, parseIP, type Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend, goStruct } from "../../lib/gojson.js";
import { defaultBackend } from "../../lib/netfilter/backend.js";
import { CAPABILITY_SHAPES, PLUGIN_CONF_SHAPE, type NetConf } from "../../lib/types.js";

/** The two firewall implementations, named as the reference's `backend` key names them. */
export type Backend = "iptables" | "nftables";

/** Protocols a mapping may name; all three have ports at the same offset (nft `th dport`). */
export type Proto = "tcp" | "udp" | "sctp";
const PROTOS: readonly Proto[] = ["tcp", "udp", "sctp"];

/** One validated entry of `runtimeConfig.portMappings`. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Proto;
  /** Canonical text of a specific host address; undefined when any node address is meant ("" or 0.0.0.0 or ::). */
  hostIP: string | undefined;
  /** The family the mapping is restricted to: hostIP's (0.0.0.0 and :: included), or undefined for both. */
  family: Family | undefined;
}

/** The whole validated configuration, defaults applied and backend resolved. */
export interface PortmapConfig {
  name: string;
  cniVersion: string;
  mappings: PortMapping[];
  /** Masquerade hairpin and localhost connections (default true), so that replies come back through the node. */
  snat: boolean;
  /** Masquerade every mapped connection, whatever its source. */
  masqAll: boolean;
  /** iptables: the mark bit CNI-HOSTPORT-SETMARK sets and CNI-HOSTPORT-MASQ looks for (default 13). */
  markMasqBit: number;
  /** iptables: a chain of the operator's that marks packets for masquerade instead of ours. */
  externalSetMarkChain: string | undefined;
  /** Extra match conditions (iptables arguments or nft expressions, per the backend) per family. */
  conditionsV4: string[];
  conditionsV6: string[];
  backend: Backend;
}

/**
 * The reference's `PortMapConf`: its keys, and the `portMappings` capability, match case-insensitively as Go reads
 * them (containerd sends `{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`).
 */
export const PORTMAP_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  backend: GO_ANY,
  snat: GO_ANY,
  conditionsV4: GO_ANY,
  conditionsV6: GO_ANY,
  masqAll: GO_ANY,
  markMasqBit: GO_ANY,
  externalSetMarkChain: GO_ANY,
  runtimeConfig: goStruct({ portMappings: CAPABILITY_SHAPES.portMappings }),
});

/** The reference's default mark bit (Kubernetes uses 14 and 15, Calico 20-31). */
export const DEFAULT_MARK_BIT = 13;

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function bool(c: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = c[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw invalid(`${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function port(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw invalid(`${where} must be a port number between 1 and 65535, got ${JSON.stringify(v) ?? "nothing"}`);
  }
  return v;
}

function mapping(raw: unknown, i: number): PortMapping {
  const where = `runtimeConfig.portMappings[${i}]`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw invalid(`${where} must be an object {hostPort, containerPort, protocol, hostIP?}`);
  const o = raw as Record<string, unknown>;
  const protocol = typeof o.protocol === "string" ? o.protocol.toLowerCase() : o.protocol;
  // Kubernetes lower-cases the protocol and the reference hands it to iptables as given; nft needs lower case.
  if (!PROTOS.includes(protocol as Proto))
    throw invalid(
      `${where}.protocol must be one of ${PROTOS.join(", ")}, got ${JSON.stringify(o.protocol) ?? "nothing"}`,
    );
  const out: PortMapping = {
    hostPort: port(o.hostPort, `${where}.hostPort`),
    containerPort: port(o.containerPort, `${where}.containerPort`),
    protocol: protocol as Proto,
    hostIP: undefined,
    family: undefined,
  };
  if (o.hostIP !== undefined && o.hostIP !== null && o.hostIP !== "") {
    const ip = typeof o.hostIP === "string" ? parseIP(o.hostIP) : undefined;
    if (!ip) throw invalid(`${where}.hostIP must be an IP address, got ${JSON.stringify(o.hostIP)}`);
    out.family = ip.family;
    // 0.0.0.0 and :: mean "any address of this family", as in the reference.
    if (ip.value !== 0n) out.hostIP = formatIP(ip);
  }
  return out;
}

/** Two entries that claim the same (address, protocol, port) must agree, or the kernel could hold only one of them. */
function dedupe(mappings: readonly PortMapping[]): PortMapping[] {
  const seen = new Map<string, PortMapping>();
  const out: PortMapping[] = [];
  for (const m of mappings) {
    const key = `${m.family ?? "*"} ${m.hostIP ?? "*"} ${m.protocol} ${m.hostPort}`;
    const prev = seen.get(key);
    if (prev && prev.containerPort !== m.containerPort) {
      throw invalid(
        `hostPort ${m.hostPort}/${m.protocol}${m.hostIP ? ` on ${m.hostIP}` : ""} is mapped twice`,
        `to container ports ${prev.containerPort} and ${m.containerPort}`,
      );
    }
    if (prev) continue;
    seen.set(key, m);
    out.push(m);
  }
  return out;
}

/** Validated `runtimeConfig.portMappings` (empty when the capability is absent). */
export function parseMappings(conf: NetConf): PortMapping[] {
  const rc = conf.runtimeConfig;
  if (rc === undefined || rc === null) return [];
  if (typeof rc !== "object" || Array.isArray(rc)) throw invalid("runtimeConfig must be an object");
  const list = rc.portMappings;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw invalid("runtimeConfig.portMappings must be an array");
  return dedupe(list.map(mapping));
}

// Conditions become part of firewall rules. A line break or a NUL would let them write rules of their own; for nft
// also `;` (a statement separator) and `#` (which would comment out the rest of our rule).
const UNSAFE_CONDITION: Record<Backend, RegExp> = { iptables: /[\x00-\x1f\x7f]/, nftables: /[\x00-\x1f\x7f;#]/ };

function conditions(c: Record<string, unknown>, key: string): string[] {
  const v = c[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw invalid(`${key} must be an array of strings`);
  return v as string[];
}

/** The reference's rule: iptables conditions start with `-` or `!`, nft expressions never do. Empty: neither. */
export function backendOfConditions(list: readonly string[]): Backend | undefined {
  const first = list[0];
  if (first === undefined || first === "") return undefined;
  return first.startsWith("-") || first.startsWith("!") ? "iptables" : "nftables";
}

/** The backend a config asks for; without `backend`, backend-specific keys decide, then what the node has. */
function chooseBackend(c: Record<string, unknown>, v4: string[], v6: string[], external: string | undefined): Backend {
  const wants = new Map<Backend, string[]>();
  const note = (b: Backend | undefined, key: string) => b && wants.set(b, [...(wants.get(b) ?? []), key]);
  if (external !== undefined) note("iptables", "externalSetMarkChain");
  note(backendOfConditions(v4), "conditionsV4");
  note(backendOfConditions(v6), "conditionsV6");
  let backend: Backend;
  if (c.backend === "iptables" || c.backend === "nftables") backend = c.backend;
  else if (c.backend !== undefined && c.backend !== null && c.backend !== "")
    throw invalid(`unrecognized backend ${JSON.stringify(c.backend)}`, 'backend must be "iptables" or "nftables"');
  else if (wants.size === 1) backend = [...wants.keys()][0]!;
  else backend = defaultBackend() ?? "iptables";
  const wrong = wants.get(backend === "iptables" ? "nftables" : "iptables");
  if (wrong)
    throw invalid(
      `${backend} backend was requested but configuration contains ${backend === "iptables" ? "nftables" : "iptables"}-specific options [${wrong.join(" ")}]`,
    );
  for (const list of [v4, v6]) {
    const bad = list.find((s) => UNSAFE_CONDITION[backend].test(s));
    if (bad !== undefined)
      throw invalid(
        `condition ${JSON.stringify(bad.slice(0, 64))} contains a character not allowed in a ${backend} rule`,
      );
  }
  return backend;
}

/** iptables chain names: what iptables accepts (at most 28 characters), and nothing that reads as an option. */
const CHAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}$/;

/**
 * Parse and validate the whole configuration. Every error is code 7 naming the key; the backend is resolved here
 * (the node's tools decide when the config does not), so a config that cannot work fails before anything changes.
 */
export function loadPortmapConfig(conf: NetConf): PortmapConfig {
  const c = conf as Record<string, unknown>;
  const external =
    c.externalSetMarkChain === undefined || c.externalSetMarkChain === null ? undefined : c.externalSetMarkChain;
  if (external !== undefined && (typeof external !== "string" || !CHAIN_NAME.test(external))) {
    throw invalid(
      `externalSetMarkChain must be an iptables chain name (letters, digits, _ . -, at most 28), got ${JSON.stringify(external)}`,
    );
  }
  const markRaw = c.markMasqBit;
  if (markRaw !== undefined && markRaw !== null && external !== undefined)
    throw invalid("Cannot specify externalSetMarkChain and markMasqBit");
  const markMasqBit = markRaw === undefined || markRaw === null ? DEFAULT_MARK_BIT : markRaw;
  if (typeof markMasqBit !== "number" || !Number.isInteger(markMasqBit) || markMasqBit < 0 || markMasqBit > 31) {
    throw invalid(`MasqMarkBit must be between 0 and 31, got ${JSON.stringify(markRaw)}`);
  }
  const conditionsV4 = conditions(c, "conditionsV4");
  const conditionsV6 = conditions(c, "conditionsV6");
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    mappings: parseMappings(conf),
    snat: bool(c, "snat", true),
    masqAll: bool(c, "masqAll", false),
    markMasqBit,
    externalSetMarkChain: external as string | undefined,
    conditionsV4,
    conditionsV6,
    backend: chooseBackend(c, conditionsV4, conditionsV6, external as string | undefined),
  };
}
