/**
 * iptables backend: the reference's layout (see iptables-rules.ts), applied with one `iptables-save -t nat` and
 * one atomic `iptables-restore --noflush` per family, so a pod's rules appear all at once or not at all.
 *
 * The shared chains (CNI-HOSTPORT-*) are created when missing and never flushed (other networks may have put their
 * mark rule there); DEL leaves them in place, as the reference does.
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { canonicalAddr } from "../../lib/netfilter/addr.js";
import { requireTool } from "../../lib/netfilter/backend.js";
import {
  deleteChains,
  ensureChains,
  IPTABLES,
  restoreWithRetry,
  ruleExists,
  saveTable,
} from "../../lib/netfilter/iptables.js";
import {
  canonicalRule,
  deleteLine,
  ensureRuleLines,
  hasRule,
  option,
  ruleComment,
  ruleLine,
  ruleTarget,
  rulesOf,
  type SavedTable,
} from "../../lib/netfilter/iptables-save.js";
import type { Attachment } from "../../lib/types.js";
import type { PortmapConfig } from "./config.js";
import { dnatChainName, dnatComment, oldSnatChainName } from "./identity.js";
import {
  appliesTo,
  dnatChainRules,
  dnatEntryRules,
  DNAT_ENTRY,
  MASQ,
  MASQ_ENTRY,
  masqRule,
  SETMARK,
  setMarkRule,
  TOP_DNAT,
} from "./iptables-rules.js";
import type { PodAddr } from "./pod.js";

const canon = (words: readonly string[]): string => canonicalRule(words);

/** A hostPort some other attachment's chain already forwards. */
interface Claim {
  chain: string;
  proto: string;
  port: number;
  hostIP: string | undefined;
  to: string;
}

function claimsOf(nat: SavedTable, except: string): Claim[] {
  const out: Claim[] = [];
  for (const r of nat.rules) {
    if (!r.chain.startsWith("CNI-DN-") || r.chain === except || ruleTarget(r) !== "DNAT") continue;
    const proto = option(r.args, "-p", "--protocol")?.value;
    const port = Number(option(r.args, "--dport", "--destination-port")?.value);
    const d = option(r.args, "-d", "--destination");
    if (!proto || !Number.isInteger(port)) continue;
    out.push({
      chain: r.chain,
      proto,
      port,
      hostIP: d ? canonicalAddr(d.value).replace(/\/(32|128)$/, "") : undefined,
      to: option(r.args, "--to-destination")?.value ?? "?",
    });
  }
  return out;
}

/** Code 102 when another attachment already forwards one of our (address, protocol, port) on this family. */
function refuseConflicts(conf: PortmapConfig, family: Family, nat: SavedTable, chain: string): void {
  const claims = claimsOf(nat, chain);
  for (const m of conf.mappings) {
    if (!appliesTo(m, family)) continue;
    const c = claims.find(
      (x) => x.proto === m.protocol && x.port === m.hostPort && (!x.hostIP || !m.hostIP || x.hostIP === m.hostIP),
    );
    if (!c) continue;
    const owner = rulesOf(nat, TOP_DNAT).find((r) => ruleTarget(r) === c.chain);
    const who = (owner && ruleComment(owner)) ?? c.chain;
    throw new CniError(
      ErrorCode.AlreadyInUse,
      `hostPort ${m.hostPort}/${m.protocol}${m.hostIP ? ` on ${m.hostIP}` : ""} is already mapped by another attachment`,
      `${who} (chain ${c.chain}) forwards it to ${c.to}; delete that attachment first`,
    );
  }
}

