// Crash injection: the bridge plugin (host-local in-process under it) is killed with SIGKILL at a uniformly random
// moment of its ADD (the moments spread over a normal ADD's measured duration), and the runtime's recovery runs at
// once, as a runtime would: DEL, then GC with an empty list (ipam gcGraceSeconds 0). After every run the node must
// be exactly as before: links, addresses, routes, nft ruleset, iptables, sysctls, the data dir and its index; the
// pod namespace holds only lo. The one thing allowed to stay is what docs/host-local.md says a killed writer leaves:
// a file in `.cni-ts/<net>/tmp/`, swept by GC once older than 60 s (checked at the end by ageing them).
// Then the same for DEL: killed at a random moment, then DEL again.
//
// Only the plugin process is killed, as a runtime's deadline does: children it started (ip, nsenter, nft,
// iptables-restore) may outlive it. The state is compared once no process is left in the node's or the pod's
// namespace, so a late child's work shows up as a leftover.
//
// Short (npm test): 40 ADDs and 16 DELs killed. Soak (npm run soak): 240 and 100.
import { spawnSync } from "node:child_process";
import { readdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hostVethName } from "../../plugins/bridge/names.js";
import { addrsOf, BridgeLab, type Conf, linkOf, type Ns } from "../integration/bridge-lab.js";
import {
  COUNTS,
  dataTree,
  diffState,
  LONG_TIMEOUT,
  nodeState,
  percentile,
  podLinks,
  type ProcResult,
  quietOk,
  report,
  rng,
  round,
  runIn,
  SEED,
  waitNoPids,
  fileSandbox,
} from "./lib.js";

const sb = fileSandbox();

const BACKENDS = ["nftables", "iptables"] as const;

function setup(label: string, n: number): { lab: BridgeLab; conf: (backend: string) => Conf; gc: Conf } {
  const lab = new BridgeLab(sb, label);
  const ipam = { ...lab.hostLocal([`10.93.${n}.0/24`, `fd93:${n}::/64`]), gcGraceSeconds: 0 };
  const conf = (backend: string): Conf =>
    lab.conf({ isGateway: true, ipMasq: true, ipMasqBackend: backend, hairpinMode: true, ipam }, "1.1.0");
  return { lab, conf, gc: { ...conf("nftables"), "cni.dev/valid-attachments": [] } };
}

/**
 * Complete ADD/DELs, alternating the backends: the first ones create the bridge, the idle nat tables and the sysctls
 * (which then exist in "before"); the later ones, on a warm node, give a normal ADD's and DEL's duration.
 */
async function warm(lab: BridgeLab, conf: (b: string) => Conf, gc: Conf): Promise<{ addMs: number; delMs: number }> {
  const addMs: number[] = [];
  const delMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const backend = BACKENDS[i % 2]!;
    const pod = lab.pod(`warm${i}`);
    const a = await runIn(lab, "ADD", conf(backend), { pod });
    expect(a.status, a.stdout + a.stderr).toBe(0);
    const d = await runIn(lab, "DEL", lab.withPrev(conf(backend), a.out), { pod });
    expect(quietOk(d)).toBe(true);
    if (i >= 2) {
      addMs.push(a.ms);
      delMs.push(d.ms);
    }
    spawnSync("ip", ["netns", "del", pod.name]);
  }
  expect(quietOk(await runIn(lab, "GC", gc))).toBe(true);
  return { addMs: percentile(addMs, 50), delMs: percentile(delMs, 50) };
}

/** Age the killed writers' temporary files past GC's 60 s and run GC: they must go. */
async function sweepTmp(lab: BridgeLab, gc: Conf): Promise<number> {
  const dir = join(lab.dataDir, ".cni-ts", lab.network, "tmp");
  const files = readdirSync(dir);
  const old = new Date(Date.now() - 120_000);
  for (const f of files) utimesSync(join(dir, f), old, old);
  expect(quietOk(await runIn(lab, "GC", gc))).toBe(true);
  expect(readdirSync(dir)).toEqual([]);
  return files.length;
}

