/**
 * A step's action: the CNI call (ADD/CHECK/DEL/GC/STATUS through the runtime as libcni runs them, or sent to one
 * plugin directly; VERSION) or the harness action (NETNS-DEL, CACHE-DROP, AGE, EXEC, ASSERT), and what it tells
 * later steps (the attachment an ADD made). The action never throws: a failure is an Observation with ok false.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { CniError } from "../../lib/errors.js";
import {
  buildRequest,
  cachePath,
  decodeVersionInfo,
  execPlugin,
  findInPath,
  loadConfDir,
  loadConfFile,
  PluginError,
  pluginEnv,
  type NetworkConfigList,
  type RuntimeConf,
  type Verb,
} from "../runner/index.js";
import type { Attachment, CaseEnv, NodeEnv, PodEnv, RunContext, StepPlan } from "./context.js";
import { resultHostVeth } from "./match.js";
import type { Observation } from "./outcome.js";
import type { StepDef } from "./schema.js";
import { ipq, PATH } from "./topology.js";

type J = Record<string, unknown>;

/** What the action answered, and the network it loaded (undefined when it loaded none or loading failed). */
export interface ActionResult {
  obs: Observation;
  list?: NetworkConfigList;
}

/** The node's network: the file `network` of its config directory, else the directory's default network. */
function loadNet(node: NodeEnv, network?: string): NetworkConfigList {
  return network ? loadConfFile(join(node.confDir, network)) : loadConfDir(node.confDir);
}

/** A failure of the action as an observation: a plugin's error, the runtime's, or several DELs' (GC). */
export function errorObservation(e: unknown): Observation {
  if (e instanceof PluginError)
    return { ok: false, code: e.code, msg: e.details ? `${e.msg}; ${e.details}` : e.msg, plugin: e.plugin };
  if (e instanceof CniError)
    return { ok: false, code: e.code, msg: e.details ? `${e.message}; ${e.details}` : e.message, runtimeError: true };
  if (e instanceof AggregateError) {
    const first = e.errors
      .map((x) => (x instanceof Error && x.cause instanceof PluginError ? x.cause : x))
      .find((x) => x instanceof PluginError) as PluginError | undefined;
    return {
      ok: false,
      msg: e.message,
      ...(first ? { code: first.code, plugin: first.plugin } : { runtimeError: true }),
    };
  }
  return { ok: false, msg: e instanceof Error ? e.message : String(e), runtimeError: true };
}

/** Run the step's action; every failure, the harness's own included, lands in the observation. */
export async function runAction(plan: StepPlan, env: CaseEnv, ctx: RunContext): Promise<ActionResult> {
  const { step: s, pod, node, ifname, key } = plan;
  let list: NetworkConfigList | undefined;
  let obs: Observation = { ok: true };
  try {
    if (s.verb === "NETNS-DEL") {
      ctx.sandbox.delNetns(pod!.ns);
      pod!.deleted = true;
      await vethGone(node.ns, env.attachments.get(key)?.hostVeth);
    } else if (s.verb === "CACHE-DROP") {
      list = loadNet(node, s.network);
      rmSync(cachePath(node.cacheDir, list.name, pod!.containerID, ifname), { force: true });
    } else if (s.verb === "AGE") {
      ageTree(node.dataDir, s.seconds! * 1000);
    } else if (s.verb === "EXEC") {
      const veth = env.attachments.get(key)?.hostVeth;
      ipq(["-n", pod && !s.node ? pod.ns : node.ns, ...execArgs(s.ip!, veth)]);
    } else if (s.verb === "ASSERT") {
      try {
        list = loadNet(node, s.network);
      } catch {
        list = undefined;
      }
    } else if (s.verb === "VERSION") {
      obs = await version(s, node, ctx);
    } else {
      list = loadNet(node, s.network);
      if (s.via === "plugin") obs = await direct(s, list, node, pod, ifname, env.attachments.get(key), env, ctx);
      else obs = await viaRuntime(s, list, node, pod, ifname, env);
    }
  } catch (e) {
    obs = errorObservation(e);
  }
  return { obs, ...(list ? { list } : {}) };
}