/** Restore lines that bring the nat table to what this attachment needs, touching nothing that is already right. */
function addLines(conf: PortmapConfig, pod: PodAddr, nat: SavedTable, containerID: string): string[] {
  const chain = dnatChainName(conf.name, containerID);
  const decl: string[] = [];
  const dels: string[] = [];
  const adds: string[] = [];
  if (conf.snat && conf.externalSetMarkChain === undefined) {
    adds.push(...ensureRuleLines(nat, SETMARK, setMarkRule(conf.markMasqBit)));
    adds.push(...ensureRuleLines(nat, MASQ, masqRule(conf.markMasqBit)));
    adds.push(...ensureRuleLines(nat, "POSTROUTING", MASQ_ENTRY, 1));
  }
  for (const entry of ["PREROUTING", "OUTPUT"]) adds.push(...ensureRuleLines(nat, entry, DNAT_ENTRY));

  const want = dnatChainRules(conf, pod);
  const have = rulesOf(nat, chain).map((r) => canon(r.args));
  if (!nat.chains.has(chain) || have.join("\n") !== want.map(canon).join("\n")) {
    // Declaring a chain under --noflush empties it (legacy and nft alike): the chain is rebuilt whole.
    decl.push(`:${chain} - [0:0]`);
    for (const w of want) adds.push(ruleLine("-A", chain, w));
  }
  const wantEntries = dnatEntryRules(conf, pod.family, chain, dnatComment(conf.name, containerID));
  const haveEntries = rulesOf(nat, TOP_DNAT).filter((r) => ruleTarget(r) === chain);
  if (haveEntries.map((r) => canon(r.args)).join("\n") !== wantEntries.map(canon).join("\n")) {
    for (const r of haveEntries) dels.push(deleteLine(r));
    for (const w of wantEntries) adds.push(ruleLine("-A", TOP_DNAT, w));
  }
  return [...decl, ...dels, ...adds];
}

/** The shared chains this config needs. */
function sharedChains(conf: PortmapConfig): string[] {
  return conf.snat && conf.externalSetMarkChain === undefined ? [TOP_DNAT, SETMARK, MASQ] : [TOP_DNAT];
}

/** Create missing shared chains (never emptying one another ADD filled meanwhile); code 100 when iptables refuses. */
async function createSharedChains(family: Family, names: readonly string[]): Promise<void> {
  try {
    await ensureChains(family, "nat", names);
  } catch (e) {
    throw new CniError(ErrorCode.KernelOperationFailed, `portmap: ${(e as Error).message}`);
  }
}

/** What refuses an ADD in one family's nat table: a host port another attachment maps (102), a missing externalSetMarkChain (7). */
function refuse(conf: PortmapConfig, family: Family, nat: SavedTable, containerID: string): void {
  refuseConflicts(conf, family, nat, dnatChainName(conf.name, containerID));
  const ext = conf.externalSetMarkChain;
  if (conf.snat && ext !== undefined && !nat.chains.has(ext)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `externalSetMarkChain ${ext} does not exist in the ${IPTABLES[family].cmd} nat table`,
    );
  }
}

async function readNat(family: Family): Promise<SavedTable> {
  const saved = await saveTable(family, "nat");
  if (!saved.ok)
    throw new CniError(ErrorCode.KernelOperationFailed, `portmap: cannot read the nat table: ${saved.error}`);
  return saved.table;
}

/**
 * ADD: per family of the pod's addresses, one save and (if anything is missing) one restore. Every family is judged
 * before any is changed: a refusal in the IPv6 table must not leave the IPv4 rules (or the shared chains) behind.
 */
