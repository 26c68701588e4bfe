/**
 * The `tuning` plugin: chained after the main plugin, it sets network sysctls inside the pod and changes the pod
 * interface's MAC, MTU, promiscuous and all-multicast modes and transmit queue length; DEL puts back the interface
 * attributes (not the sysctls, as in the reference). A drop-in for the reference `tuning`: every key means the
 * same. See docs/tuning.md.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import { netnsForDel } from "../../lib/netns.js";
import type { CmdContext, PluginDefinition } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { requirePrevResult } from "../../lib/version.js";
import { readAllowlist, checkAllowlist } from "./allowlist.js";
import { PendingBackup, backupPath, readBackup, removeBackup, type Backup } from "./backup.js";
import {
  TUNING_CONF_SHAPE,
  changesLink,
  loadTuningConfig,
  parseDataDir,
  type LinkSettings,
  type TuningConfig,
} from "./config.js";
import { applyInPod, readPod, restoreTokens, setLinkInPod, type LinkState } from "./pod.js";

function requirePrev(ctx: CmdContext): Result {
  return requirePrevResult(
    ctx.config,
    ctx.version,
    "Required prevResult missing",
    "tuning runs chained after the plugin that creates the interface",
  );
}

/** The config, with the node's sysctl allowlist applied (read only when the config sets sysctls). */
function load(ctx: CmdContext): TuningConfig {
  const conf = loadTuningConfig(ctx.config, ctx.args, ctx.ifname);
  if (conf.sysctls.length > 0)
    checkAllowlist(
      conf.sysctls.map((s) => s.key),
      readAllowlist(),
    );
  return conf;
}

/** `ip link set` arguments for what the config asks (promisc only ever turned on, as in the reference). */
export function linkTokens(s: LinkSettings): string[] {
  const t: string[] = [];
  if (s.mac) t.push("address", s.mac);
  if (s.mtu) t.push("mtu", String(s.mtu));
  if (s.promisc) t.push("promisc", "on");
  if (s.allmulti !== undefined) t.push("allmulticast", s.allmulti ? "on" : "off");
  if (s.txQLen !== undefined) t.push("txqueuelen", String(s.txQLen));
  return t;
}

/** The old values of exactly the attributes the config changes (the reference's configToRestore). */
export function backupOf(s: LinkSettings, old: LinkState): Backup {
  const b: Backup = {};
  if (s.mac) b.mac = old.mac;
  if (s.promisc) b.promisc = old.promisc;
  if (s.mtu) b.mtu = old.mtu;
  if (s.allmulti !== undefined) b.allmulti = old.allmulti;
  if (s.txQLen !== undefined) b.txQLen = old.txQLen;
  return b;
}

async function add(ctx: CmdContext): Promise<Result> {
  const conf = load(ctx);
  const prev = requirePrev(ctx);
  const link = changesLink(conf);
  // Opened before the pod changes: a data directory that cannot hold the backup fails the ADD with nothing changed.
  const pending = link
    ? new PendingBackup(backupPath(conf.dataDir, ctx.containerID, ctx.ifname), conf.dataDir)
    : undefined;
  try {
    const before = await applyInPod(ctx.netns, ctx.ifname, { sysctls: conf.sysctls, link: linkTokens(conf) });
    if (pending && before.link) pending.commit(backupOf(conf, before.link));
  } catch (e) {
    pending?.abandon();
    throw e;
  }
  if (conf.mac) {
    for (const i of prev.interfaces ?? []) if (i.name === ctx.ifname) i.mac = conf.mac;
  }
  return prev;
}

/**
 * DEL: put back what the backup holds, then drop it. Only `dataDir` of the config matters here, so a config that
 * ADD would refuse still cleans up. Without a backup there is nothing to do and no process runs; with the
 * namespace or the interface gone there is nothing left to restore, and the backup goes too.
 */
async function del(ctx: CmdContext): Promise<void> {
  const path = backupPath(parseDataDir(ctx.config), ctx.containerID, ctx.ifname);
  const backup = readBackup(path);
  if (backup === undefined) {
    removeBackup(path);
    return;
  }
  if (netnsForDel(ctx.netns) === "gone") return removeBackup(path);
  try {
    await setLinkInPod(ctx.netns, ctx.ifname, restoreTokens(backup));
  } catch (e) {
    // The reference reports success here too; the backup stays for a later DEL.
    log.warn(`tuning DEL: ${(e as Error).message}`);
    return;
  }
  removeBackup(path);
}

/** The first difference between the config and the pod, in the reference's order and words. */
export function checkProblem(
  conf: TuningConfig,
  ifname: string,
  sysctls: readonly string[],
  link: LinkState,
): string | undefined {
  for (const [i, s] of conf.sysctls.entries()) {
    if (sysctls[i] !== s.value)
      return `Tuning configured value of ${s.path} is ${s.value}, current value is ${sysctls[i] ?? "unreadable"}`;
  }
  if (conf.mac && conf.mac !== link.mac)
    return `Tuning configured Ethernet of ${ifname} is ${conf.mac}, current value is ${link.mac}`;
  if (conf.promisc !== link.promisc)
    return `Tuning link ${ifname} configured promisc is ${conf.promisc}, current value is ${link.promisc ? 1 : 0}`;
  if (conf.mtu && conf.mtu !== link.mtu)
    return `Tuning configured MTU of ${ifname} is ${conf.mtu}, current value is ${link.mtu}`;
  if (conf.allmulti !== undefined && conf.allmulti !== link.allmulti) {
    return `Tuning configured all-multicast mode of ${ifname} is ${conf.allmulti}, current value is ${link.allmulti}`;
  }
  if (conf.txQLen !== undefined && conf.txQLen !== link.txQLen) {
    return `Tuning configured Transmit Queue Length of ${ifname} is ${conf.txQLen}, current value is ${link.txQLen}`;
  }
  return undefined;
}

/** CHECK: the live sysctls and attributes against the config (code 103 on the first difference). */
async function check(ctx: CmdContext): Promise<void> {
  const conf = load(ctx);
  requirePrev(ctx);
  const pod = await readPod(
    ctx.netns,
    ctx.ifname,
    conf.sysctls.map((s) => s.path),
  );
  const problem = checkProblem(conf, ctx.ifname, pod.sysctls, pod.link!);
  if (problem)
    throw new CniError(
      ErrorCode.CheckFailed,
      `Error: ${problem}`,
      `attachment ${ctx.containerID}/${ctx.ifname} of network ${conf.name}`,
    );
}

/** The tuning plugin definition for the multi-call executable. */
export const tuning: PluginDefinition = {
  name: "tuning",
  about:
    "CNI tuning plugin (cni-ts): pod sysctls (net.*), MAC, MTU, promisc, allmulti, txqueuelen, chained after the main plugin",
  netns: "required",
  argsKeys: ["MAC"],
  config: TUNING_CONF_SHAPE,
  add,
  del,
  check,
};
