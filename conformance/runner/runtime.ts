/**
 * The verbs on a network list, as libcni's `CNIConfig` runs them (libcni/api.go): ADD in order with prevResult
 * chaining and the result cache, CHECK and DEL from the cache, GC with synthesised DELs, STATUS, VERSION and
 * validation. One instance per CNI_PATH; it holds no state besides its options, the cache lives on disk.
 *
 * @example
 *   const cni = new CniRuntime({ cniPath: ["/opt/cni/bin"], cacheDir: "/tmp/cache" });
 *   const list = loadConfDir("/etc/cni/net.d");
 *   const rt = { containerID: "c1", netns: "/var/run/netns/c1", ifname: "eth0" };
 *   const result = await cni.addNetworkList(list, rt);
 *   await cni.checkNetworkList(list, rt);
 *   await cni.delNetworkList(list, rt);
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { validateContainerID, validateIfname, validateNetworkName } from "../../lib/validate.js";
import { DEFAULT_CACHE_DIR, deleteCache, listCache, readCache, writeCache } from "./cache.js";
import type { NetworkConfigList } from "./conf.js";
import { errorText, PluginError, type Verb } from "./errors.js";
import { execPlugin, findInPath, pluginEnv, type CniParams } from "./exec.js";
import { probeVersion, type VersionInfo } from "./probe.js";
import { buildRequest } from "./request.js";
import { convertCachedResult, decodeResult } from "./result.js";
import { versionGate, versionGateLenient } from "./version.js";

type Json = Record<string, unknown>;

/** The per-attachment parameters of one call (libcni `RuntimeConf`). */
export interface RuntimeConf {
  containerID: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs, sent as `k=v;k=v`. */
  args?: Array<[string, string]>;
  /** Capability arguments; each plugin gets those its `capabilities` enable, as `runtimeConfig`. */
  capabilityArgs?: Record<string, unknown>;
  /** Cache directory for this call; RuntimeOptions.cacheDir wins when both are set, as in libcni. */
  cacheDir?: string;
}

/** How plugins are found and run. */
export interface RuntimeOptions {
  /** CNI_PATH directories, searched in order. */
  cniPath: string[];
  /** Deadline of each plugin call; default 60 s. The plugin's whole process group is killed at it. */
  timeoutMs?: number;
  /** Base environment for plugins (PATH defaults to /usr/sbin:/usr/bin:/sbin:/bin); the runner's own is never passed. */
  env?: Record<string, string>;
  /** Result cache directory; default /var/lib/cni. */
  cacheDir?: string;
  /**
   * Command prefix every ADD/CHECK/DEL/GC/STATUS plugin run goes through (ExecTarget.wrapper), e.g.
   * `["nsenter", "--net=/var/run/netns/node1", "--"]` so the plugins run inside a node namespace. VERSION probes
   * (getVersionInfo, validateNetworkList) run without it: they touch nothing.
   */
  wrapper?: string[];
}

/** One attachment in `cni.dev/valid-attachments`. */
export interface GCAttachment {
  containerID: string;
  ifname: string;
}

/** An attachment the result cache knows about. */
export interface CachedAttachment {
  containerID: string;
  ifname: string;
  network: string;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  /** The list bytes the ADD ran with. */
  config: Buffer;
}

function pluginType(plugin: Json): string {
  return typeof plugin.type === "string" ? plugin.type : "";
}

function pluginName(plugin: Json): string | undefined {
  return typeof plugin.name === "string" && plugin.name !== "" ? plugin.name : undefined;
}

/** libcni's `plugin type="x" name="y" failed (verb): …` for failures that are not the plugin's own. */
function wrap(plugin: Json, verb: Verb, e: unknown): Error {
  if (e instanceof PluginError) return e;
  const name = pluginName(plugin);
  const named = name ? ` name=${JSON.stringify(name)}` : "";
  return new Error(
    `plugin type=${JSON.stringify(pluginType(plugin))}${named} failed (${verb.toLowerCase()}): ${errorText(e)}`,
    { cause: e },
  );
}

/** The libcni-compatible runtime: see the module comment. */
export class CniRuntime {
  private readonly opts: RuntimeOptions;

  /** Options are copied; the instance can be shared by concurrent calls for different attachments. */
  constructor(opts: RuntimeOptions) {
    this.opts = { ...opts, cniPath: [...opts.cniPath], ...(opts.wrapper ? { wrapper: [...opts.wrapper] } : {}) };
  }

  private cacheDir(rt?: RuntimeConf): string {
    return this.opts.cacheDir ?? rt?.cacheDir ?? DEFAULT_CACHE_DIR;
  }

  private params(verb: Verb, rt?: RuntimeConf): CniParams {
    const p: CniParams = { command: verb, path: this.opts.cniPath.join(":") };
    if (rt) Object.assign(p, { containerID: rt.containerID, netns: rt.netns, ifname: rt.ifname, args: rt.args ?? [] });
    return p;
  }

