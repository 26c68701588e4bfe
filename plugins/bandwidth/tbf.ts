/**
 * The token bucket the reference installs for a rate and a burst, as kernel numbers, and the `tc` words that make
 * the kernel hold exactly those numbers.
 *
 * The reference (1.1.1) hands netlink a tbf of rate = rate/8 bytes/s, buffer = the burst's transmit time in ticks,
 * and limit = 25 ms of rate plus the burst, computed in Go float64 and truncated to uint32 at each step. tc takes a
 * burst in bytes and computes the ticks itself with a slightly different order of float operations, so the burst
 * given to tc is the one whose ticks equal the reference's (almost always the burst itself). Where the reference's
 * uint32 arithmetic would wrap (a multi-gigabyte burst at a low rate, a limit past 4 GiB), or the kernel would refuse
 * the numbers (rate under 8 bit/s, a burst of zero ticks), the config is refused up front instead (code 7).
 *
 * @example
 *   const t = tbfFor(8_000_000, 80_000); // { rateBytes: 1000000, bufferTicks: 156250, limitBytes: 35000, tcBurst: 10000 }
 *   tbfArgs(t) // ["tbf", "rate", "1000000bps", "burst", 10000, "limit", 35000]
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";

/** The kernel's numbers for one tbf. */
export interface Tbf {
  rateBytes: number;
  bufferTicks: number;
  limitBytes: number;
  /** The burst, in bytes, that makes tc compute `bufferTicks`. */
  tcBurst: number;
}

const TIME_UNITS_PER_SEC = 1_000_000;
/** The reference's latency, 25 ms, as it computes it in microseconds. */
const LATENCY_USEC = TIME_UNITS_PER_SEC * (25 / 1000);
const UINT32 = 2 ** 32;

let tickCache: number | undefined;

/** Ticks per microsecond, from /proc/net/psched as netlink computes it (15.625 on every current kernel). */
export function tickInUsec(): number {
  if (tickCache !== undefined) return tickCache;
  tickCache = 15.625;
  try {
    const [t2us, us2t, clockRes] = readFileSync("/proc/net/psched", "utf8").trim().split(/\s+/).map((h) => parseInt(h, 16));
    if (t2us && us2t && clockRes) tickCache = (t2us / us2t) * (clockRes / TIME_UNITS_PER_SEC);
  } catch {
    // no procfs: the constant above
  }
  return tickCache;
}

const outOfRange = (msg: string, rateBits: number, burstBits: number) =>
  new CniError(ErrorCode.InvalidNetworkConfig, msg, `rate ${rateBits} bit/s, burst ${burstBits} bit: the kernel's tbf holds a 32-bit buffer (in ticks) and limit (in bytes)`);

/** tc's `tc_calc_xmittime`: microseconds truncated to an unsigned int, then ticks truncated again. */
export function tcTicks(rateBytes: number, burstBytes: number, tick = tickInUsec()): number {
  const usec = Math.trunc(TIME_UNITS_PER_SEC * (burstBytes / rateBytes));
  return Math.trunc(usec * tick);
}

/** The reference's `buffer()`: float64(burst) * 1e6 / float64(rate) to uint32, then ticks to uint32. Undefined when it would wrap. */
export function referenceTicks(rateBytes: number, burstBytes: number, tick = tickInUsec()): number | undefined {
  const usec = Math.trunc((burstBytes * TIME_UNITS_PER_SEC) / rateBytes);
  if (usec >= UINT32) return undefined;
  const ticks = Math.trunc(usec * tick);
  return ticks >= UINT32 ? undefined : ticks;
}

/** The burst in bytes for which tc computes `target` ticks (the burst itself unless float order differs). */
function burstForTicks(rateBytes: number, burstBytes: number, target: number, tick: number): number {
  if (tcTicks(rateBytes, burstBytes, tick) === target) return burstBytes;
  let lo = 1;
  let hi = UINT32 - 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (tcTicks(rateBytes, mid, tick) >= target) hi = mid;
    else lo = mid + 1;
  }
  return tcTicks(rateBytes, lo, tick) === target ? lo : burstBytes;
}

/** The tbf for a rate (bit/s) and a burst (bit), as the reference computes it; throws code 7 when out of range. */
export function tbfFor(rateBits: number, burstBits: number, tick = tickInUsec()): Tbf {
  const rateBytes = Math.floor(rateBits / 8);
  const burstBytes = Math.floor(burstBits / 8);
  if (rateBytes < 1) throw outOfRange("rate must be at least 8 bit/s", rateBits, burstBits);
  if (!Number.isSafeInteger(rateBits) || (rateBytes * LATENCY_USEC) / TIME_UNITS_PER_SEC >= UINT32) throw outOfRange("rate is too high for tbf", rateBits, burstBits);
  const bufferTicks = referenceTicks(rateBytes, burstBytes, tick);
  if (bufferTicks === undefined) throw outOfRange("burst is too large for this rate", rateBits, burstBits);
  if (bufferTicks === 0) throw outOfRange("burst is too small for this rate", rateBits, burstBits);
  const limitBytes = Math.trunc((rateBytes * LATENCY_USEC) / TIME_UNITS_PER_SEC) + burstBytes;
  if (limitBytes >= UINT32) throw outOfRange("rate and burst give a queue limit over 4 GiB", rateBits, burstBits);
  return { rateBytes, bufferTicks, limitBytes, tcBurst: burstForTicks(rateBytes, burstBytes, bufferTicks, tick) };
}

/** The tc words of a `qdisc add ... root handle 1:` for this tbf. */
export function tbfArgs(t: Tbf): Array<string | number> {
  return ["tbf", "rate", `${t.rateBytes}bps`, "burst", t.tcBurst, "limit", t.limitBytes];
}
