/**
 * iptables backend: the reference's layout (see iptables-rules.ts), applied with one `iptables-save -t nat` and
 * one atomic `iptables-restore --noflush` per family, so a pod's rules appear all at once or not at all.
 *
 * The shared chains (CNI-HOSTPORT-*) are created when missing and never flushed (other networks may have put their
 * mark rule there); DEL leaves them in place, as the reference does.
 */
import type { Family } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { run, timedOutError } from "../../lib/exec.js";
import { log } from "../../lib/log.js";
import { hasExecutable, requireExecutable } from "../../lib/masq.js";
import type { Attachment } from "../../lib/types.js";
import type { PortmapConfig } from "./config.js";
import { dnatChainName, dnatComment, oldSnatChainName } from "./identity.js";
import { appliesTo, dnatChainRules, dnatEntryRules, DNAT_ENTRY, MASQ, MASQ_ENTRY, masqRule, SETMARK, setMarkRule, TOP_DNAT } from "./iptables-rules.js";
import { canonicalAddr, canonicalRule, option, restoreNat, ruleExists, ruleLine, saveNat, TOOLS, type SavedNat, type SavedRule } from "./iptables-save.js";
import type { PodAddr } from "./pod.js";

// A restore that lost a race (another pod's ADD or DEL changed a chain between our save and our restore) is
// recomputed from a fresh save.
const ATTEMPTS = 3;

const canon = (words: readonly string[]): string => canonicalRule(words);
const rulesOf = (nat: SavedNat, chain: string): SavedRule[] => nat.rules.filter((r) => r.chain === chain);
const hasRule = (nat: SavedNat, chain: string, words: readonly string[]): boolean => rulesOf(nat, chain).some((r) => canon(r.args) === canon(words));
const target = (r: SavedRule): string | undefined => option(r.args, "-j", "--jump")?.value;

/** A hostPort some other attachment's chain already forwards. */
interface Claim {
  chain: string;
  proto: string;
  port: number;
  hostIP: string | undefined;
  to: string;
}

function claimsOf(nat: SavedNat, except: string): Claim[] {
  const out: Claim[] = [];
  for (const r of nat.rules) {
    if (!r.chain.startsWith("CNI-DN-") || r.chain === except || target(r) !== "DNAT") continue;
    const proto = option(r.args, "-p", "--protocol")?.value;
    const port = Number(option(r.args, "--dport", "--destination-port")?.value);
    const d = option(r.args, "-d", "--destination");
    if (!proto || !Number.isInteger(port)) continue;
    out.push({ chain: r.chain, proto, port, hostIP: d ? canonicalAddr(d.value).replace(/\/(32|128)$/, "") : undefined, to: option(r.args, "--to-destination")?.value ?? "?" });
  }
  return out;
}

/** Code 102 when another attachment already forwards one of our (address, protocol, port) on this family. */
function refuseConflicts(conf: PortmapConfig, family: Family, nat: SavedNat, chain: string): void {
  const claims = claimsOf(nat, chain);
  for (const m of conf.mappings) {
    if (!appliesTo(m, family)) continue;
    const c = claims.find((x) => x.proto === m.protocol && x.port === m.hostPort && (!x.hostIP || !m.hostIP || x.hostIP === m.hostIP));
    if (!c) continue;
    const owner = nat.rules.find((r) => r.chain === TOP_DNAT && target(r) === c.chain);
    const who = option(owner?.args ?? [], "--comment")?.value ?? c.chain;
    throw new CniError(
      ErrorCode.AlreadyInUse,
      `hostPort ${m.hostPort}/${m.protocol}${m.hostIP ? ` on ${m.hostIP}` : ""} is already mapped by another attachment`,
      `${who} (chain ${c.chain}) forwards it to ${c.to}; delete that attachment first`,
    );
  }
}

/** Restore lines that bring the nat table to what this attachment needs, touching nothing that is already right. */
function addLines(conf: PortmapConfig, pod: PodAddr, nat: SavedNat, containerID: string): string[] {
  const chain = dnatChainName(conf.name, containerID);
  const decl: string[] = [];
  const dels: string[] = [];
  const adds: string[] = [];
  if (conf.snat && conf.externalSetMarkChain === undefined) {
    if (!hasRule(nat, SETMARK, setMarkRule(conf.markMasqBit))) adds.push(ruleLine("-A", SETMARK, setMarkRule(conf.markMasqBit)));
    if (!hasRule(nat, MASQ, masqRule(conf.markMasqBit))) adds.push(ruleLine("-A", MASQ, masqRule(conf.markMasqBit)));
    if (!hasRule(nat, "POSTROUTING", MASQ_ENTRY)) adds.push(ruleLine("-I", "POSTROUTING", MASQ_ENTRY, 1));
  }
  for (const entry of ["PREROUTING", "OUTPUT"]) if (!hasRule(nat, entry, DNAT_ENTRY)) adds.push(ruleLine("-A", entry, DNAT_ENTRY));

  const want = dnatChainRules(conf, pod);
  const have = rulesOf(nat, chain).map((r) => canon(r.args));
  if (!nat.chains.has(chain) || have.join("\n") !== want.map(canon).join("\n")) {
    // Declaring a chain under --noflush empties it (legacy and nft alike): the chain is rebuilt whole.
    decl.push(`:${chain} - [0:0]`);
    for (const w of want) adds.push(ruleLine("-A", chain, w));
  }
  const wantEntries = dnatEntryRules(conf, pod.family, chain, dnatComment(conf.name, containerID));
  const haveEntries = nat.rules.filter((r) => r.chain === TOP_DNAT && target(r) === chain);
  if (haveEntries.map((r) => canon(r.args)).join("\n") !== wantEntries.map(canon).join("\n")) {
    for (const r of haveEntries) dels.push(`-D ${r.raw.slice(3)}`);
    for (const w of wantEntries) adds.push(ruleLine("-A", TOP_DNAT, w));
  }
  return [...decl, ...dels, ...adds];
}

