/**
 * The token bucket the reference installs for a rate and a burst, as kernel numbers, and the `tc` words that make
 * the kernel hold exactly those numbers.
 *
 * The reference (1.1.1) hands netlink a tbf of rate = rate/8 bytes/s, buffer = the burst's transmit time in ticks,
 * and limit = 25 ms of rate plus the burst, computed in Go float64 and truncated to uint32 at each step. tc takes
 * the rate and the limit exactly as given; it hands the burst to the kernel in bytes (TCA_TBF_BURST), from which the
 * kernel derives the buffer in nanoseconds: the reference's truncation to whole microseconds does not happen, so the
 * buffer is up to one microsecond of transmit time longer (the exact burst asked for). Where the reference's
 * uint32 arithmetic would wrap (a multi-gigabyte burst at a low rate, a limit past 4 GiB), or the kernel would refuse
 * the numbers (rate under 8 bit/s, a burst of zero ticks), the config is refused up front instead (code 7).
 *
 * @example
 *   const t = tbfFor(8_000_000, 80_000); // { rateBytes: 1000000, burstBytes: 10000, bufferTicks: 156250, limitBytes: 35000 }
 *   tbfArgs(t) // ["tbf", "rate", "1000000bps", "burst", 10000, "limit", 35000]
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";

/** The kernel's numbers for one tbf. */
export interface Tbf {
  rateBytes: number;
  /** The reference's buffer in ticks (its burst's transmit time truncated to microseconds, then to ticks). */
  bufferTicks: number;
  limitBytes: number;
  /** The burst in bytes: tc hands it to the kernel as such (TCA_TBF_BURST), which derives the buffer from it. */
  burstBytes: number;
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
    const [t2us, us2t, clockRes] = readFileSync("/proc/net/psched", "utf8")
      .trim()
      .split(/\s+/)
      .map((h) => parseInt(h, 16));
    if (t2us && us2t && clockRes) tickCache = (t2us / us2t) * (clockRes / TIME_UNITS_PER_SEC);
  } catch {
    // no procfs: the constant above
  }
  return tickCache;
}

const outOfRange = (msg: string, rateBits: number, burstBits: number) =>
  new CniError(
    ErrorCode.InvalidNetworkConfig,
    msg,
    `rate ${rateBits} bit/s, burst ${burstBits} bit: the kernel's tbf holds a 32-bit buffer (in ticks) and limit (in bytes)`,
  );

/** The reference's `buffer()`: float64(burst) * 1e6 / float64(rate) to uint32, then ticks to uint32. Undefined when it would wrap. */
export function referenceTicks(rateBytes: number, burstBytes: number, tick = tickInUsec()): number | undefined {
  const usec = Math.trunc((burstBytes * TIME_UNITS_PER_SEC) / rateBytes);
  if (usec >= UINT32) return undefined;
  const ticks = Math.trunc(usec * tick);
  return ticks >= UINT32 ? undefined : ticks;
}

/** The tbf for a rate (bit/s) and a burst (bit), as the reference computes it; throws code 7 when out of range. */
export function tbfFor(rateBits: number, burstBits: number, tick = tickInUsec()): Tbf {
  const rateBytes = Math.floor(rateBits / 8);
  const burstBytes = Math.floor(burstBits / 8);
  if (rateBytes < 1) throw outOfRange("rate must be at least 8 bit/s", rateBits, burstBits);
  if (!Number.isSafeInteger(rateBits) || (rateBytes * LATENCY_USEC) / TIME_UNITS_PER_SEC >= UINT32)
    throw outOfRange("rate is too high for tbf", rateBits, burstBits);
  const bufferTicks = referenceTicks(rateBytes, burstBytes, tick);
  if (bufferTicks === undefined) throw outOfRange("burst is too large for this rate", rateBits, burstBits);
  if (bufferTicks === 0) throw outOfRange("burst is too small for this rate", rateBits, burstBits);
  const limitBytes = Math.trunc((rateBytes * LATENCY_USEC) / TIME_UNITS_PER_SEC) + burstBytes;
  if (limitBytes >= UINT32) throw outOfRange("rate and burst give a queue limit over 4 GiB", rateBits, burstBits);
  return { rateBytes, burstBytes, bufferTicks, limitBytes };
}

/** The tc words of a `qdisc add ... root handle 1:` for this tbf. */
export function tbfArgs(t: Tbf): Array<string | number> {
  return ["tbf", "rate", `${t.rateBytes}bps`, "burst", t.burstBytes, "limit", t.limitBytes];
}
