/**
 * The firewall plugin's configuration: the reference's `FirewallNetConf` keys with their meaning (backend,
 * iptablesAdminChainName, firewalldZone, ingressPolicy), validated up front so that a config that cannot work fails
 * with code 7 before any rule changes.
 *
 * @example
 *   const conf = loadFirewallConfig(ctx.config); // { backend: "iptables", adminChain: "CNI-ADMIN", ingressPolicy: "open", ... }
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend } from "../../lib/gojson.js";
import { hasExecutable } from "../../lib/exec.js";
import { PLUGIN_CONF_SHAPE, type NetConf } from "../../lib/types.js";
import { quoteInput } from "../../lib/validate.js";

/** The implementations we run: the reference's iptables layout, or our nftables table. */
export type Backend = "iptables" | "nftables";

/** `open`: nothing beyond the accept rules; `same-bridge`: traffic from another isolated bridge is dropped. */
export type IngressPolicy = "open" | "same-bridge";

/** The whole validated configuration, defaults applied and backend resolved. */
export interface FirewallConfig {
  name: string;
  cniVersion: string;
  backend: Backend;
  /** iptables: the operator's override chain, jumped from the top of CNI-FORWARD (default CNI-ADMIN). */
  adminChain: string;
  ingressPolicy: IngressPolicy;
}

/** The reference's `FirewallNetConf`: its keys match case-insensitively, as Go reads them. */
export const FIREWALL_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  backend: GO_ANY,
  iptablesAdminChainName: GO_ANY,
  firewalldZone: GO_ANY,
  ingressPolicy: GO_ANY,
});

/** The reference's default admin chain. */
export const DEFAULT_ADMIN_CHAIN = "CNI-ADMIN";

/** Chains the layout itself uses: an admin chain of one of these names would jump into itself or into FORWARD. */
export const RESERVED_CHAINS = [
  "CNI-FORWARD",
  "CNI-ISOLATION-STAGE-1",
  "CNI-ISOLATION-STAGE-2",
  "INPUT",
  "FORWARD",
  "OUTPUT",
  "PREROUTING",
  "POSTROUTING",
];

// Names iptables reads as a target rather than a chain after `-j`.
const TARGETS = [
  "ACCEPT",
  "DROP",
  "RETURN",
  "QUEUE",
  "REJECT",
  "LOG",
  "NFLOG",
  "NFQUEUE",
  "MARK",
  "CONNMARK",
  "MASQUERADE",
  "SNAT",
  "DNAT",
  "REDIRECT",
  "TRACE",
  "CT",
  "AUDIT",
  "CHECKSUM",
  "TCPMSS",
  "TEE",
  "CLASSIFY",
  "SECMARK",
  "CONNSECMARK",
];

/**
 * An iptables chain name as iptables accepts it (at most 28 characters) and as our restore lines can carry it: no
 * quote, space, newline or leading `-`/`!` that would read as an option or write a rule of its own.
 */
export const CHAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}$/;

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

function optionalString(c: Record<string, unknown>, key: string): string | undefined {
  const v = c[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw invalid(`${key} must be a string, got ${quoteInput(JSON.stringify(v) ?? "")}`);
  return v;
}

/** The admin chain a config names, checked (code 7) so that it can reach a restore line. */
export function adminChainOf(c: Record<string, unknown>): string {
  const name = optionalString(c, "iptablesAdminChainName");
  if (name === undefined) return DEFAULT_ADMIN_CHAIN;
  if (!CHAIN_NAME.test(name)) {
    throw invalid(
      `iptablesAdminChainName ${quoteInput(name)} is not a valid iptables chain name`,
      "use letters, digits, _ . - (not first), at most 28 characters",
    );
  }
  if (RESERVED_CHAINS.includes(name) || TARGETS.includes(name)) {
    throw invalid(
      `iptablesAdminChainName ${quoteInput(name)} names a built-in chain, a target or a chain of the firewall's own layout`,
    );
  }
  return name;
}

function ingressPolicyOf(c: Record<string, unknown>): IngressPolicy {
  const p = optionalString(c, "ingressPolicy");
  if (p === undefined || p === "open") return "open";
  if (p === "same-bridge") return "same-bridge";
  throw invalid(`unknown ingress policy: ${quoteInput(p)}`, 'ingressPolicy must be "open" or "same-bridge"');
}

/**
 * The backend: `iptables` and `nftables` as named; `firewalld` is refused (no D-Bus client here); unset means
 * iptables as in the reference on a node without firewalld, or nftables on a node that has only nft.
 */
function backendOf(c: Record<string, unknown>): Backend {
  const b = optionalString(c, "backend");
  if (b === "iptables" || b === "nftables") return b;
  if (b === "firewalld") {
    throw invalid(
      'backend "firewalld" is not supported by cni-ts',
      'use "iptables" or "nftables"; firewalld zones are not managed',
    );
  }
  if (b !== undefined)
    throw invalid(`unrecognized backend ${quoteInput(b)}`, 'backend must be "iptables" or "nftables"');
  if (hasExecutable("iptables-restore") || !hasExecutable("nft")) return "iptables";
  return "nftables";
}

/** Parse and validate the whole configuration; every error is code 7 naming the key. */
export function loadFirewallConfig(conf: NetConf): FirewallConfig {
  const c = conf as Record<string, unknown>;
  optionalString(c, "firewalldZone"); // only the type: zones belong to firewalld, which is refused
  const adminChain = adminChainOf(c);
  const ingressPolicy = ingressPolicyOf(c);
  const backend = backendOf(c);
  if (backend === "nftables" && optionalString(c, "iptablesAdminChainName") !== undefined) {
    throw invalid(
      "nftables backend was requested but configuration contains iptables-specific options [iptablesAdminChainName]",
    );
  }
  return { name: conf.name, cniVersion: conf.cniVersion, backend, adminChain, ingressPolicy };
}
