/**
 * A tiny seeded generator of test input for the property-based tests (test/unit/property-*.test.ts): JSON values of
 * every type, hostile strings, configs mutated from valid ones, IP addresses and CIDRs in canonical text. No
 * dependency; a failing case prints its seed and run number, and CNI_TS_SEED=<seed> replays the whole run.
 */
import { SEED, SOAK } from "./report.js";

export { report } from "./report.js";

/** mulberry32: a small, fast, seeded generator of numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs per property: 400 in `npm test`, 5,000 in the soak, or CNI_TS_SOAK_PROPERTY. */
export const PROPERTY_RUNS = /^\d+$/.test(process.env.CNI_TS_SOAK_PROPERTY ?? "")
  ? Number(process.env.CNI_TS_SOAK_PROPERTY)
  : SOAK
    ? 5000
    : 400;

export const PROPERTY_SEED = SEED;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const HOSTILE_STRINGS = [
  "",
  " ",
  "a",
  "0",
  "-1",
  "true",
  "null",
  "../x",
  "/etc/passwd",
  "a/b",
  "a\u0000b",
  "a\nb",
  "-rf",
  "n".repeat(300),
  "é",
  "\ud83d\ude00",
  "\ud800",
  "%s%n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, sent as hostile input on purpose
  "${PATH}",
  "$(id)",
  "`id`",
  "a;b",
  'a"b',
  "a\\b",
  "__proto__",
  "constructor",
  "10.1.2.3",
  "10.1.2.0/24",
  "10.1.2.3/24",
  "010.1.2.3",
  "10.1.2.256",
  "::ffff:10.1.2.3",
  "::ffff:10.1.2.0/120",
  "fd00::1",
  "fd00::/64",
  "fd00::1/64",
  "fe80::1%eth0",
  "::",
  "0.0.0.0/0",
  "::/0",
  "10.0.0.0/33",
  "fd00::/129",
  "1.0.0",
  "1.1.0",
  "0.4.0",
  "host-local",
  "bridge",
  "iptables",
  "nftables",
  "cni0",
  "eth0",
  "ff:ff:ff:ff:ff:ff",
  "02:42:ac:11:00:02",
  "00:00:00:00:00:00",
];

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  2,
  68,
  1500,
  4094,
  4095,
  65535,
  65536,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  1.5,
  1e308,
  -1e308,
  5e-324,
  0.1,
];

export class Gen {
  readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = rng(seed);
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** A random BigInt in [0, 2^bits). */
  bits(bits: number): bigint {
    let v = 0n;
    for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(this.int(0, 0xffff));
    return v & ((1n << BigInt(bits)) - 1n);
  }

  string(): string {
    if (this.chance(0.6)) return this.pick(HOSTILE_STRINGS);
    const n = this.int(0, 12);
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.chance(0.8) ? this.int(0x20, 0x7e) : this.int(0, 0xffff));
    return s;
  }

  number(): number {
    return this.chance(0.7) ? this.pick(NUMBERS) : (this.next() - 0.5) * 10 ** this.int(0, 12);
  }

  /** Any JSON value, nesting at most `depth`; object keys from `keys` half the time. */
  json(depth = 3, keys: readonly string[] = []): Json {
    const kind = this.int(0, depth > 0 ? 6 : 4);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.number();
      case 3:
      case 4:
        return this.string();
      case 5:
        return Array.from({ length: this.int(0, 4) }, () => this.json(depth - 1, keys));
      default: {
        const o: { [k: string]: Json } = {};
        for (let i = this.int(0, 4); i > 0; i--)
          o[keys.length > 0 && this.chance(0.5) ? this.pick(keys) : this.string()] = this.json(depth - 1, keys);
        return o;
      }
    }
  }

  /**
   * `base` with a few mutations: a key removed, replaced by any JSON value, or added; walking into nested objects and
   * arrays, so that deep keys (ipam.ranges[0][0].subnet) get hostile values too.
   */
  mutate(base: unknown, keys: readonly string[], mutations = this.int(1, 4)): Json {
    let out = structuredClone(base) as Json;
    for (let m = 0; m < mutations; m++) out = this.mutateOnce(out, keys, 0);
    return out;
  }

  private mutateOnce(v: Json, keys: readonly string[], depth: number): Json {
    if (depth > 0 && this.chance(0.15)) return this.json(2, keys);
    if (Array.isArray(v)) {
      if (v.length === 0 || this.chance(0.2)) return [...v, this.json(2, keys)];
      const i = this.int(0, v.length - 1);
      const copy = [...v];
      copy[i] = this.mutateOnce(v[i]!, keys, depth + 1);
      return copy;
    }
    if (v !== null && typeof v === "object") {
      const ks = Object.keys(v);
      const copy = { ...v };
      const r = this.next();
      if (ks.length === 0 || r < 0.2)
        copy[this.chance(0.7) && keys.length > 0 ? this.pick(keys) : this.string()] = this.json(2, keys);
      else if (r < 0.35) delete copy[this.pick(ks)];
      else {
        const k = this.pick(ks);
        copy[k] = this.mutateOnce(v[k]!, keys, depth + 1);
      }
      return copy;
    }
    return this.json(2, keys);
  }

  /** A canonical IPv4 address text. */
  ip4(): string {
    const v = this.bits(32);
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
  }

  /** An IPv6 address value outside the IPv4-mapped block ::ffff:0:0/96 (which the parsers refuse by design). */
  ip6Value(): bigint {
    for (;;) {
      const v = this.chance(0.3) ? (0xfdn << 120n) | this.bits(16) : this.chance(0.1) ? this.bits(20) : this.bits(128);
      if (v >> 32n !== 0xffffn) return v;
    }
  }
}