/** EXEC's `ip` arguments with the word "$veth" replaced by the pod's host veth (kept when none is known). */
export function execArgs(ip: string[], veth: string | undefined): string[] {
  return ip.map((a) => (a === "$veth" ? (veth ?? "$veth") : a));
}

/** VERSION: the plugin run inside the node namespace with `{"cniVersion": ...}` on stdin. */
async function version(s: StepDef, node: NodeEnv, ctx: RunContext): Promise<Observation> {
  const file = findInPath(s.plugin!, [ctx.plugins.dir]);
  const out = await execPlugin(
    file,
    Buffer.from(JSON.stringify({ cniVersion: s.cniVersion ?? "1.1.0" })),
    pluginEnv({ PATH }, { command: "VERSION", path: ctx.plugins.dir }),
    { plugin: s.plugin!, verb: "VERSION", wrapper: node.wrapper, timeoutMs: 20_000 },
  );
  const info = decodeVersionInfo(out);
  return {
    ok: true,
    version: { supportedVersions: info.supportedVersions, ...(info.cniVersion ? { cniVersion: info.cniVersion } : {}) },
  };
}

/** GC's valid attachments: pod names (interface eth0) or {pod, ifname}, as container IDs. */
export function validAttachments(
  valid: NonNullable<StepDef["valid"]>,
  pods: Map<string, PodEnv>,
): Array<{ containerID: string; ifname: string }> {
  return valid.map((v) => ({
    containerID: pods.get(typeof v === "string" ? v : v.pod)!.containerID,
    ifname: typeof v === "string" ? "eth0" : (v.ifname ?? "eth0"),
  }));
}

/** The verbs through the runtime, as libcni would run them (result cache, version gates and all). */
async function viaRuntime(
  s: StepDef,
  list: NetworkConfigList,
  node: NodeEnv,
  pod: PodEnv | undefined,
  ifname: string,
  env: CaseEnv,
): Promise<Observation> {
  const rt = (): RuntimeConf => ({
    containerID: pod!.containerID,
    netns: s.netns ?? pod!.path,
    ifname,
    ...(s.args ? { args: s.args } : {}),
    ...(s.capabilityArgs ? { capabilityArgs: s.capabilityArgs } : {}),
  });
  switch (s.verb) {
    case "ADD":
      return { ok: true, result: await node.runtime.addNetworkList(list, rt()) };
    case "CHECK":
      await node.runtime.checkNetworkList(list, rt());
      return { ok: true };
    case "DEL":
      await node.runtime.delNetworkList(list, rt());
      return { ok: true };
    case "GC":
      await node.runtime.gcNetworkList(list, s.valid ? validAttachments(s.valid, env.pods) : undefined);
      return { ok: true };
    case "STATUS":
      await node.runtime.getStatusNetworkList(list);
      return { ok: true };
    default:
      throw new Error(`verb ${s.verb} cannot go through the runtime`);
  }
}

/** A direct call: the plugin's type, the verb, its stdin and the CNI_* parameters besides the command and path. */
export interface DirectCall {
  type: string;
  verb: Verb;
  stdin: Buffer;
  params: { containerID?: string; netns?: string; ifname?: string; args?: Array<[string, string]> };
}

/**
 * The request libcni would build for one plugin (the step's `plugin`, default the first): the network's name and
 * cniVersion (or the step's), prevResult from the last ADD for CHECK/DEL, the valid list for GC, capability args
 * except for GC/STATUS; pod parameters except for GC/STATUS.
 */
