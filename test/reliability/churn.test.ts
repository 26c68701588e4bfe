// Churn: ADD/DEL cycles of bridge + host-local (ipMasq on, nftables and iptables alternating per cycle) with the
// routes plugin chained after them (a pod route, and a node route every ADD ensures), through the built
// executables, the way libcni runs a conflist (ADD in order, DEL in reverse, both with the chain's final result as
// prevResult), each pod in a fresh namespace, inside one lab node namespace. Afterwards the node must be
// exactly as before: no veth, no address, no route, no nat rule or set element, no reservation, no file, except the
// attachment index's tombstones, which are documented to stay until GC (docs/host-local.md) and are counted; a GC
// at the end must remove them too. Memory (VmHWM) and descriptors of every plugin process are sampled while it runs,
// and per-call latency is reported (never asserted: the machine is shared).
//
// Short (npm test): 60 cycles. Soak (npm run soak): 1,000.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BridgeLab, type Conf, type Ns } from "../integration/bridge-lab.js";
import {
  COUNTS,
  diffState,
  LONG_TIMEOUT,
  mean,
  nodeState,
  percentile,
  type ProcResult,
  quietOk,
  report,
  round,
  runIn,
  fileSandbox,
} from "./lib.js";

const sb = fileSandbox();

const BACKENDS = ["nftables", "iptables"] as const;

