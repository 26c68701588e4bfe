/**
 * The runtime side of CNI as a library, for conformance runs: load a config directory like go-cni/libcni and
 * drive plugins through ADD/CHECK/DEL/GC/STATUS/VERSION exactly as a libcni-based runtime would.
 *
 * @example
 *   import { CniRuntime, loadConfDir } from "./conformance/runner/index.js";
 *   const cni = new CniRuntime({ cniPath: ["/opt/cni/bin"], cacheDir: "/run/cni-test" });
 *   await cni.addNetworkList(loadConfDir("/etc/cni/net.d"), { containerID: "c1", netns: "/var/run/netns/c1", ifname: "eth0" });
 */
export {
  CACHE_KIND,
  cachePath,
  DEFAULT_CACHE_DIR,
  decodeCache,
  encodeCache,
  listCache,
  readCache,
  type CacheEntry,
  type CacheHit,
} from "./cache.js";
export { confFiles, loadConfDir, loadConfFile, loadConfList, parsePluginConf, type NetworkConfigList } from "./conf.js";
export { PluginError, type PluginErrorInit, type Verb } from "./errors.js";
export {
  DEFAULT_PLUGIN_PATH,
  DEFAULT_TIMEOUT_MS,
  decodeFailure,
  execPlugin,
  findInPath,
  pluginEnv,
  type CniParams,
  type ExecTarget,
} from "./exec.js";
export { decodeVersionInfo, probeVersion, type VersionInfo } from "./probe.js";
export { buildRequest, matchCapabilities } from "./request.js";
export { convertCachedResult, decodeResult } from "./result.js";
export {
  CniRuntime,
  type CachedAttachment,
  type GCAttachment,
  type RuntimeConf,
  type RuntimeOptions,
} from "./runtime.js";
export { negotiateVersion, normalizeVersion, versionGate } from "./version.js";
