/**
 * A step's expectations on the kernel and the disk after its action: links, addresses, routes and sysctls of the
 * pod and node namespaces, the node's nat rules, pings and connections through the pods, what DEL/GC must have
 * removed, host-local reservations and result cache entries. Each check appends its mismatches to the step's
 * record in a fixed order (the order of the output lines); the resolving of names and addresses is pure and
 * exported for tests.
 */
import { existsSync } from "node:fs";
import { parseIP } from "../../lib/cidr.js";
import { cachePath, listCache, type NetworkConfigList } from "../runner/index.js";
import { attachmentKey, type Attachment, type CaseEnv, type StepPlan } from "./context.js";
import { connect, natMentions, ping, sysctls, type KLink } from "./kernel.js";
import type { KernelCache } from "./kernel-cache.js";
import { addressMatches, matchLink, matchRoutes, resultAddresses, resultGateway, resultMac } from "./match.js";
import type { StepRecord } from "./outcome.js";
import { reservations } from "./reservations.js";
import { CONNECT_TO, type ConnectExpect, type Expect, type NsExpect, type PingExpect } from "./schema.js";
import { OUTSIDE4, OUTSIDE6 } from "./topology.js";

/** What one step's kernel checks work on and write to. */
export interface CheckContext {
  plan: StepPlan;
  env: CaseEnv;
  /** The network the action loaded, if any. */
  list?: NetworkConfigList;
  k: KernelCache;
  rec: StepRecord;
}

/** Where `$veth` names resolve: the step's pod interface, and every pod's last ADD. */
export interface VethRefs {
  stepPod?: string;
  ifname: string;
  attachments: Map<string, Attachment>;
}

/**
 * A link name of an expectation resolved: "$veth" is the host veth of the step's pod interface, "$veth(b)" that of
 * pod b's eth0; undefined when that ADD gave no host veth. Other names are themselves.
 */
export function vethOf(name: string, refs: VethRefs): string | undefined {
  const m = /^\$veth(?:\((\w+)\))?$/.exec(name);
  if (!m) return name;
  const p = m[1] ?? refs.stepPod;
  return refs.attachments.get(`${p}/${m[1] ? "eth0" : refs.ifname}`)?.hostVeth;
}

/**
 * The MAC an ADD result gives link `name` (for `macFromResult`): from the namespace's own attachment `a`, else, for
 * a `$veth` name, from the eth0 attachment of the pod it names (the step's pod for a bare "$veth").
 */
export function linkMac(pattern: string, name: string, a: Attachment | undefined, refs: VethRefs): string | undefined {
  return (
    resultMac(a?.result, name) ??
    (pattern.startsWith("$veth")
      ? resultMac(refs.attachments.get(`${(/\((\w+)\)/.exec(pattern) ?? [])[1] ?? refs.stepPod}/eth0`)?.result, name)
      : undefined)
  );
}

/** The link expectations of a namespace (links, absent, addresses, veths) against its links `ls`. */
export function matchNsLinks(
  want: NsExpect,
  ls: KLink[],
  where: string,
  a: Attachment | undefined,
  refs: VethRefs,
): string[] {
  const reasons: string[] = [];
  for (const l of want.links ?? []) {
    const name = vethOf(l.name, refs);
    if (!name) reasons.push(`${where}: ${l.name} unknown (no ADD result with a host veth)`);
    else reasons.push(...matchLink(l, name, ls, where, linkMac(l.name, name, a, refs)));
  }
  for (const n of want.absent ?? []) {
    const name = vethOf(n, refs);
    if (name && ls.some((x) => x.name === name)) reasons.push(`${where}: link ${name} present, expected absent`);
  }
  for (const a2 of want.addresses ?? [])
    if (!ls.some((l) => l.addresses.some((x) => addressMatches(a2, x)))) reasons.push(`${where}: no address ${a2}`);
  if (want.veths !== undefined) {
    const n = ls.filter((l) => l.kind === "veth" && l.name !== "uplink0").length;
    if (n !== want.veths)
      reasons.push(
        `${where}: ${n} veth links, expected ${want.veths} (${ls
          .filter((l) => l.kind === "veth")
          .map((l) => l.name)
          .join(", ")})`,
      );
  }
  return reasons;
}

function refsOf(c: CheckContext): VethRefs {
  return { stepPod: c.plan.step.pod, ifname: c.plan.ifname, attachments: c.env.attachments };
}

/** One namespace's expectations (links, routes, sysctls); `a` is the attachment whose result names its MACs. */
async function checkNamespace(
  c: CheckContext,
  want: NsExpect | undefined,
  ns: string,
  path: string,
  where: string,
  a: Attachment | undefined,
): Promise<void> {
  if (!want) return;
  const { k, rec } = c;
  if (want.links || want.absent || want.addresses || want.veths !== undefined)
    rec.reasons.push(...matchNsLinks(want, await k.links(ns), where, a, refsOf(c)));
  if (want.routes || want.noRoutes)
    rec.reasons.push(...matchRoutes(want.routes, want.noRoutes, await k.routes(ns), `${where} routes`));
  if (want.sysctls) {
    const got = await sysctls(path, Object.keys(want.sysctls));
    for (const [key, v] of Object.entries(want.sysctls))
      if (got[key] !== v) rec.reasons.push(`${where}: sysctl ${key} = ${got[key]}, expected ${v}`);
  }
}