export function directCall(
  s: StepDef,
  list: NetworkConfigList,
  pod: PodEnv | undefined,
  ifname: string,
  a: Attachment | undefined,
  pods: Map<string, PodEnv>,
): DirectCall {
  const plugin = (s.plugin ? list.plugins.find((p) => p.type === s.plugin) : list.plugins[0]) ?? list.plugins[0]!;
  const type = String(plugin.type ?? "");
  const verb = s.verb as Verb;
  const inject: J = { name: list.name, cniVersion: s.cniVersion ?? list.cniVersion };
  if ((verb === "CHECK" || verb === "DEL") && a?.result) inject.prevResult = a.result;
  if (verb === "GC") {
    const valid = validAttachments(s.valid ?? [], pods);
    inject["cni.dev/valid-attachments"] = valid;
    inject["cni.dev/attachments"] = valid;
  }
  const stdin = buildRequest(plugin, inject, verb === "GC" || verb === "STATUS" ? undefined : (s.capabilityArgs ?? {}));
  const params =
    pod && verb !== "GC" && verb !== "STATUS"
      ? { containerID: pod.containerID, netns: s.netns ?? pod.path, ifname, args: s.args ?? [] }
      : {};
  return { type, verb, stdin, params };
}

/** One plugin executed directly inside the node namespace with the request libcni would build (no runtime gates). */
async function direct(
  s: StepDef,
  list: NetworkConfigList,
  node: NodeEnv,
  pod: PodEnv | undefined,
  ifname: string,
  a: Attachment | undefined,
  env: CaseEnv,
  ctx: RunContext,
): Promise<Observation> {
  const { type, verb, stdin, params } = directCall(s, list, pod, ifname, a, env.pods);
  const file = findInPath(type, [ctx.plugins.dir]);
  const out = await execPlugin(file, stdin, pluginEnv({ PATH }, { command: verb, path: ctx.plugins.dir, ...params }), {
    plugin: type,
    verb,
    wrapper: node.wrapper,
    timeoutMs: ctx.timeoutMs ?? 60_000,
  });
  if (verb === "ADD") return { ok: true, result: JSON.parse(out) as J };
  return { ok: true };
}

/**
 * The attachments after an ADD of the step's pod interface: the new result and host veth when it succeeded; a
 * failed second ADD keeps what the first one created. Other steps leave them as they are.
 */
export function recordAttachment(
  attachments: Map<string, Attachment>,
  plan: StepPlan,
  list: NetworkConfigList | undefined,
  obs: Observation,
): void {
  const { step: s, pod, ifname, key } = plan;
  if (s.verb !== "ADD" || !pod || !list) return;
  const prev = attachments.get(key);
  const a: Attachment = { pod, ifname, network: list.name };
  if (obs.ok && obs.result) {
    a.result = obs.result;
    const hv = resultHostVeth(obs.result);
    if (hv) a.hostVeth = hv;
  } else if (prev) {
    Object.assign(a, { result: prev.result, hostVeth: prev.hostVeth });
  }
  attachments.set(key, a);
}

/**
 * "not implemented in this build": a plugin the case requires exists but its verbs have not landed. The reason
 * to skip the rest of the case, or undefined.
 */
export function notImplemented(
  obs: Observation,
  caseRequires: readonly string[],
  pluginDir: string,
): string | undefined {
  if (!obs.ok && obs.plugin && /not implemented/i.test(obs.msg ?? "") && caseRequires.includes(`plugin:${obs.plugin}`))
    return `plugin ${obs.plugin} in ${pluginDir}: ${obs.msg}`;
  return undefined;
}

/**
 * The kernel destroys a deleted namespace's devices asynchronously (and with them the host end of the pod's veth):
 * wait until the node no longer shows it, 3 s at most, so that what the step asserts is the settled state.
 */
async function vethGone(nodeNs: string, veth: string | undefined): Promise<void> {
  if (!veth) return;
  for (const deadline = Date.now() + 3000; Date.now() < deadline; ) {
    if (spawnSync("ip", ["-n", nodeNs, "link", "show", "dev", veth], { stdio: "ignore" }).status !== 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The AGE action: every file and directory under `dir` (symlinks untouched) changed `ms` earlier than it says. */
export function ageTree(dir: string, ms: number): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) ageTree(p, ms);
    utimesSync(p, new Date(st.atimeMs - ms), new Date(st.mtimeMs - ms));
  }
}
