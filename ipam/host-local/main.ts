/**
 * host-local: the IPAM plugin. Addresses from configured ranges, reserved on local disk (store.ts), in the
 * reference's order (allocator.ts) and format.
 *
 * ADD reserves one address per range set; DEL releases exactly the attachment (containerID, ifname) and always
 * succeeds; CHECK verifies the reservations and that they match prevResult; GC releases every reservation whose
 * attachment is not in the valid list; STATUS reports 50 when a range set has no free address. ADD and DEL also
 * sweep old tombstones from the index, at most once an hour per network (DiskStore.sweepTombstones).
 */
import { formatIP, parseIP } from "../../lib/cidr.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { log } from "../../lib/log.js";
import type { CmdContext, GcContext, PluginDefinition } from "../../lib/skel.js";
import type { IPConfig, Result } from "../../lib/types.js";
import { parseResult } from "../../lib/version.js";
import { randomBytes } from "../../lib/hash.js";
import { allocate, checkRequested, hasFree } from "./allocator.js";
import { HOST_LOCAL_CONF_SHAPE, loadHostLocalConfig, loadStoreLocation } from "./config.js";
import { rangeSetToString } from "./range.js";
import { loadResolvConf } from "./resolvconf.js";
import { collect } from "./gc.js";
import { DiskStore } from "./store.js";

/**
 * CNI_TS_IPAM_OWNER: set by cni-ts's bridge on its IPAM ADD and on the IPAM DEL of that ADD's rollback, so the
 * rollback releases exactly what its own ADD reserved (DiskStore.releaseOwned). Ours alone: the reference ignores it.
 */
const OWNER_ENV = "CNI_TS_IPAM_OWNER";

function ownerToken(ctx: CmdContext): string | undefined {
  const v = ctx.env[OWNER_ENV];
  if (v === undefined || v === "") return undefined;
  if (!/^[0-9a-f]{32}$/.test(v))
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `${OWNER_ENV} must be 32 lowercase hex digits`,
      `got ${JSON.stringify(v.slice(0, 40))}`,
    );
  return v;
}