/** How far a killed ADD got, read before the recovery runs: spreads the kills over the plugin's phases. */
function phaseReached(lab: BridgeLab, pod: Ns, id: string): string {
  const entry = dataTree(lab.dataDir).index.find((e) => e.includes(` ${id}/eth0 `));
  if (!entry) return "1 starting (no IPAM entry yet)";
  if (/ adding /.test(entry)) return "2 IPAM in progress";
  if (!linkOf(lab.node.name, hostVethName(id, "eth0"))) return "3 IPAM done, no veth yet";
  if (addrsOf(pod.name, "eth0").length === 0) return "4 veth created, pod not configured";
  return "5 pod configured (masquerade, port wait)";
}

describe("crash injection (SIGKILL)", () => {
  it(`ADD killed at ${COUNTS.crashAdd} random moments, then DEL and GC: the node is back to its state every time`, {
    timeout: LONG_TIMEOUT,
  }, async () => {
    const { lab, conf, gc } = setup("crashadd", 1);
    // The window: a normal ADD's duration on this node (median of the warm ADDs), process start included.
    const window = (await warm(lab, conf, gc)).addMs;
    const before = nodeState(lab);
    expect(before.index).toEqual([]);
    const random = rng(SEED ^ 0xadd);
    const runs: Array<{ delay: number; killed: boolean; orphans: number; phase: string; leftovers: string[] }> = [];
    // Until COUNTS.crashAdd ADDs were really killed (a random moment late in the window may come after the exit).
    for (let i = 0; runs.filter((r) => r.killed).length < COUNTS.crashAdd && i < 3 * COUNTS.crashAdd; i++) {
      const backend = BACKENDS[i % 2]!;
      const pod = lab.pod(`k${i}`);
      const delay = random() * window;
      const a = await runIn(lab, "ADD", conf(backend), { pod, killAfterMs: delay });
      const killed = a.signal === "SIGKILL";
      if (!killed) expect([a.status, a.jsonError], a.stdout + a.stderr).toEqual([0, undefined]);
      // Children the plugin started and that outlived it, right now.
      const orphans = (await waitNoPids([lab.node.name, pod.name], 0)).length;
      const phase = killed ? phaseReached(lab, pod, `ctr-${pod.name}`) : "6 finished before the kill";
      const d = await runIn(lab, "DEL", a.out ? lab.withPrev(conf(backend), a.out) : conf(backend), { pod });
      const g = await runIn(lab, "GC", gc);
      const stuck = await waitNoPids([lab.node.name, pod.name], 10_000);
      const leftovers = [
        ...diffState(before, nodeState(lab), ["tmp"]),
        ...podLinks(pod.name).map((l) => `pod link ${l}`),
        ...(quietOk(d) ? [] : [`DEL failed: ${d.stdout}${d.stderr}`]),
        ...(quietOk(g) ? [] : [`GC failed: ${g.stdout}${g.stderr}`]),
        ...stuck.map((p) => `process still running: ${p}`),
      ];
      runs.push({ delay, killed, orphans, phase, leftovers });
      spawnSync("ip", ["netns", "del", pod.name]);
      if (leftovers.length > 0) break;
    }
    const tmpSwept = await sweepTmp(lab, gc);
    const deciles = Array.from(
      { length: 10 },
      (_, k) =>
        runs.filter((r) => r.killed && r.delay >= (k * window) / 10 && r.delay < ((k + 1) * window) / 10).length,
    );
    const failed = runs.filter((r) => r.leftovers.length > 0);
    report("crash-add", {
      runs: runs.length,
      killed: runs.filter((r) => r.killed).length,
      finishedBeforeTheKill: runs.filter((r) => !r.killed).length,
      windowMs: round(window, 0),
      killsPerTenthOfWindow: deciles,
      phasesReached: Object.fromEntries(
        [...new Set(runs.map((r) => r.phase))].sort().map((p) => [p, runs.filter((r) => r.phase === p).length]),
      ),
      runsWithOrphanedChildren: runs.filter((r) => r.orphans > 0).length,
      tmpFilesLeftByKilledWriters: tmpSwept,
      runsWithLeftovers: failed.length,
      firstFailure: failed[0] ? { delayMs: round(failed[0].delay), leftovers: failed[0].leftovers } : undefined,
    });
    expect(failed.map((r) => ({ delayMs: round(r.delay), leftovers: r.leftovers }))).toEqual([]);
    expect(runs.filter((r) => r.killed).length).toBe(COUNTS.crashAdd);
    expect(diffState(before, nodeState(lab))).toEqual([]);
  });

  it(`DEL killed at ${COUNTS.crashDel} random moments, then DEL again: the node is back to its state every time`, {
    timeout: LONG_TIMEOUT,
  }, async () => {
    const { lab, conf, gc } = setup("crashdel", 2);
    // The window: a normal DEL's duration on this node.
    const window = (await warm(lab, conf, gc)).delMs;
    const before = nodeState(lab);
    const random = rng(SEED ^ 0xde1);
    const runs: Array<{ delay: number; killed: boolean; leftovers: string[] }> = [];
    for (let i = 0; runs.filter((r) => r.killed).length < COUNTS.crashDel && i < 3 * COUNTS.crashDel; i++) {
      const backend = BACKENDS[i % 2]!;
      const pod = lab.pod(`d${i}`);
      const a: ProcResult = await runIn(lab, "ADD", conf(backend), { pod });
      expect(a.status, a.stdout + a.stderr).toBe(0);
      const delay = random() * window;
      const d1 = await runIn(lab, "DEL", lab.withPrev(conf(backend), a.out), { pod, killAfterMs: delay });
      const killed = d1.signal === "SIGKILL";
      const d2 = await runIn(lab, "DEL", lab.withPrev(conf(backend), a.out), { pod });
      const stuck = await waitNoPids([lab.node.name, pod.name], 10_000);
      const now = nodeState(lab);
      const leftovers = [
        ...diffState(before, now, ["index", "tmp"]),
        // DEL leaves a tombstone by design (docs/host-local.md): nothing else may be in the index.
        ...now.index.filter((e) => !/ released /.test(e)).map((e) => `index entry not released: ${e}`),
        ...podLinks(pod.name).map((l) => `pod link ${l}`),
        ...(quietOk(d2) ? [] : [`second DEL failed: ${d2.stdout}${d2.stderr}`]),
        ...stuck.map((p) => `process still running: ${p}`),
      ];
      runs.push({ delay, killed, leftovers });
      spawnSync("ip", ["netns", "del", pod.name]);
      if (leftovers.length > 0) break;
    }
    const tombstones = dataTree(lab.dataDir).index.length;
    expect(quietOk(await runIn(lab, "GC", gc))).toBe(true);
    const tmpSwept = await sweepTmp(lab, gc);
    const failed = runs.filter((r) => r.leftovers.length > 0);
    report("crash-del", {
      runs: runs.length,
      killed: runs.filter((r) => r.killed).length,
      finishedBeforeTheKill: runs.filter((r) => !r.killed).length,
      windowMs: round(window, 0),
      tombstonesBeforeGc: tombstones,
      tmpFilesLeftByKilledWriters: tmpSwept,
      runsWithLeftovers: failed.length,
      firstFailure: failed[0] ? { delayMs: round(failed[0].delay), leftovers: failed[0].leftovers } : undefined,
    });
    expect(failed.map((r) => ({ delayMs: round(r.delay), leftovers: r.leftovers }))).toEqual([]);
    expect(runs.filter((r) => r.killed).length).toBe(COUNTS.crashDel);
    expect(diffState(before, nodeState(lab))).toEqual([]);
  });
});