/** `pod`, `pods` and `node` (with its nat check) of the expectation. */
async function checkNamespaces(c: CheckContext): Promise<void> {
  const { plan, env, k, rec } = c;
  const { expect, pod, node, step: s } = plan;
  const att = env.attachments.get(plan.key);
  if (expect.pod) {
    if (!pod) rec.reasons.push("expect.pod needs a step pod");
    else if (pod.deleted) rec.reasons.push(`expect.pod: the namespace of ${pod.name} was deleted`);
    else await checkNamespace(c, expect.pod, pod.ns, pod.path, `pod ${pod.name}`, att);
  }
  for (const [pn, want] of Object.entries(expect.pods ?? {})) {
    const p = env.pods.get(pn)!;
    if (p.deleted) rec.reasons.push(`expect.pods.${pn}: namespace deleted`);
    else await checkNamespace(c, want, p.ns, p.path, `pod ${pn}`, env.attachments.get(attachmentKey(pn, "eth0")));
  }
  if (expect.node) {
    await checkNamespace(c, expect.node, node.ns, node.path, `node ${node.def.name}`, att);
    if (expect.node.nat !== undefined) {
      const ips = resultAddresses(att?.result).map((x) => x.split("/")[0]!);
      if (ips.length === 0) rec.reasons.push(`node nat: no addresses known for ${s.pod ?? "(no pod)"}`);
      const text = await k.nat(node.path);
      for (const ip of ips) {
        const n = natMentions(text, ip);
        if (expect.node.nat && n === 0) rec.reasons.push(`node nat: no rule or element for ${ip}`);
        if (!expect.node.nat && n > 0) rec.reasons.push(`node nat: ${n} rule(s) still mention ${ip}`);
      }
    }
  }
}

/**
 * The address a ping goes to: a pod's address of the family (from its eth0 ADD result), the pinging pod's gateway,
 * the outside host, the pinging pod's node on the underlay, or a literal address; undefined when not known.
 */
export function pingAddress(p: PingExpect, env: CaseEnv): string | undefined {
  const fam = p.family ?? 4;
  if (env.pods.has(p.to))
    return resultAddresses(env.attachments.get(attachmentKey(p.to, "eth0"))?.result)
      .map((x) => x.split("/")[0]!)
      .find((x) => (x.includes(":") ? 6 : 4) === fam);
  if (p.to === "gateway") return resultGateway(env.attachments.get(attachmentKey(p.from, "eth0"))?.result, fam);
  if (p.to === "outside") return env.outsidePath !== undefined ? (fam === 4 ? OUTSIDE4 : OUTSIDE6) : undefined;
  if (p.to === "node") {
    const node = env.pods.get(p.from)!.node;
    return fam === 4 ? node.underlay4 : node.underlay6;
  }
  if (parseIP(p.to)) return p.to;
  return undefined;
}

async function checkPings(c: CheckContext): Promise<void> {
  const { env, rec } = c;
  for (const p of c.plan.expect.ping ?? []) {
    const from = env.pods.get(p.from)!;
    const addr = pingAddress(p, env);
    if (!addr) {
      rec.reasons.push(`ping ${p.from} -> ${p.to}: no IPv${p.family ?? 4} address known for ${p.to}`);
      continue;
    }
    const wantOk = p.ok ?? true;
    const r = await ping(from.path, addr, wantOk);
    rec.pings.push({
      from: p.from,
      to: p.to,
      address: addr,
      ok: r.ok,
      ...(r.rttMs !== undefined ? { rttMs: r.rttMs } : {}),
    });
    if (r.ok !== wantOk)
      rec.reasons.push(
        `ping ${p.from} -> ${p.to} (${addr}): ${r.ok ? "answered, expected no answer" : `no answer (${r.output.split("\n").slice(-2).join(" / ")})`}`,
      );
  }
}

/** A connect check resolved: where the listener and the client run and where the client connects, or why not. */
export type ConnectTarget =
  | { what: string; error: string }
  | { what: string; error?: undefined; listenPath: string; fromPath: string; host: string; port: string };