async function add(ctx: CmdContext): Promise<Result> {
  const conf = loadHostLocalConfig(ctx.config, ctx.args.get("IP"));
  // Refused here, where the operator sees it, rather than by every later GC of the network.
  loadGcGraceSeconds(ctx.config);
  const owner = ownerToken(ctx) ?? randomBytes(16).toString("hex");
  // A requested IP outside every range, or a gateway, is refused before the store is even opened: nothing written.
  checkRequested(conf.rangeSets, conf.requestedIPs);
  const dns = conf.resolvConf ? loadResolvConf(conf.resolvConf) : undefined;
  const store = (await DiskStore.open(conf.dataDir, conf.name, true))!;
  await store.claim(ctx.containerID, ctx.ifname);
  store.begin(ctx.containerID, ctx.ifname, owner);
  let ips: IPConfig[];
  try {
    ips = await allocate(store, conf.rangeSets, conf.requestedIPs, ctx.containerID, ctx.ifname);
  } catch (e) {
    store.abort();
    throw e;
  }
  store.commit(ips.map((ip) => ip.address.split("/")[0]!));
  store.sweepTombstones();
  const result: Result = { ips };
  if (conf.routes.length > 0) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

/**
 * The addresses prevResult says this attachment got, in canonical text (no prefix). A prevResult that does not
 * decode is code 6 (what parseResult throws): CHECK must not pass on it. DEL catches it (see del).
 */
function prevResultIPs(ctx: CmdContext): string[] {
  if (ctx.config.prevResult === undefined) return [];
  let prev: Result;
  try {
    prev = parseResult(ctx.config.prevResult, ctx.version);
  } catch (e) {
    if (e instanceof CniError) throw new CniError(e.code, `could not parse prevResult: ${e.message}`, e.details);
    throw e;
  }
  return (prev.ips ?? []).flatMap((ip) => {
    const a = parseIP(ip.address.split("/")[0] ?? "");
    return a ? [formatIP(a)] : [];
  });
}

/** DEL's hints: a prevResult that does not decode is only a lost hint; DEL must not fail forever over it. */
function prevResultHints(ctx: CmdContext): string[] {
  try {
    return prevResultIPs(ctx);
  } catch (e) {
    log.warn(`host-local DEL: ${(e as Error).message}; releasing from the index alone`);
    return [];
  }
}

async function del(ctx: CmdContext): Promise<void> {
  const { dataDir, name } = loadStoreLocation(ctx.config);
  let store: DiskStore | undefined;
  try {
    store = await DiskStore.open(dataDir, name, false);
  } catch (e) {
    // DEL must not fail forever over a directory we refuse to touch (a planted symlink): say so and succeed.
    if (e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig) {
      log.warn(`host-local DEL: ${e.message}; nothing released`);
      return;
    }
    throw e;
  }
  if (!store) return;
  // A rollback of one ADD (our bridge's): only what that very ADD reserved, never by attachment.
  const owner = ownerToken(ctx);
  const released = owner
    ? store.releaseOwned(ctx.containerID, ctx.ifname, owner)
    : store.releaseAttachment(ctx.containerID, ctx.ifname, prevResultHints(ctx));
  store.sweepTombstones();
  log.debug(`host-local: released [${released.join(" ")}] of ${ctx.containerID}/${ctx.ifname}`);
}

async function check(ctx: CmdContext): Promise<void> {
  const conf = loadHostLocalConfig(ctx.config, ctx.args.get("IP"));
  const expected = prevResultIPs(ctx);
  const store = await DiskStore.open(conf.dataDir, conf.name, false);
  const held = store ? store.held(ctx.containerID, ctx.ifname) : [];
  if (held.length === 0) {
    throw new CniError(
      ErrorCode.CheckFailed,
      `host-local: Failed to find address added by container ${ctx.containerID}`,
      `no reservation for ${ctx.containerID}/${ctx.ifname} in ${conf.dataDir}/${conf.name}`,
    );
  }
  const missing = expected.filter((ip) => !held.includes(ip));
  if (missing.length > 0) {
    throw new CniError(
      ErrorCode.CheckFailed,
      `host-local: address ${missing.join(", ")} of prevResult is not reserved for ${ctx.containerID}/${ctx.ifname}`,
      `reserved: ${held.join(", ")}`,
    );
  }
}

async function gc(ctx: GcContext): Promise<void> {
  const { dataDir, name } = loadStoreLocation(ctx.config);
  const graceMs = loadGcGraceSeconds(ctx.config) * 1000;
  const store = await DiskStore.open(dataDir, name, false);
  if (!store) return;
  if (ctx.validAttachments === undefined) {
    log.warn("host-local: GC without cni.dev/valid-attachments: nothing released");
    return;
  }
  const released = await collect(store, ctx.validAttachments, graceMs);
  if (released.length > 0) log.debug(`host-local: GC released ${released.join(", ")}`);
}

/** `ipam.gcGraceSeconds` (ours, default 60): GC leaves attachments changed less than this long ago alone. */
function loadGcGraceSeconds(config: CmdContext["config"]): number {
  const v = config.ipam?.gcGraceSeconds;
  if (v === undefined || v === null) return 60;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `ipam.gcGraceSeconds must be a non-negative integer, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

async function status(ctx: CmdContext): Promise<void> {
  const conf = loadHostLocalConfig(ctx.config, undefined);
  const store = await DiskStore.open(conf.dataDir, conf.name, false);
  if (!store) return;
  for (const [i, set] of conf.rangeSets.entries()) {
    const last = await store.lastReserved(i);
    if (!(await hasFree(set, (ip) => store.isReserved(ip), last === undefined ? undefined : parseIP(last)))) {
      throw new CniError(
        ErrorCode.NotAvailable,
        `no IP addresses available in range set: ${rangeSetToString(set)}`,
        `network ${conf.name}, range set ${i}`,
      );
    }
  }
}

export const hostLocal: PluginDefinition = {
  name: "host-local",
  about: "CNI host-local IPAM plugin (cni-ts): addresses from ranges, reserved on local disk",
  netns: "ignored",
  // MAC is bridge's: a main plugin passes its CNI_ARGS on to IPAM unchanged, so it must not fail here.
  argsKeys: ["IP", "MAC"],
  config: HOST_LOCAL_CONF_SHAPE,
  add,
  del,
  check,
  gc,
  status,
};
