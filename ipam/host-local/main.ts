/**
 * host-local: the IPAM plugin. Addresses from configured ranges, reserved on local disk (store.ts), in the
 * reference's order (allocator.ts) and format.
 *
 * ADD reserves one address per range set; DEL releases exactly the attachment (containerID, ifname) and always
 * succeeds; CHECK verifies the reservations and that they match prevResult; GC releases every reservation whose
 * attachment is not in the valid list; STATUS reports 50 when a range set has no free address.
 */
import { formatIP, parseIP } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import type { CmdContext, GcContext, PluginDefinition } from "../../lib/skel.js";
import type { Result } from "../../lib/types.js";
import { parseResult } from "../../lib/version.js";
import { allocate, hasFree } from "./allocator.js";
import { loadHostLocalConfig, loadStoreLocation } from "./config.js";
import { rangeSetToString } from "./range.js";
import { loadResolvConf } from "./resolvconf.js";
import { DiskStore } from "./store.js";

async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadHostLocalConfig(ctx.config, ctx.args.get("IP"));
  const dns = conf.resolvConf ? loadResolvConf(conf.resolvConf) : undefined;
  const store = DiskStore.open(conf.dataDir, conf.name, true)!;
  const ips = await store.locked(() => allocate(store, conf.rangeSets, conf.requestedIPs, ctx.containerID, ctx.ifname));
  const result: Result = { ips };
  if (conf.routes.length > 0) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

async function del(ctx: CmdContext): Promise<void> {
  const { dataDir, name } = loadStoreLocation(ctx.config);
  const store = DiskStore.open(dataDir, name, false);
  if (!store) return;
  const released = await store.locked(async () => store.releaseAttachment(ctx.containerID, ctx.ifname));
  log.debug(`host-local: released [${released.join(" ")}] of ${ctx.containerID}/${ctx.ifname}`);
}

/** The addresses prevResult says this attachment got, in canonical text (no prefix). */
function prevResultIPs(ctx: CmdContext): string[] {
  if (ctx.config.prevResult === undefined) return [];
  return (parseResult(ctx.config.prevResult, ctx.version).ips ?? []).map((ip) => {
    const a = parseIP(ip.address.split("/")[0] ?? "");
    return a ? formatIP(a) : ip.address;
  });
}

async function check(ctx: CmdContext): Promise<void> {
  const conf = loadHostLocalConfig(ctx.config, ctx.args.get("IP"));
  const store = DiskStore.open(conf.dataDir, conf.name, false);
  const held = store ? await store.locked(async () => store.held(ctx.containerID, ctx.ifname)) : [];
  if (held.length === 0) {
    throw new CniError(ErrorCode.CheckFailed, `host-local: Failed to find address added by container ${ctx.containerID}`, `no reservation for ${ctx.containerID}/${ctx.ifname} in ${conf.dataDir}/${conf.name}`);
  }
  const missing = prevResultIPs(ctx).filter((ip) => !held.includes(ip));
  if (missing.length > 0) {
    throw new CniError(ErrorCode.CheckFailed, `host-local: address ${missing.join(", ")} of prevResult is not reserved for ${ctx.containerID}/${ctx.ifname}`, `reserved: ${held.join(", ")}`);
  }
}

async function gc(ctx: GcContext): Promise<void> {
  const { dataDir, name } = loadStoreLocation(ctx.config);
  const store = DiskStore.open(dataDir, name, false);
  if (!store) return;
  const valid = ctx.validAttachments;
  if (valid === undefined) {
    log.warn("host-local: GC without cni.dev/valid-attachments: nothing released");
    return;
  }
  const live = new Set(valid.map((a) => `${a.containerID}\r\n${a.ifname}`));
  const liveIDs = new Set(valid.map((a) => a.containerID));
  await store.locked(async () => {
    const all = store.scan();
    // Legacy files name only a container: they stay while any attachment of that container is live.
    const stale = all.filter((r) => (r.ifname === undefined ? !liveIDs.has(r.id) : !live.has(`${r.id}\r\n${r.ifname}`)));
    for (const r of stale) await store.release(r.ip);
    store.rebuildIndex(all.filter((r) => !stale.includes(r)));
    if (stale.length > 0) log.debug(`host-local: GC released ${stale.map((r) => `${r.ip} (${r.id}/${r.ifname ?? ""})`).join(", ")}`);
  });
}

async function status(ctx: CmdContext): Promise<void> {
  const conf = loadHostLocalConfig(ctx.config, undefined);
  const store = DiskStore.open(conf.dataDir, conf.name, false);
  if (!store) return;
  for (const [i, set] of conf.rangeSets.entries()) {
    const last = await store.lastReserved(i);
    if (!(await hasFree(set, (ip) => store.isReserved(ip), last === undefined ? undefined : parseIP(last)))) {
      throw new CniError(ErrorCode.NotAvailable, `no IP addresses available in range set: ${rangeSetToString(set)}`, `network ${conf.name}, range set ${i}`);
    }
  }
}

export const hostLocal: PluginDefinition = {
  name: "host-local",
  about: "CNI host-local IPAM plugin (cni-ts): addresses from ranges, reserved on local disk",
  netns: "ignored",
  argsKeys: ["IP"],
  add,
  del,
  check,
  gc,
  status,
};