/** The shared chains this config needs. */
function sharedChains(conf: PortmapConfig): string[] {
  return conf.snat && conf.externalSetMarkChain === undefined ? [TOP_DNAT, SETMARK, MASQ] : [TOP_DNAT];
}

/**
 * Create missing shared chains with `iptables -N`, which fails harmlessly when the chain exists. A restore cannot
 * do it: declaring a chain under --noflush empties an existing one, and two first ADDs racing on a fresh node would
 * each empty what the other just wrote.
 */
async function createSharedChains(family: Family, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const r = await run(TOOLS[family].cmd, ["-w", "-t", "nat", "-N", name], { timeoutMs: 20_000 });
    if (r.timedOut) throw timedOutError(`portmap: ${TOOLS[family].cmd} -t nat -N ${name}`, r);
    // "Chain already exists", or under iptables-nft when another -N won the race: "CHAIN_USER_ADD failed (File exists)".
    if (r.code !== 0 && !/already exists|File exists/i.test(r.stderr)) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: ${TOOLS[family].cmd} -t nat -N ${name}: ${r.stderr.trim()}`);
  }
}

/** What refuses an ADD in one family's nat table: a host port another attachment maps (102), a missing externalSetMarkChain (7). */
function refuse(conf: PortmapConfig, family: Family, nat: SavedNat, containerID: string): void {
  refuseConflicts(conf, family, nat, dnatChainName(conf.name, containerID));
  const ext = conf.externalSetMarkChain;
  if (conf.snat && ext !== undefined && !nat.chains.has(ext)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `externalSetMarkChain ${ext} does not exist in the ${TOOLS[family].save.replace("-save", "")} nat table`);
  }
}

async function readNat(family: Family): Promise<SavedNat> {
  const saved = await saveNat(family);
  if (!saved.ok) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: cannot read the nat table: ${saved.error}`);
  return saved.nat;
}

/**
 * ADD: per family of the pod's addresses, one save and (if anything is missing) one restore. Every family is judged
 * before any is changed: a refusal in the IPv6 table must not leave the IPv4 rules (or the shared chains) behind.
 */