  /** Find and run one plugin; every failure comes back wrapped with the plugin and verb. */
  private async invoke(plugin: Json, verb: Verb, stdin: Buffer, rt?: RuntimeConf): Promise<string> {
    const type = pluginType(plugin);
    let file: string;
    try {
      file = findInPath(type, this.opts.cniPath);
    } catch (e) {
      throw wrap(plugin, verb, e);
    }
    const name = pluginName(plugin);
    const target = {
      plugin: type,
      verb,
      ...(name ? { name } : {}),
      ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}),
      ...(this.opts.wrapper ? { wrapper: this.opts.wrapper } : {}),
    };
    return execPlugin(file, stdin, pluginEnv(this.opts.env, this.params(verb, rt)), target);
  }

  /** Refuse parameters that would reach file names or plugins unsafely (lib/validate's rules and messages). */
  private validate(list: NetworkConfigList, rt: RuntimeConf): void {
    validateContainerID(rt.containerID);
    validateNetworkName(list.name);
    validateIfname(rt.ifname);
    if (list.plugins.length === 0) throw new Error("no plugin configs found");
  }

  /**
   * ADD every plugin in list order, each given the previous plugin's result as prevResult, and return the last
   * result (at the version the plugin answered in, normally the list's). The cache is written only after every
   * plugin succeeded; a failed cache write fails the ADD although the plugins ran, as in libcni.
   */
  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<Record<string, unknown>> {
    this.validate(list, rt);
    let result: Json | undefined;
    for (const plugin of list.plugins) {
      const stdin = buildRequest(
        plugin,
        { name: list.name, cniVersion: list.cniVersion, prevResult: result },
        rt.capabilityArgs ?? {},
      );
      const stdout = await this.invoke(plugin, "ADD", stdin, rt);
      try {
        result = decodeResult(stdout, list.cniVersion);
      } catch (e) {
        const err = e instanceof CniError ? e : new CniError(ErrorCode.DecodingFailure, errorText(e));
        const name = pluginName(plugin);
        throw new PluginError({
          plugin: pluginType(plugin),
          verb: "ADD",
          code: err.code,
          msg: err.message,
          details: err.details,
          raw: stdout,
          ...(name ? { name } : {}),
        });
      }
    }
    const final = result ?? {};
    try {
      writeCache(this.cacheDir(rt), {
        containerId: rt.containerID,
        ifName: rt.ifname,
        networkName: list.name,
        config: list.bytes,
        netns: rt.netns,
        ...(rt.args ? { cniArgs: rt.args } : {}),
        ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
        result: final,
      });
    } catch (e) {
      throw new Error(`failed to set network "${list.name}" cached result: ${errorText(e)}`, { cause: e });
    }
    return final;
  }

  /** The cached ADD result at the list version; undefined without a cache. Throws when unreadable or unconvertible. */
  private cachedResult(list: NetworkConfigList, rt: RuntimeConf): Json | undefined {
    const hit = readCache(this.cacheDir(rt), list.name, rt.containerID, rt.ifname);
    if (!hit) return undefined;
    if (!hit.legacy) return hit.entry.result ? convertCachedResult(hit.entry.result, list.cniVersion) : undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(hit.text);
    } catch (e) {
      throw new Error(`cached result is not JSON: ${errorText(e)}`);
    }
    return convertCachedResult(raw, list.cniVersion);
  }

  /**
   * CHECK every plugin in list order with the cached result as prevResult (none without a cache, and plugins
   * then fail); stdout is ignored; the first failure is thrown. Nothing runs when the list version is below 0.4.0
   * or disableCheck is set.
   */
  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (!versionGate(list.cniVersion, "0.4.0") || list.disableCheck) return;
    this.validate(list, rt);
    let prev: Json | undefined;
    try {
      prev = this.cachedResult(list, rt);
    } catch (e) {
      throw new Error(`failed to get network "${list.name}" cached result: ${errorText(e)}`, { cause: e });
    }
    for (const plugin of list.plugins) {
      const stdin = buildRequest(
        plugin,
        { name: list.name, cniVersion: list.cniVersion, prevResult: prev },
        rt.capabilityArgs ?? {},
      );
      await this.invoke(plugin, "CHECK", stdin, rt);
    }
  }

  /**
   * DEL every plugin in reverse order, each given the cached ADD result as prevResult when the list version is
   * 0.4.0 or newer. An unreadable or unconvertible cache is dropped and DEL goes on without prevResult. The first
   * failure stops the chain and keeps the cache; success removes it.
   */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.validate(list, rt);
    const cacheDir = this.cacheDir(rt);
    let prev: Json | undefined;
    if (versionGate(list.cniVersion, "0.4.0")) {
      try {
        prev = this.cachedResult(list, rt);
      } catch {
        deleteCache(cacheDir, list.name, rt.containerID, rt.ifname);
        prev = undefined;
      }
    }
    for (const plugin of [...list.plugins].reverse()) {
      const stdin = buildRequest(
        plugin,
        { name: list.name, cniVersion: list.cniVersion, prevResult: prev },
        rt.capabilityArgs ?? {},
      );
      await this.invoke(plugin, "DEL", stdin, rt);
    }
    deleteCache(cacheDir, list.name, rt.containerID, rt.ifname);
  }

  /**
   * GC (libcni `GCNetworkList`): unless disableGC, DEL every cached attachment of this network that is not in
   * `valid` (all of them when `valid` is undefined), rebuilt from the cache's netns, args and capability args;
   * then, at list version 1.1.0 or newer, send GC to every plugin with `cni.dev/valid-attachments` and
   * `cni.dev/attachments` (both, cni#1101; neither when `valid` is undefined). Every failure is collected and
   * thrown together as an AggregateError.
   */
  async gcNetworkList(list: NetworkConfigList, valid: GCAttachment[] | undefined): Promise<void> {
    if (list.disableGC) return;
    const keep = new Set((valid ?? []).map((a) => `${a.containerID}\u0000${a.ifname}`));
    const errors: Error[] = [];
    for (const a of this.getCachedAttachments(list.name)) {
      if (keep.has(`${a.containerID}\u0000${a.ifname}`)) continue;
      const rt: RuntimeConf = { containerID: a.containerID, netns: a.netns ?? "", ifname: a.ifname };
      if (a.cniArgs) rt.args = a.cniArgs;
      if (a.capabilityArgs) rt.capabilityArgs = a.capabilityArgs;
      try {
        await this.delNetworkList(list, rt);
      } catch (e) {
        errors.push(
          new Error(`failed to delete stale attachment ${a.containerID} ${a.ifname}: ${errorText(e)}`, { cause: e }),
        );
      }
    }
    if (versionGateLenient(list.cniVersion, "1.1.0")) {
      const attachments = valid?.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
      const inject = {
        name: list.name,
        cniVersion: list.cniVersion,
        "cni.dev/valid-attachments": attachments,
        "cni.dev/attachments": attachments,
      };
      for (const plugin of list.plugins) {
        try {
          await this.invoke(plugin, "GC", buildRequest(plugin, inject));
        } catch (e) {
          errors.push(new Error(`failed to GC plugin ${pluginType(plugin)}: ${errorText(e)}`, { cause: e }));
        }
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => e.message).join("\n"));
  }

  /** STATUS every plugin in list order (list version 1.1.0 or newer, else nothing runs); the first failure is thrown. */
  async getStatusNetworkList(list: NetworkConfigList): Promise<void> {
    if (!versionGateLenient(list.cniVersion, "1.1.0")) return;
    for (const plugin of list.plugins) {
      await this.invoke(plugin, "STATUS", buildRequest(plugin, { name: list.name, cniVersion: list.cniVersion }));
    }
  }

  /** The plugin's VERSION answer, probed as libcni probes (see probe.ts). */
  async getVersionInfo(pluginType: string): Promise<VersionInfo> {
    const file = findInPath(pluginType, this.opts.cniPath);
    return probeVersion(file, pluginType, this.opts.env, this.opts.timeoutMs);
  }

  /**
   * libcni `ValidateNetworkList`: every plugin is found and its VERSION answer lists the list version (an empty one
   * means 0.1.0). Returns the enabled capabilities of all plugins, sorted; all failures are thrown together.
   */
  async validateNetworkList(list: NetworkConfigList): Promise<string[]> {
    const expected = list.cniVersion || "0.1.0";
    const caps = new Set<string>();
    const errors: Error[] = [];
    for (const plugin of list.plugins) {
      const type = pluginType(plugin);
      try {
        const info = await this.getVersionInfo(type);
        if (!info.supportedVersions.includes(expected))
          errors.push(new Error(`plugin ${type} does not support config version "${expected}"`));
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
      const declared = plugin.capabilities;
      if (declared !== null && typeof declared === "object") {
        for (const [cap, enabled] of Object.entries(declared)) if (enabled === true) caps.add(cap);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `[${errors.map((e) => e.message).join(" ")}]`);
    return [...caps].sort();
  }

  /** The cache's attachments, in cache file name order; only `network`'s when given. */
  getCachedAttachments(network?: string): CachedAttachment[] {
    return listCache(this.cacheDir(), network).map((e) => {
      const a: CachedAttachment = {
        containerID: e.containerId,
        ifname: e.ifName,
        network: e.networkName,
        config: e.config,
      };
      if (e.netns) a.netns = e.netns;
      if (e.cniArgs) a.cniArgs = e.cniArgs;
      if (e.capabilityArgs) a.capabilityArgs = e.capabilityArgs;
      return a;
    });
  }
}
