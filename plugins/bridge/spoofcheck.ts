/**
 * macspoofchk: frames entering the bridge from a pod's host veth must carry the pod's MAC, or they are dropped.
 *
 * One nftables bridge-family table for every pod of the node, with a constant rule and two sets: the guarded host
 * veths, and the allowed (host veth . pod MAC) pairs. A pod costs two set elements, not the reference's chain pair
 * and jump per pod. Elements are commented with the network name, so GC of one network never touches another's.
 *
 * @example
 *   await addSpoofCheck("net1", "veth1a2b3c4d", "0a:58:0a:f4:01:05");
 */
import { runOk } from "../../lib/exec.js";
import { ToolError } from "../../lib/tool-error.js";

const TABLE = "bridge cni_ts_spoof";

/** Run nft; a failure is a ToolError whose message starts with `what`. */
function nft(args: string[], what: string, input?: string): Promise<string> {
  return runOk("nft", args, { input: input ?? "", timeoutMs: 10_000, what });
}

/** Idempotent: the table, its sets, and the one rule (re-asserted, so a flushed chain is repaired by the next pod). */
function declarations(): string[] {
  return [
    `add table ${TABLE}`,
    `add set ${TABLE} guarded { type ifname; comment "host veths of pods with macspoofchk"; }`,
    `add set ${TABLE} allowed { type ifname . ether_addr; comment "host veth . the pod's MAC"; }`,
    `add chain ${TABLE} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `flush chain ${TABLE} prerouting`,
    `add rule ${TABLE} prerouting iifname @guarded iifname . ether saddr != @allowed drop`,
  ];
}

const elements = (network: string, hostVeth: string, mac: string) => ({
  guarded: `{ "${hostVeth}" comment "${network}" }`,
  allowed: `{ "${hostVeth}" . ${mac} comment "${network}" }`,
});

export async function addSpoofCheck(network: string, hostVeth: string, mac: string): Promise<void> {
  const e = elements(network, hostVeth, mac);
  await nft(
    ["-f", "-"],
    `macspoofchk setup for ${hostVeth} failed`,
    `${[...declarations(), `add element ${TABLE} guarded ${e.guarded}`, `add element ${TABLE} allowed ${e.allowed}`].join("\n")}\n`,
  );
}

interface SpoofState {
  /** host veth -> network */
  guarded: Map<string, string>;
  /** "veth mac" -> network */
  allowed: Map<string, string>;
  ruleOk: boolean;
}

/**
 * What the table holds now (undefined: no table, or nft cannot list it, as on a kernel without the bridge family:
 * then there is nothing of ours to remove either). Only a hung nft, or none at all, is an error.
 */
async function readState(): Promise<SpoofState | undefined> {
  let stdout: string;
  try {
    stdout = await nft(["-j", "list", "table", ...TABLE.split(" ")], `nft -j list table ${TABLE}`);
  } catch (e) {
    if (e instanceof ToolError && e.kind !== "timeout" && e.errno === undefined) return undefined;
    throw e;
  }
  const state: SpoofState = { guarded: new Map(), allowed: new Map(), ruleOk: false };
  const items = (JSON.parse(stdout) as { nftables?: Array<Record<string, unknown>> }).nftables ?? [];
  for (const it of items) {
    const set = it.set as { name?: string; elem?: unknown[] } | undefined;
    if (set?.name) {
      for (const raw of set.elem ?? []) {
        const wrapped = raw as { elem?: { val?: unknown; comment?: string } };
        const val = wrapped.elem?.val ?? raw;
        const comment = wrapped.elem?.comment ?? "";
        if (set.name === "guarded" && typeof val === "string") state.guarded.set(val, comment);
        const concat = (val as { concat?: unknown[] }).concat;
        if (set.name === "allowed" && Array.isArray(concat))
          state.allowed.set(`${String(concat[0])} ${String(concat[1])}`, comment);
      }
    }
    if (it.rule) state.ruleOk = true;
  }
  return state;
}

/**
 * Remove a pod's elements; succeeds when there is nothing (DEL twice, no table). With `network`, only elements of that
 * network: the host veth's name does not include it, and a DEL must not strip another network's attachment of the
 * same container ID and ifname (whose ADD refused this one's).
 */
export async function delSpoofCheck(hostVeth: string, network?: string): Promise<void> {
  const state = await readState();
  if (!state) return;
  const ours = (veth: string, net: string) => veth === hostVeth && (network === undefined || net === network);
  const lines: string[] = [];
  for (const [veth, net] of state.guarded)
    if (ours(veth, net)) lines.push(`delete element ${TABLE} guarded { "${veth}" comment "${net}" }`);
  for (const [key, net] of state.allowed) {
    const [veth, mac] = key.split(" ") as [string, string];
    if (ours(veth, net)) lines.push(`delete element ${TABLE} allowed { "${veth}" . ${mac} }`);
  }
  if (lines.length === 0) return;
  await nft(["-f", "-"], `macspoofchk teardown for ${hostVeth} failed`, `${lines.join("\n")}\n`);
}

/** undefined when the pod is guarded with exactly its MAC, else what is missing. */
export async function checkSpoofCheck(hostVeth: string, mac: string): Promise<string | undefined> {
  const state = await readState();
  if (!state) return `table ${TABLE} is missing`;
  if (!state.ruleOk) return `the drop rule of ${TABLE} is missing`;
  if (!state.guarded.has(hostVeth)) return `${hostVeth} is not guarded`;
  if (!state.allowed.has(`${hostVeth} ${mac.toLowerCase()}`)) return `${hostVeth} does not allow ${mac}`;
  return undefined;
}

/**
 * Drop elements of `network` whose host veth is neither one of `keep` nor live: `live` (the node's veths) is asked
 * after the table was read and only when something is to go, so a veth an ADD made before its elements is seen.
 * Deletes are add-then-delete, so an element a concurrent DEL removed first does not fail the whole GC.
 */
export async function gcSpoofCheck(
  network: string,
  keep: ReadonlySet<string>,
  live?: () => Promise<ReadonlySet<string>>,
): Promise<void> {
  const state = await readState();
  if (!state) return;
  const doomed: Array<{ set: "guarded" | "allowed"; key: string; veth: string }> = [];
  for (const [veth, net] of state.guarded)
    if (net === network && !keep.has(veth)) doomed.push({ set: "guarded", key: `"${veth}"`, veth });
  for (const [k, net] of state.allowed) {
    const [veth, mac] = k.split(" ") as [string, string];
    if (net === network && !keep.has(veth)) doomed.push({ set: "allowed", key: `"${veth}" . ${mac}`, veth });
  }
  if (doomed.length === 0) return;
  const spared = live ? await live() : new Set<string>();
  const lines = doomed
    .filter((d) => !spared.has(d.veth))
    .flatMap((d) => [`add element ${TABLE} ${d.set} { ${d.key} }`, `delete element ${TABLE} ${d.set} { ${d.key} }`]);
  if (lines.length === 0) return;
  await nft(["-f", "-"], `macspoofchk GC of ${network} failed`, `${lines.join("\n")}\n`);
}