describe("churn: ADD/DEL cycles of bridge + host-local with ipMasq", () => {
  it(`${COUNTS.churnCycles} cycles leave nothing behind; memory, descriptors and on-disk state do not grow`, {
    timeout: LONG_TIMEOUT,
  }, async () => {
    const n = COUNTS.churnCycles;
    const lab = new BridgeLab(sb, "churn");
    const ipam = lab.hostLocal(["10.91.0.0/24", "fd91::/64"]);
    const conf = (backend: string, version = "1.0.0"): Conf =>
      lab.conf({ isGateway: true, ipMasq: true, ipMasqBackend: backend, hairpinMode: true, ipam }, version);
    const routes: Conf = {
      cniVersion: "1.0.0",
      name: lab.network,
      type: "routes",
      addroutes: [{ dst: "10.96.0.0/12", priority: 10 }],
      hostRoutes: [{ dst: "10.250.0.0/16", dev: "cni0" }],
    };
    /** One pod through the chain: bridge ADD, routes ADD; the final result. */
    const addChain = async (backend: string, pod: Ns, sample = false): Promise<[ProcResult, ProcResult]> => {
      const a = await runIn(lab, "ADD", conf(backend), { pod, sample });
      expect([a.status, a.jsonError], a.stdout + a.stderr).toEqual([0, undefined]);
      const r = await runIn(lab, "ADD", { ...routes, prevResult: a.out }, { pod, plugin: "routes", sample });
      expect([r.status, r.jsonError], r.stdout + r.stderr).toEqual([0, undefined]);
      return [a, r];
    };
    /** DEL in reverse order, each with the final result. */
    const delChain = async (
      backend: string,
      pod: Ns,
      result: unknown,
      sample = false,
    ): Promise<[ProcResult, ProcResult]> => {
      const r = await runIn(lab, "DEL", { ...routes, prevResult: result }, { pod, plugin: "routes", sample });
      expect(quietOk(r), r.stdout + r.stderr).toBe(true);
      const d = await runIn(lab, "DEL", lab.withPrev(conf(backend), result), { pod, sample });
      expect(quietOk(d), d.stdout + d.stderr).toBe(true);
      return [d, r];
    };

    // Warm-up, one cycle per backend: the bridge (kept by design), the idle nat tables and the node sysctls exist
    // from here on, so "before" and "after" compare exactly.
    for (const backend of BACKENDS) {
      const pod = lab.pod(`warm-${backend}`);
      const [, r] = await addChain(backend, pod);
      await delChain(backend, pod, r.out);
      spawnSync("ip", ["netns", "del", pod.name]);
    }
    const before = nodeState(lab);

    const adds: ProcResult[] = [];
    const dels: ProcResult[] = [];
    const routeCalls: ProcResult[] = [];
    const addresses = new Set<string>();
    const midway: string[] = [];
    const indexGrowth: number[] = [];
    for (let i = 0; i < n; i++) {
      const backend = BACKENDS[i % 2]!;
      const pod = lab.pod(`c${i}`);
      const [a, ra] = await addChain(backend, pod, true);
      for (const ip of a.out!.ips as Array<{ address: string }>) addresses.add(ip.address);
      expect(ra.out!.routes).toContainEqual({ dst: "10.96.0.0/12", priority: 10 });
      const [d, rd] = await delChain(backend, pod, ra.out, true);
      spawnSync("ip", ["netns", "del", pod.name]);
      adds.push(a);
      dels.push(d);
      routeCalls.push(ra, rd);
      // Ten looks along the way: nothing may accumulate except the documented tombstones.
      if ((i + 1) % Math.max(1, Math.floor(n / 10)) === 0) {
        const now = nodeState(lab);
        midway.push(...diffState(before, now, ["index"]).map((d) => `after cycle ${i + 1}: ${d}`));
        indexGrowth.push(now.index.length - before.index.length);
      }
    }
    const after = nodeState(lab);
    const leftovers = diffState(before, after, ["index"]);
    const tombstones = after.index.filter((e) => !before.index.includes(e));

    // GC at 1.1.0 with an empty list and no grace: the tombstones go too, and nothing else changes.
    const gc = await runIn(lab, "GC", {
      ...conf("nftables", "1.1.0"),
      ipam: { ...ipam, gcGraceSeconds: 0 },
      "cni.dev/valid-attachments": [],
    });
    const afterGc = nodeState(lab);

    const tenth = Math.max(1, Math.floor(n / 10));
    const lat = (xs: ProcResult[]) => xs.map((x) => x.ms);
    const firstAdd = mean(lat(adds.slice(0, tenth)));
    const lastAdd = mean(lat(adds.slice(-tenth)));
    const firstDel = mean(lat(dels.slice(0, tenth)));
    const lastDel = mean(lat(dels.slice(-tenth)));
    const rss = (xs: ProcResult[]) => xs.map((x) => x.peakRssKb).filter((x) => x > 0);
    const all = [...adds, ...dels, ...routeCalls];
    report("churn", {
      cycles: n,
      chain: "bridge + host-local (in-process) + routes",
      backends: "nftables/iptables alternating per cycle",
      routesMs: { p50: round(percentile(lat(routeCalls), 50)), p99: round(percentile(lat(routeCalls), 99)) },
      distinctAddresses: addresses.size,
      addMs: {
        first10pct: round(firstAdd),
        last10pct: round(lastAdd),
        ratio: round(lastAdd / firstAdd, 2),
        p50: round(percentile(lat(adds), 50)),
        p99: round(percentile(lat(adds), 99)),
      },
      delMs: {
        first10pct: round(firstDel),
        last10pct: round(lastDel),
        ratio: round(lastDel / firstDel, 2),
        p50: round(percentile(lat(dels), 50)),
        p99: round(percentile(lat(dels), 99)),
      },
      peakRssKb: {
        addFirst10pct: round(mean(rss(adds.slice(0, tenth))), 0),
        addLast10pct: round(mean(rss(adds.slice(-tenth))), 0),
        delFirst10pct: round(mean(rss(dels.slice(0, tenth))), 0),
        delLast10pct: round(mean(rss(dels.slice(-tenth))), 0),
        max: Math.max(...rss(all)),
        sampled: rss(all).length,
      },
      peakFds: {
        first10pct: Math.max(...adds.slice(0, tenth).map((x) => x.peakFds)),
        last10pct: Math.max(...adds.slice(-tenth).map((x) => x.peakFds)),
      },
      leftovers: leftovers.length,
      tombstonesBeforeGc: tombstones.length,
      indexGrowthAlongTheWay: indexGrowth,
      leftoversAfterGc: diffState(before, afterGc, ["index"]).length + afterGc.index.length,
    });

    expect(midway).toEqual([]);
    expect(leftovers).toEqual([]);
    // The only growth: one "released" tombstone per attachment ever deleted, as documented; GC removes them.
    expect(tombstones.every((t) => / released /.test(t))).toBe(true);
    expect(tombstones.length).toBeLessThanOrEqual(n);
    expect(quietOk(gc), gc.stdout + gc.stderr).toBe(true);
    expect(diffState(before, afterGc, ["index"])).toEqual([]);
    expect(afterGc.index).toEqual([]);
  });
});
