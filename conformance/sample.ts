/**
 * runSample(): the README demo's one call. It runs the kubenet-style sample (conformance/cases/kubenet-style/net.d:
 * bridge cbr0, isGateway, ipMasq, host-local with a default route) through the libcni-semantics runner for 3 pods
 * on one node, inside a sandbox of network namespaces (plugins run inside the node namespace), pings every pod
 * from every pod and its gateway, DELs them all, and reports what is left. Nothing of the machine is changed;
 * the sandbox is removed before it returns (also on Ctrl-C).
 *
 * @example
 *   import { runSample } from "./conformance/sample.js";
 *   const s = await runSample({ plugins: "dist/bin" });
 *   console.log(s.pods, s.pings, s.afterDel, s.ok);
 */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { CniRuntime, listCache, loadConfDir } from "./runner/index.js";
import { detectPluginSet } from "./harness/features.js";
import { links, natMentions, natText, NSENTER, ping } from "./harness/kernel.js";
import { reservations } from "./harness/engine.js";
import { resultAddresses, resultGateway, resultHostVeth } from "./harness/match.js";
import { RunSandbox } from "./harness/sandbox.js";

type J = Record<string, unknown>;

export interface SampleOptions {
  /** Plugin directory (default dist/bin under the current directory). */
  plugins?: string;
  /** Number of pods, 2-6 (default 3). */
  pods?: number;
  /** Case directory holding kubenet-style/ (default conformance/cases under the current directory). */
  casesDir?: string;
  /** Progress lines, e.g. console.error. */
  log?: (line: string) => void;
}

export interface SamplePod {
  name: string;
  containerID: string;
  netns: string;
  ifname: string;
  /** CIDRs from the ADD result. */
  ips: string[];
  gateway?: string;
  hostVeth?: string;
  addMs: number;
  delMs?: number;
}

export interface SamplePing {
  from: string;
  /** A pod name or "gateway". */
  to: string;
  address: string;
  ok: boolean;
  rttMs?: number;
}

export interface SampleSummary {
  /** True when every ADD/DEL succeeded, every ping answered, nothing was left after DEL and no sandbox leftover. */
  ok: boolean;
  plugins: { dir: string; impl: string; about: string };
  network: { name: string; cniVersion: string; conflist: J };
  /** The node namespace the plugins ran in (gone when this returns). */
  node: string;
  pods: SamplePod[];
  /** The first pod's ADD result, exactly as the runner returned it. */
  addResult: J;
  /** Every pod to every other pod, and to its gateway. */
  pings: SamplePing[];
  /** What was left in the node after every DEL: host veths, host-local reservations, cache entries, nat mentions. */
  afterDel: { veths: string[]; reservations: string[]; cacheEntries: number; natMentions: number };
  /** Namespaces / directories of the sandbox still present after cleanup (must be empty). */
  leftovers: string[];
  errors: string[];
  durationMs: number;
}

