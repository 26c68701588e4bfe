/**
 * The tuning plugin's configuration: the reference's keys (plugins tuning.go TuningConf) read with Go's key rule,
 * every input that can set them merged in the reference's order, and every value validated before anything in the
 * pod changes.
 *
 * Precedence (lowest first), as in the reference: the config's own keys; CNI_ARGS `MAC`; the `mac` capability
 * (`runtimeConfig.mac`); `args.cni.{sysctl,mac,promisc,mtu,allmulti,txQLen}` (its sysctls are merged over the
 * config's, key by key).
 *
 * @example
 *   const conf = loadTuningConfig(ctx.config, ctx.args, "eth0");
 *   // conf.sysctls[0] = { key: "net.ipv4.conf.IFNAME.rp_filter", path: "/proc/sys/net/ipv4/conf/eth0/rp_filter", value: "1" }
 */
import type { CniArgs } from "../../lib/cniargs.js";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend, goMap, goStruct } from "../../lib/gojson.js";
import { CAPABILITY_SHAPES, PLUGIN_CONF_SHAPE, type NetConf } from "../../lib/types.js";
import { quoteInput } from "../../lib/validate.js";
import { sysctlKeyPath } from "./sysctl-key.js";

/** Where the reference keeps the attributes DEL restores. */
export const DEFAULT_DATA_DIR = "/run/cni/tuning";
/** The most sysctls one config may set (each is an argument of the one process that writes them). */
export const MAX_SYSCTLS = 256;
/** A sysctl value is at most a page for the kernel; ours are far shorter. */
export const MAX_SYSCTL_VALUE_BYTES = 4096;
/** ETH_MIN_MTU (68, also IPv4's minimum) .. ETH_MAX_MTU (65535): every Ethernet-like pod interface. */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;
/** The kernel keeps txqueuelen in an unsigned int. */
export const TXQLEN_MAX = 0xffff_ffff;

const TUNING_ARGS_SHAPE = goStruct({
  sysctl: goMap(GO_ANY),
  mac: GO_ANY,
  promisc: GO_ANY,
  mtu: GO_ANY,
  allmulti: GO_ANY,
  txQLen: GO_ANY,
});

/** The reference's `TuningConf` (and its `IPAMArgs` under `args.cni`), for Go's case-insensitive key match. */
export const TUNING_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  dataDir: GO_ANY,
  sysctl: goMap(GO_ANY),
  mac: GO_ANY,
  promisc: GO_ANY,
  mtu: GO_ANY,
  txQLen: GO_ANY,
  allmulti: GO_ANY,
  runtimeConfig: goStruct({ mac: CAPABILITY_SHAPES.mac }),
  args: goStruct({ cni: TUNING_ARGS_SHAPE }),
});

/** One sysctl to write in the pod: the key as configured, the file it names, the value. */
export interface SysctlSetting {
  key: string;
  path: string;
  value: string;
}

/** The interface attributes a config asks for (undefined: left alone). */
export interface LinkSettings {
  /** Canonical form: lower case, colons. */
  mac?: string;
  mtu?: number;
  /** Only `true` does anything, as in the reference (promisc false is never applied, but CHECK insists on it). */
  promisc: boolean;
  allmulti?: boolean;
  txQLen?: number;
}

export interface TuningConfig extends LinkSettings {
  name: string;
  dataDir: string;
  sysctls: SysctlSetting[];
}

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

const absent = (v: unknown): boolean => v === undefined || v === null;

function object(v: unknown, where: string): Record<string, unknown> | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== "object" || Array.isArray(v))
    throw invalid(`${where} must be an object`, `got ${quoteInput(JSON.stringify(v) ?? "")}`);
  return v as Record<string, unknown>;
}

function bool(v: unknown, where: string): boolean | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== "boolean") throw invalid(`${where} must be a boolean`, `got ${quoteInput(JSON.stringify(v))}`);
  return v;
}

function integer(v: unknown, where: string, min: number, max: number, zeroMeansUnset: boolean): number | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v))
    throw invalid(`${where} must be an integer`, `got ${quoteInput(JSON.stringify(v))}`);
  if (zeroMeansUnset && v === 0) return undefined;
  if (v < min || v > max) throw invalid(`${where} must be between ${min} and ${max}`, `got ${v}`);
  return v;
}

function string(v: unknown, where: string): string | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== "string") throw invalid(`${where} must be a string`, `got ${quoteInput(JSON.stringify(v))}`);
  return v;
}

/**
 * A MAC address as Go's net.ParseMAC reads one (`aa:bb:cc:dd:ee:ff`, `aa-bb-…`, `aabb.ccdd.eeff`), limited to the
 * 6-byte Ethernet form the kernel accepts on a pod interface, and to a unicast address (the kernel refuses a
 * multicast or all-zero one with EADDRNOTAVAIL, after other attributes may have changed). Returns the canonical form.
 */
export function parseMac(text: string, where = "mac"): string {
  let hex: string | undefined;
  if (/^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$/.test(text)) hex = text.replace(/[:-]/g, "");
  else if (/^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/.test(text)) hex = text.replaceAll(".", "");
  if (hex === undefined)
    throw invalid(`invalid ${where} ${quoteInput(text)}`, "a MAC address is six bytes: aa:bb:cc:dd:ee:ff");
  const bytes = hex.toLowerCase().match(/../g)!;
  if ((parseInt(bytes[0]!, 16) & 1) === 1)
    throw invalid(`invalid ${where} ${quoteInput(text)}: a multicast address`, "an interface needs a unicast address");
  if (bytes.every((b) => b === "00"))
    throw invalid(`invalid ${where} ${quoteInput(text)}: all zeros`, "an interface needs a unicast address");
  return bytes.join(":");
}