/** Resolve a connect expectation against the case environment (pure). */
export function connectTarget(cx: ConnectExpect, env: CaseEnv): ConnectTarget {
  const lp = env.pods.get(cx.listen)!;
  const what = `connect ${cx.proto} ${cx.from} -> ${cx.to} (listener in ${cx.listen}:${cx.port})`;
  if (lp.deleted) return { what, error: `${what}: the namespace of ${cx.listen} was deleted` };
  const fromPath =
    cx.from === "outside" ? env.outsidePath : cx.from === "node" ? lp.node.path : env.pods.get(cx.from)?.path;
  const m = CONNECT_TO.exec(cx.to)!;
  const host =
    m[1] === "node" ? ((cx.family ?? 4) === 4 ? lp.node.underlay4 : lp.node.underlay6) : m[1]!.replace(/^\[|\]$/g, "");
  if (!fromPath || !host)
    return {
      what,
      error: `${what}: ${!fromPath ? `no namespace for ${cx.from} (outside needs topology.outside)` : "the node has no underlay address (needs topology.outside or two nodes)"}`,
    };
  return { what, listenPath: lp.path, fromPath, host, port: m[2]! };
}

async function checkConnects(c: CheckContext): Promise<void> {
  const { env, rec } = c;
  for (const cx of c.plan.expect.connect ?? []) {
    const t = connectTarget(cx, env);
    if (t.error !== undefined) {
      rec.reasons.push(t.error);
      continue;
    }
    const wantOk = cx.ok ?? true;
    const r = await connect(t.listenPath, cx.port, t.fromPath, t.host, Number(t.port), cx.proto, wantOk);
    rec.connects.push({
      listen: cx.listen,
      from: cx.from,
      to: `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`,
      proto: cx.proto,
      ok: r.ok,
    });
    if (r.ok !== wantOk)
      rec.reasons.push(
        `${t.what} [${t.host}]: ${r.ok ? "answered, expected no answer" : `no answer (${r.output || "nothing"})`}`,
      );
  }
}

/** The pods `gone` applies to: `goneFor`, else the step's pod; none without `gone`. */
export function gonePods(expect: Expect, stepPod: string | undefined): string[] {
  return expect.gone ? (expect.goneFor ?? (stepPod ? [stepPod] : [])) : [];
}

async function checkGone(c: CheckContext): Promise<void> {
  const { plan, env, k, rec } = c;
  const g = plan.expect.gone!;
  for (const pn of gonePods(plan.expect, plan.step.pod)) {
    const a = env.attachments.get(attachmentKey(pn, pn === plan.step.pod ? plan.ifname : "eth0"));
    const p = env.pods.get(pn)!;
    if (!a) {
      rec.reasons.push(`gone: ${pn} was never ADDed`);
      continue;
    }
    if (g.veth) {
      if (!a.hostVeth) rec.reasons.push(`gone.veth: no host veth known for ${pn} (use node.veths)`);
      else if ((await k.links(p.node.ns)).some((l) => l.name === a.hostVeth))
        rec.reasons.push(`gone.veth: ${a.hostVeth} of ${pn} still on node ${p.node.def.name}`);
    }
    if (g.podIf && !p.deleted && (await k.links(p.ns)).some((l) => l.name === a.ifname))
      rec.reasons.push(`gone.podIf: ${a.ifname} still in pod ${pn}`);
    if (g.reservations) {
      const held = reservations(p.node.dataDir, a.network).filter((r) => r.owner === p.containerID);
      if (held.length > 0)
        rec.reasons.push(`gone.reservations: ${held.map((r) => r.ip).join(", ")} still reserved for ${pn}`);
    }
    if (g.cache && existsSync(cachePath(p.node.cacheDir, a.network, p.containerID, a.ifname)))
      rec.reasons.push(`gone.cache: result cache of ${pn} still present`);
    if (g.nat) {
      const text = await k.nat(p.node.path);
      for (const ip of resultAddresses(a.result).map((x) => x.split("/")[0]!)) {
        const n = natMentions(text, ip);
        if (n > 0) rec.reasons.push(`gone.nat: ${n} nat rule(s)/element(s) still mention ${ip} of ${pn}`);
      }
    }
  }
}

/** `reservations` (in the dataDir of the step's network) and `cacheEntries` (the node's result cache). */
function checkCounts(c: CheckContext): void {
  const { plan, env, list, rec } = c;
  const { expect, node } = plan;
  if (expect.reservations !== undefined) {
    const name = list?.name ?? env.attachments.get(plan.key)?.network;
    const n = name ? reservations(node.dataDir, name).length : 0;
    if (n !== expect.reservations)
      rec.reasons.push(`reservations: ${n} in ${node.dataDir}/${name}, expected ${expect.reservations}`);
  }
  if (expect.cacheEntries !== undefined) {
    const n = listCache(node.cacheDir).length;
    if (n !== expect.cacheEntries) rec.reasons.push(`cache: ${n} entries, expected ${expect.cacheEntries}`);
  }
}

/** Every kernel and disk expectation of the step, in output order: namespaces, pings, connects, gone, counts. */
export async function checkKernel(c: CheckContext): Promise<void> {
  await checkNamespaces(c);
  await checkPings(c);
  await checkConnects(c);
  await checkGone(c);
  checkCounts(c);
}