export async function iptAdd(conf: PortmapConfig, containerID: string, pods: readonly PodAddr[]): Promise<void> {
  const first = new Map<Family, SavedTable>();
  for (const pod of pods) {
    requireTool(IPTABLES[pod.family].save, "portmap");
    requireTool(IPTABLES[pod.family].restore, "portmap");
    const nat = await readNat(pod.family);
    refuse(conf, pod.family, nat, containerID);
    first.set(pod.family, nat);
  }
  for (const pod of pods) {
    const error = await restoreWithRetry(pod.family, "nat", async (attempt) => {
      let nat = (attempt === 0 ? first.get(pod.family) : undefined) ?? (await readNat(pod.family));
      const missing = sharedChains(conf).filter((c) => !nat.chains.has(c));
      if (missing.length > 0) {
        requireTool(IPTABLES[pod.family].cmd, "portmap");
        await createSharedChains(pod.family, missing);
        nat = await readNat(pod.family);
      }
      // Again: another ADD may have taken a port since the first look.
      refuse(conf, pod.family, nat, containerID);
      return addLines(conf, pod, nat, containerID);
    });
    if (error) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: iptables setup failed: ${error}`);
  }
}

/** Remove `pick(nat)` in both families (lib/netfilter/iptables deleteChains); code 100 naming the failed restores. */
async function deletePortmapChains(pick: (nat: SavedTable) => Set<string>, what: string): Promise<void> {
  const failed = await deleteChains({ table: "nat", pick, who: "portmap", netns: undefined });
  const errors = failed.map((f) => `${IPTABLES[f.family].restore}: ${f.stderr}`);
  if (errors.length > 0)
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `portmap: iptables teardown of ${what} failed: ${errors.join("; ")}`,
    );
}

/** DEL: the attachment's chain (and the pre-0.7 SNAT chain), with every jump to them; no addresses needed. */
export async function iptDel(network: string, containerID: string): Promise<void> {
  const chains = new Set([dnatChainName(network, containerID), oldSnatChainName(network, containerID)]);
  await deletePortmapChains(() => chains, `${network}/${containerID}`);
}

/** The (network, containerID) a reference entry-rule comment names, or undefined. */
export function parseDnatComment(text: string): { network: string; containerID: string } | undefined {
  const m = /^dnat name: "([^"]*)" id: "([^"]*)"$/.exec(text);
  return m ? { network: m[1]!, containerID: m[2]! } : undefined;
}

/** GC: chains of `network` whose container is not among the valid attachments (the layout ignores ifname). */
export async function iptGc(network: string, valid: readonly Attachment[]): Promise<void> {
  const keep = new Set(valid.map((a) => a.containerID));
  await deletePortmapChains((nat) => {
    const stale = new Set<string>();
    for (const r of rulesOf(nat, TOP_DNAT)) {
      const id = parseDnatComment(ruleComment(r) ?? "");
      if (!id || id.network !== network || keep.has(id.containerID)) continue;
      const chain = dnatChainName(id.network, id.containerID);
      if (ruleTarget(r) === chain) stale.add(chain);
    }
    return stale;
  }, `network ${network}`);
}

/** CHECK: every rule ADD wrote for the pod's addresses; undefined when all is there, else what is missing. */
export async function iptCheck(
  conf: PortmapConfig,
  containerID: string,
  pods: readonly PodAddr[],
): Promise<string | undefined> {
  const chain = dnatChainName(conf.name, containerID);
  for (const pod of pods) {
    const tool = IPTABLES[pod.family].cmd;
    requireTool(IPTABLES[pod.family].save, "portmap");
    const saved = await saveTable(pod.family, "nat");
    if (!saved.ok) return `cannot read the nat table: ${saved.error}`;
    const nat = saved.table;
    if (!nat.chains.has(chain)) return `${tool} chain ${chain} (nat) of ${conf.name}/${containerID} is missing`;
    const have = rulesOf(nat, chain).map((r) => canon(r.args));
    const want = dnatChainRules(conf, pod);
    const missing = want.find((w, i) => have[i] !== canon(w));
    if (missing || have.length !== want.length)
      return `${tool} chain ${chain} does not hold the expected rules${missing ? `: "${missing.join(" ")}" is missing or out of order` : ""}`;
    for (const w of dnatEntryRules(conf, pod.family, chain, dnatComment(conf.name, containerID))) {
      // Conditions may use spellings our canonical form does not know: then iptables itself decides.
      if (!hasRule(nat, TOP_DNAT, w) && !(await ruleExists(pod.family, "nat", TOP_DNAT, w)))
        return `${tool} chain ${TOP_DNAT} has no rule "${w.join(" ")}"`;
    }
    for (const entry of ["PREROUTING", "OUTPUT"]) {
      if (!hasRule(nat, entry, DNAT_ENTRY)) return `${tool} chain ${entry} does not jump to ${TOP_DNAT}`;
    }
    if (conf.snat && conf.externalSetMarkChain === undefined) {
      if (!hasRule(nat, SETMARK, setMarkRule(conf.markMasqBit)))
        return `${tool} chain ${SETMARK} does not set the mark ${setMarkRule(conf.markMasqBit).at(-1)}`;
      if (!hasRule(nat, MASQ, masqRule(conf.markMasqBit)))
        return `${tool} chain ${MASQ} does not masquerade the mark ${setMarkRule(conf.markMasqBit).at(-1)}`;
      if (!hasRule(nat, "POSTROUTING", MASQ_ENTRY)) return `${tool} chain POSTROUTING does not jump to ${MASQ}`;
    }
    if (conf.snat && conf.externalSetMarkChain !== undefined && !nat.chains.has(conf.externalSetMarkChain)) {
      return `${tool} chain ${conf.externalSetMarkChain} (externalSetMarkChain) does not exist`;
    }
  }
  return undefined;
}