/** A sysctl value: any text the kernel may parse, without the bytes an argument cannot carry or a file read would split. */
function sysctlValue(v: unknown, key: string): string {
  if (typeof v !== "string")
    throw invalid(`sysctl ${quoteInput(key)} must have a string value`, `got ${quoteInput(JSON.stringify(v) ?? "")}`);
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(v))
    throw invalid(`sysctl ${quoteInput(key)}: the value contains a control character`, "values are one line of text");
  if (Buffer.byteLength(v, "utf8") > MAX_SYSCTL_VALUE_BYTES)
    throw invalid(`sysctl ${quoteInput(key)}: the value is longer than ${MAX_SYSCTL_VALUE_BYTES} bytes`);
  return v;
}

/** `dataDir`: an absolute directory (the backup file's name is built from validated parts below it). */
export function parseDataDir(conf: NetConf): string {
  const dir = string((conf as Record<string, unknown>).dataDir, "dataDir");
  if (dir === undefined || dir === "") return DEFAULT_DATA_DIR;
  if (!dir.startsWith("/") || /[\x00-\x1f\x7f]/.test(dir) || dir.split("/").includes("..")) {
    throw invalid(`dataDir must be an absolute path without .. or control characters`, `got ${quoteInput(dir)}`);
  }
  return dir;
}

/**
 * Parse, merge and validate the whole configuration for `ifname` (the pod interface IFNAME stands for). Every error
 * is code 7 naming the key (CNI_ARGS `MAC`: code 4), thrown before anything changes.
 */
export function loadTuningConfig(conf: NetConf, args: CniArgs, ifname: string): TuningConfig {
  const c = conf as Record<string, unknown>;
  const argsCni = object(object(c.args, "args")?.cni, "args.cni");
  const runtime = object(c.runtimeConfig, "runtimeConfig");

  const raw = new Map<string, unknown>(Object.entries(object(c.sysctl, "sysctl") ?? {}));
  for (const [k, v] of Object.entries(object(argsCni?.sysctl, "args.cni.sysctl") ?? {})) raw.set(k, v);
  if (raw.size > MAX_SYSCTLS) throw invalid(`too many sysctls (${raw.size})`, `at most ${MAX_SYSCTLS}`);
  const sysctls = [...raw].map(([key, v]) => ({ key, path: sysctlKeyPath(key, ifname), value: sysctlValue(v, key) }));
  const paths = new Map<string, string>();
  for (const s of sysctls) {
    const other = paths.get(s.path);
    if (other !== undefined)
      throw invalid(`sysctls ${quoteInput(other)} and ${quoteInput(s.key)} name the same file`, s.path);
    paths.set(s.path, s.key);
  }

  // The last non-empty source wins; an empty args.cni.mac clears it, as in the reference. Only the winner is parsed.
  const macSources: Array<[string | undefined, string]> = [
    [string(c.mac, "mac"), "mac"],
    [args.get("MAC"), "CNI_ARGS MAC"],
    [string(runtime?.mac, "runtimeConfig.mac"), "runtimeConfig.mac"],
  ];
  let mac = macSources.reduce<{ text: string; where: string } | undefined>(
    (m, [text, where]) => (text ? { text, where } : m),
    undefined,
  );
  const argsMac = string(argsCni?.mac, "args.cni.mac");
  if (argsMac !== undefined) mac = argsMac === "" ? undefined : { text: argsMac, where: "args.cni.mac" };

  const mtu =
    integer(argsCni?.mtu, "args.cni.mtu", MTU_MIN, MTU_MAX, true) ??
    (absent(argsCni?.mtu) ? integer(c.mtu, "mtu", MTU_MIN, MTU_MAX, true) : undefined);
  const txQLen =
    integer(argsCni?.txQLen, "args.cni.txQLen", 0, TXQLEN_MAX, false) ??
    integer(c.txQLen, "txQLen", 0, TXQLEN_MAX, false);
  const promisc = bool(argsCni?.promisc, "args.cni.promisc") ?? bool(c.promisc, "promisc") ?? false;
  const allmulti = bool(argsCni?.allmulti, "args.cni.allmulti") ?? bool(c.allmulti, "allmulti");

  return {
    name: conf.name,
    dataDir: parseDataDir(conf),
    sysctls,
    mac: mac === undefined ? undefined : macFrom(mac),
    mtu,
    promisc,
    allmulti,
    txQLen,
  };
}

/** A bad MAC from CNI_ARGS is an environment error (code 4), from the config code 7. */
function macFrom(m: { text: string; where: string }): string {
  try {
    return parseMac(m.text, m.where);
  } catch (e) {
    if (m.where !== "CNI_ARGS MAC" || !(e instanceof CniError)) throw e;
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, e.message, e.details);
  }
}

/** Does the config change the interface (and so need a backup for DEL)? The reference's condition. */
export function changesLink(s: LinkSettings): boolean {
  return s.mac !== undefined || s.mtu !== undefined || s.promisc || s.allmulti !== undefined || s.txQLen !== undefined;
}
