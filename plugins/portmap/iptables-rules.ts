/**
 * The iptables rules of the reference's layout (`plugins:plugins/meta/portmap/portmap_iptables.go`), as words:
 *
 *   PREROUTING, OUTPUT:  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
 *   CNI-HOSTPORT-DNAT:   -m comment --comment 'dnat name: "<net>" id: "<id>"' -m multiport -p tcp --destination-ports 8080,8081 [conditions] -j CNI-DN-<hash>
 *   CNI-DN-<hash>:       per mapping: -s <pod subnet> → SETMARK (hairpin), -s 127.0.0.1 → SETMARK (IPv4), DNAT to pod:port
 *   CNI-HOSTPORT-SETMARK: MARK --set-xmark 1<<bit
 *   POSTROUTING (first): -j CNI-HOSTPORT-MASQ, which masquerades marked packets
 *
 * Pure functions: the same config and pod address always give the same words, which the tests compare with what
 * the reference writes.
 */
import type { Family } from "../../lib/cidr.js";
import type { PodAddr } from "./pod.js";
import type { PortmapConfig, PortMapping } from "./config.js";

// The shared chains' names never change, or an upgrade would strand the old ones.
/** The shared chain PREROUTING and OUTPUT jump to for traffic to a local address. */
export const TOP_DNAT = "CNI-HOSTPORT-DNAT";
/** The shared chain that marks a connection for masquerade. */
export const SETMARK = "CNI-HOSTPORT-SETMARK";
/** The shared chain POSTROUTING jumps to first, masquerading marked packets. */
export const MASQ = "CNI-HOSTPORT-MASQ";

/** The jump from PREROUTING and OUTPUT to the shared DNAT chain: only traffic to a local address. */
export const DNAT_ENTRY: readonly string[] = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", TOP_DNAT];
/** The jump from POSTROUTING to the masquerade chain, inserted first so ptp/bridge masquerade rules cannot shadow it. */
export const MASQ_ENTRY: readonly string[] = [
  "-m",
  "comment",
  "--comment",
  "CNI portfwd requiring masquerade",
  "-j",
  MASQ,
];

/** The mark as the reference spells it: "0x2000/0x2000" for bit 13. */
export function markDef(bit: number): string {
  const v = (1 << bit) >>> 0;
  return `0x${v.toString(16)}/0x${v.toString(16)}`;
}

/** The one rule of CNI-HOSTPORT-SETMARK for a mark bit. */
export function setMarkRule(bit: number): string[] {
  return ["-m", "comment", "--comment", "CNI portfwd masquerade mark", "-j", "MARK", "--set-xmark", markDef(bit)];
}

/** The one rule of CNI-HOSTPORT-MASQ for a mark bit. */
export function masqRule(bit: number): string[] {
  return ["-m", "mark", "--mark", markDef(bit), "-j", "MASQUERADE"];
}

/** Does a mapping apply to a pod address of this family? hostIP (0.0.0.0 and :: too) restricts it to its own. */
export function appliesTo(m: PortMapping, family: Family): boolean {
  return m.family === undefined || m.family === family;
}

function toDestination(pod: PodAddr, port: number): string {
  return pod.family === 6 ? `[${pod.ip}]:${port}` : `${pod.ip}:${port}`;
}

/**
 * The rules of the attachment's CNI-DN chain for one pod address, in the reference's order: for every mapping the
 * mark rules first (hairpin from the pod's subnet, or from anywhere with masqAll; localhost for IPv4), then DNAT.
 */
export function dnatChainRules(conf: PortmapConfig, pod: PodAddr): string[][] {
  const setMark = conf.externalSetMarkChain ?? SETMARK;
  const rules: string[][] = [];
  for (const m of conf.mappings) {
    if (!appliesTo(m, pod.family)) continue;
    const base = ["-p", m.protocol, "--dport", String(m.hostPort), ...(m.hostIP ? ["-d", m.hostIP] : [])];
    if (conf.snat) {
      const from = conf.masqAll ? (pod.family === 4 ? "0.0.0.0/0" : "::/0") : pod.subnet;
      rules.push([...base, "-s", from, "-j", setMark]);
      if (pod.family === 4 && !conf.masqAll) rules.push([...base, "-s", "127.0.0.1", "-j", setMark]);
    }
    rules.push([...base, "-j", "DNAT", "--to-destination", toDestination(pod, m.containerPort)]);
  }
  return rules;
}

/**
 * The jumps from CNI-HOSTPORT-DNAT to the attachment's chain: per protocol (sorted) one multiport rule per 15 ports,
 * with the family's conditions. Like the reference, the ports of every mapping are listed whatever their family:
 * the chain itself only DNATs what applies.
 */
export function dnatEntryRules(conf: PortmapConfig, family: Family, chain: string, comment: string): string[][] {
  const byProto = new Map<string, number[]>();
  for (const m of conf.mappings) {
    const ports = byProto.get(m.protocol) ?? [];
    if (!ports.includes(m.hostPort)) ports.push(m.hostPort);
    byProto.set(m.protocol, ports);
  }
  const conditions = family === 4 ? conf.conditionsV4 : conf.conditionsV6;
  const rules: string[][] = [];
  for (const proto of [...byProto.keys()].sort()) {
    const ports = byProto.get(proto)!;
    for (let i = 0; i < ports.length; i += 15) {
      rules.push([
        "-m",
        "comment",
        "--comment",
        comment,
        "-m",
        "multiport",
        "-p",
        proto,
        "--destination-ports",
        ports.slice(i, i + 15).join(","),
        ...conditions,
        "-j",
        chain,
      ]);
    }
  }
  return rules;
}