/** Run the sample; never throws for plugin failures (they land in `errors` and `ok` is false). */
export async function runSample(opts: SampleOptions = {}): Promise<SampleSummary> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const dir = resolve(opts.plugins ?? "dist/bin");
  const casesDir = resolve(opts.casesDir ?? "conformance/cases");
  const n = Math.min(6, Math.max(2, opts.pods ?? 3));
  const set = await detectPluginSet(dir, ["bridge", "host-local"]);
  const sandbox = new RunSandbox("ctsample");
  const errors: string[] = [];
  const pods: SamplePod[] = [];
  const pings: SamplePing[] = [];
  let addResult: J = {};
  let network: SampleSummary["network"] = { name: "", cniVersion: "", conflist: {} };
  let afterDel: SampleSummary["afterDel"] = { veths: [], reservations: [], cacheEntries: 0, natMentions: 0 };
  let nodeName = "";
  try {
    const node = sandbox.netns("node");
    nodeName = node.name;
    const dataDir = join(sandbox.tmp, "data");
    const cacheDir = join(sandbox.tmp, "cache");
    // The case's config as a runtime reads it, with the run's dataDir injected.
    const list = loadConfDir(join(casesDir, "kubenet-style", "net.d"));
    const conflist = JSON.parse(list.bytes.toString()) as J;
    for (const p of conflist.plugins as J[]) if (p.ipam && typeof p.ipam === "object") (p.ipam as J).dataDir = dataDir;
    const bytes = Buffer.from(JSON.stringify(conflist));
    const net = { ...list, plugins: conflist.plugins as J[], bytes };
    network = { name: net.name, cniVersion: net.cniVersion, conflist };
    const runtime = new CniRuntime({
      cniPath: [dir],
      cacheDir,
      wrapper: [NSENTER, `--net=${node.path}`, "--"],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    log(`sandbox ${sandbox.id}: node namespace ${node.name}, plugins ${dir} (${set.impl})`);

    for (let i = 0; i < n; i++) {
      const name = `pod${i + 1}`;
      const ns = sandbox.netns(name);
      const pod: SamplePod = {
        name,
        containerID: `${sandbox.id}-${name}`,
        netns: ns.path,
        ifname: "eth0",
        ips: [],
        addMs: 0,
      };
      const a0 = performance.now();
      try {
        const result = await runtime.addNetworkList(net, {
          containerID: pod.containerID,
          netns: pod.netns,
          ifname: "eth0",
        });
        if (i === 0) addResult = result;
        pod.ips = resultAddresses(result);
        const gw = resultGateway(result, 4);
        if (gw) pod.gateway = gw;
        const hv = resultHostVeth(result);
        if (hv) pod.hostVeth = hv;
      } catch (e) {
        errors.push(`ADD ${name}: ${(e as Error).message}`);
      }
      pod.addMs = Math.round(performance.now() - a0);
      pods.push(pod);
      log(`ADD ${name}: ${pod.ips.join(", ") || "failed"} (${pod.addMs} ms)`);
    }

    for (const from of pods) {
      const targets: Array<[string, string | undefined]> = [
        ...pods.filter((p) => p !== from).map((p) => [p.name, p.ips[0]?.split("/")[0]] as [string, string | undefined]),
        ["gateway", from.gateway],
      ];
      for (const [to, address] of targets) {
        if (!address) continue;
        const r = await ping(from.netns, address);
        pings.push({ from: from.name, to, address, ok: r.ok, ...(r.rttMs !== undefined ? { rttMs: r.rttMs } : {}) });
        if (!r.ok) errors.push(`ping ${from.name} -> ${to} (${address}): no answer`);
      }
    }
    log(`pings: ${pings.filter((p) => p.ok).length}/${pings.length} answered`);

    for (const pod of pods) {
      const d0 = performance.now();
      try {
        await runtime.delNetworkList(net, { containerID: pod.containerID, netns: pod.netns, ifname: "eth0" });
      } catch (e) {
        errors.push(`DEL ${pod.name}: ${(e as Error).message}`);
      }
      pod.delMs = Math.round(performance.now() - d0);
    }
    const nodeLinks = await links(node.name);
    const text = await natText(node.path);
    afterDel = {
      veths: nodeLinks.filter((l) => l.kind === "veth").map((l) => l.name),
      reservations: reservations(dataDir, net.name).map((r) => r.ip),
      cacheEntries: listCache(cacheDir).length,
      natMentions: pods
        .flatMap((p) => p.ips.map((ip) => natMentions(text, ip.split("/")[0]!)))
        .reduce((a, b) => a + b, 0),
    };
    if (afterDel.veths.length || afterDel.reservations.length || afterDel.cacheEntries || afterDel.natMentions)
      errors.push(`left after DEL: ${JSON.stringify(afterDel)}`);
    log(`DEL all: left ${JSON.stringify(afterDel)}`);
  } catch (e) {
    errors.push(`sample: ${(e as Error).message}`);
  } finally {
    sandbox.cleanupSync();
  }
  const leftovers = sandbox.leftovers();
  if (leftovers.length) errors.push(`sandbox leftovers: ${leftovers.join(", ")}`);
  return {
    ok: errors.length === 0,
    plugins: { dir: set.dir, impl: set.impl, about: set.about },
    network,
    node: nodeName,
    pods,
    addResult,
    pings,
    afterDel,
    leftovers,
    errors,
    durationMs: Math.round(performance.now() - t0),
  };
}

/** True when the sample's case is present (the demo can say why it cannot run otherwise). */
export function sampleAvailable(casesDir = "conformance/cases"): boolean {
  return (
    existsSync(join(resolve(casesDir), "kubenet-style", "net.d")) &&
    readdirSync(join(resolve(casesDir), "kubenet-style", "net.d")).length > 0
  );
}
