/**
 * The bandwidth plugin's configuration: the reference's keys (1.1.1) read with Go's key rule, and its rules for
 * them, checked before anything changes.
 *
 * A limit comes from the config's top level (`ingressRate`, `ingressBurst`, `egressRate`, `egressBurst`) or, when
 * none of those four keys is present (even as null), from the `bandwidth` capability (`runtimeConfig.bandwidth`;
 * containerd sends `IngressRate`, ... from untagged Go fields). Rates are bits per second, bursts bits.
 *
 * @example
 *   const conf = loadBandwidthConfig(ctx.config); // conf.limits = { ingressRate: 8000000, ingressBurst: 80000, egressRate: 0, egressBurst: 0 }
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { GO_ANY, goExtend, goStruct } from "../../lib/gojson.js";
import { CAPABILITY_SHAPES, PLUGIN_CONF_SHAPE, type NetConf } from "../../lib/types.js";

/** One direction's or both directions' limits; 0 means "no limit" for that direction. */
export interface BandwidthLimits {
  ingressRate: number;
  ingressBurst: number;
  egressRate: number;
  egressBurst: number;
}

export interface BandwidthConfig {
  name: string;
  cniVersion: string;
  /** Undefined when the config sets no limit at all (the plugin then passes prevResult through). */
  limits: BandwidthLimits | undefined;
}

const KEYS = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"] as const;

/** The reference's `PluginConf`: NetConf, the embedded `*BandwidthEntry` at the top level, and the capability. */
export const BANDWIDTH_CONF_SHAPE = goExtend(PLUGIN_CONF_SHAPE, {
  ingressRate: GO_ANY,
  ingressBurst: GO_ANY,
  egressRate: GO_ANY,
  egressBurst: GO_ANY,
  runtimeConfig: goStruct({ bandwidth: CAPABILITY_SHAPES.bandwidth }),
});

/** Go's uint32 maximum: the reference refuses a burst of burst/8 >= this ("more than 4GB"). */
const MAX_UINT32 = 0xffffffff;

const invalid = (msg: string, details = "") => new CniError(ErrorCode.InvalidNetworkConfig, msg, details);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A uint64 as Go decodes it: a JSON integer from 0 up. Values beyond 2^53 cannot be held exactly here; as rates
 * they are far outside what tbf can hold (tbf.ts refuses them), as bursts beyond the 4GB rule: both refused.
 */
function uint(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw invalid(`${where} must be a non-negative integer`, `got ${JSON.stringify(v)?.slice(0, 64) ?? "nothing"}`);
  }
  return v;
}

function entry(o: Record<string, unknown>, where: string): BandwidthLimits {
  return {
    ingressRate: uint(o.ingressRate, `${where}ingressRate`),
    ingressBurst: uint(o.ingressBurst, `${where}ingressBurst`),
    egressRate: uint(o.egressRate, `${where}egressRate`),
    egressBurst: uint(o.egressBurst, `${where}egressBurst`),
  };
}

/** The reference's validateRateAndBurst, with its messages; the direction goes into the details. */
export function checkRateAndBurst(rate: number, burst: number, direction: "ingress" | "egress"): void {
  const details = `${direction}Rate ${rate}, ${direction}Burst ${burst}`;
  if (burst === 0 && rate !== 0) throw invalid("if rate is set, burst must also be set", details);
  if (rate === 0 && burst !== 0) throw invalid("if burst is set, rate must also be set", details);
  if (Math.floor(burst / 8) >= MAX_UINT32) throw invalid("burst cannot be more than 4GB", details);
}

/**
 * The limits a config sets, validated (code 7 naming the key). The top-level entry wins as soon as one of its keys
 * is present, whatever its value: Go allocates the embedded entry then, and the capability is not read.
 */
export function parseLimits(conf: NetConf): BandwidthLimits | undefined {
  const c = conf as Record<string, unknown>;
  let limits: BandwidthLimits | undefined;
  if (KEYS.some((k) => Object.hasOwn(c, k))) limits = entry(c, "");
  else {
    const rc = c.runtimeConfig;
    if (rc !== undefined && rc !== null && !isObject(rc)) throw invalid("runtimeConfig must be an object");
    const bw = isObject(rc) ? rc.bandwidth : undefined;
    if (bw !== undefined && bw !== null && !isObject(bw))
      throw invalid("runtimeConfig.bandwidth must be an object {ingressRate, ingressBurst, egressRate, egressBurst}");
    if (isObject(bw)) limits = entry(bw, "runtimeConfig.bandwidth.");
  }
  if (limits) {
    checkRateAndBurst(limits.ingressRate, limits.ingressBurst, "ingress");
    checkRateAndBurst(limits.egressRate, limits.egressBurst, "egress");
  }
  return limits;
}

/** Does `limits` shape anything? (The reference's `isZero`, inverted.) */
export function shapesAnything(limits: BandwidthLimits | undefined): limits is BandwidthLimits {
  return limits !== undefined && (limits.ingressRate > 0 || limits.egressRate > 0);
}

/** Parse and validate the whole configuration. */
export function loadBandwidthConfig(conf: NetConf): BandwidthConfig {
  return { name: conf.name, cniVersion: conf.cniVersion, limits: parseLimits(conf) };
}