export async function iptAdd(conf: PortmapConfig, containerID: string, pods: readonly PodAddr[]): Promise<void> {
  const first = new Map<Family, SavedNat>();
  for (const pod of pods) {
    requireExecutable(TOOLS[pod.family].save);
    requireExecutable(TOOLS[pod.family].restore);
    const nat = await readNat(pod.family);
    refuse(conf, pod.family, nat, containerID);
    first.set(pod.family, nat);
  }
  for (const pod of pods) {
    const tools = TOOLS[pod.family];
    let error = "";
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      let nat = (attempt === 0 ? first.get(pod.family) : undefined) ?? (await readNat(pod.family));
      const missing = sharedChains(conf).filter((c) => !nat.chains.has(c));
      if (missing.length > 0) {
        requireExecutable(tools.cmd);
        await createSharedChains(pod.family, missing);
        nat = await readNat(pod.family);
      }
      // Again: another ADD may have taken a port since the first look.
      refuse(conf, pod.family, nat, containerID);
      const lines = addLines(conf, pod, nat, containerID);
      const r = lines.length === 0 ? { ok: true, stderr: "" } : await restoreNat(pod.family, lines);
      if (r.ok) {
        error = "";
        break;
      }
      error = r.stderr;
    }
    if (error) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: iptables setup failed: ${error}`);
  }
}

/** Restore lines deleting `chains` and every rule elsewhere that jumps to them. */
function deleteLines(nat: SavedNat, chains: ReadonlySet<string>): string[] {
  const lines: string[] = [];
  for (const r of nat.rules) {
    const t = target(r);
    if (t !== undefined && chains.has(t) && !chains.has(r.chain)) lines.push(`-D ${r.raw.slice(3)}`);
  }
  for (const c of chains) if (nat.chains.has(c)) lines.push(`-F ${c}`, `-X ${c}`);
  return lines;
}

/** Remove `pick(nat)` in both families; a family whose table cannot be read holds nothing of ours. */
async function deleteChains(pick: (nat: SavedNat) => Set<string>, what: string): Promise<void> {
  const errors: string[] = [];
  await Promise.all(
    ([4, 6] as const).map(async (family) => {
      if (!hasExecutable(TOOLS[family].save) || !hasExecutable(TOOLS[family].restore)) return;
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const saved = await saveNat(family);
        if (!saved.ok) return log.debug(`portmap: skipping ${TOOLS[family].save}: ${saved.error}`);
        const lines = deleteLines(saved.nat, pick(saved.nat));
        if (lines.length === 0) return;
        const r = await restoreNat(family, lines);
        if (r.ok) return;
        if (attempt === ATTEMPTS - 1) errors.push(`${TOOLS[family].restore}: ${r.stderr}`);
      }
    }),
  );
  if (errors.length > 0) throw new CniError(ErrorCode.KernelOperationFailed, `portmap: iptables teardown of ${what} failed: ${errors.join("; ")}`);
}

/** DEL: the attachment's chain (and the pre-0.7 SNAT chain), with every jump to them; no addresses needed. */
export async function iptDel(network: string, containerID: string): Promise<void> {
  const chains = new Set([dnatChainName(network, containerID), oldSnatChainName(network, containerID)]);
  await deleteChains(() => chains, `${network}/${containerID}`);
}

/** The (network, containerID) a reference entry-rule comment names, or undefined. */
export function parseDnatComment(text: string): { network: string; containerID: string } | undefined {
  const m = /^dnat name: "([^"]*)" id: "([^"]*)"$/.exec(text);
  return m ? { network: m[1]!, containerID: m[2]! } : undefined;
}

/** GC: chains of `network` whose container is not among the valid attachments (the layout ignores ifname). */
export async function iptGc(network: string, valid: readonly Attachment[]): Promise<void> {
  const keep = new Set(valid.map((a) => a.containerID));
  await deleteChains((nat) => {
    const stale = new Set<string>();
    for (const r of nat.rules) {
      if (r.chain !== TOP_DNAT) continue;
      const id = parseDnatComment(option(r.args, "--comment")?.value ?? "");
      if (!id || id.network !== network || keep.has(id.containerID)) continue;
      const chain = dnatChainName(id.network, id.containerID);
      if (target(r) === chain) stale.add(chain);
    }
    return stale;
  }, `network ${network}`);
}

/** CHECK: every rule ADD wrote for the pod's addresses; undefined when all is there, else what is missing. */
export async function iptCheck(conf: PortmapConfig, containerID: string, pods: readonly PodAddr[]): Promise<string | undefined> {
  const chain = dnatChainName(conf.name, containerID);
  for (const pod of pods) {
    const tool = TOOLS[pod.family].cmd;
    requireExecutable(TOOLS[pod.family].save);
    const saved = await saveNat(pod.family);
    if (!saved.ok) return `cannot read the nat table: ${saved.error}`;
    const nat = saved.nat;
    if (!nat.chains.has(chain)) return `${tool} chain ${chain} (nat) of ${conf.name}/${containerID} is missing`;
    const have = rulesOf(nat, chain).map((r) => canon(r.args));
    const want = dnatChainRules(conf, pod);
    const missing = want.find((w, i) => have[i] !== canon(w));
    if (missing || have.length !== want.length) return `${tool} chain ${chain} does not hold the expected rules${missing ? `: "${missing.join(" ")}" is missing or out of order` : ""}`;
    for (const w of dnatEntryRules(conf, pod.family, chain, dnatComment(conf.name, containerID))) {
      // Conditions may use spellings our canonical form does not know: then iptables itself decides.
      if (!hasRule(nat, TOP_DNAT, w) && !(await ruleExists(pod.family, TOP_DNAT, w))) return `${tool} chain ${TOP_DNAT} has no rule "${w.join(" ")}"`;
    }
    for (const entry of ["PREROUTING", "OUTPUT"]) {
      if (!hasRule(nat, entry, DNAT_ENTRY)) return `${tool} chain ${entry} does not jump to ${TOP_DNAT}`;
    }
    if (conf.snat && conf.externalSetMarkChain === undefined) {
      if (!hasRule(nat, SETMARK, setMarkRule(conf.markMasqBit))) return `${tool} chain ${SETMARK} does not set the mark ${setMarkRule(conf.markMasqBit).at(-1)}`;
      if (!hasRule(nat, MASQ, masqRule(conf.markMasqBit))) return `${tool} chain ${MASQ} does not masquerade the mark ${setMarkRule(conf.markMasqBit).at(-1)}`;
      if (!hasRule(nat, "POSTROUTING", MASQ_ENTRY)) return `${tool} chain POSTROUTING does not jump to ${MASQ}`;
    }
    if (conf.snat && conf.externalSetMarkChain !== undefined && !nat.chains.has(conf.externalSetMarkChain)) {
      return `${tool} chain ${conf.externalSetMarkChain} (externalSetMarkChain) does not exist`;
    }
  }
  return undefined;
}
