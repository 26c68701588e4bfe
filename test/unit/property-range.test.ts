// Property: iterateRangeSet (ipam/host-local/allocator.ts) visits every allocatable address of a generated small
// range set exactly once (every address of every range, minus that range's own gateway), IPv4 and IPv6, from any
// last-reserved address; it starts right after lastReserved when that lies in the set; and freeCount agrees.
// Seeded (test/reliability/gen.ts): a failure names its seed and run; CNI_TS_SEED=<seed> replays it.
import { describe, expect, it } from "vitest";
import { freeCount, iterateRangeSet } from "../../ipam/host-local/allocator.js";
import { canonicalizeRangeSet, type RangeSet, type RawRange } from "../../ipam/host-local/range.js";
import { type Family, type IPAddr, formatIP, parseIP } from "../../lib/cidr.js";
import { CniError } from "../../lib/errors.js";
import { Gen, PROPERTY_RUNS, PROPERTY_SEED, report } from "../reliability/gen.js";

const text = (family: Family, value: bigint) => formatIP({ family, value });

/** 1-3 small non-overlapping ranges of one family, as a config would write them; undefined when canonicalize refuses. */
function rangeSet(g: Gen, family: Family): { raws: RawRange[]; set: RangeSet } | undefined {
  const bits = family === 4 ? 32 : 128;
  const raws: RawRange[] = [];
  // Neighbouring subnets of one block, so that ranges sit close together and wrap-around is exercised.
  const prefix = bits - g.int(2, 6);
  const size = 1n << BigInt(bits - prefix);
  const block =
    family === 4
      ? (g.bits(32) >> BigInt(bits - prefix + 3)) << BigInt(bits - prefix + 3)
      : (((0xfdn << 120n) | (g.bits(64) << 32n)) >> 16n) << 16n;
  const slots = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].sort(() => g.next() - 0.5).slice(0, g.int(1, 3));
  for (const [i, s] of slots.entries()) {
    const net = block + s * size;
    const raw: RawRange = { subnet: `${text(family, net)}/${prefix}`, where: `ranges[0][${i}]` };
    const first = net + 1n;
    const last = family === 4 ? net + size - 2n : net + size - 1n;
    const start = first + BigInt(g.int(0, Number(last - first)));
    if (g.chance(0.5)) raw.rangeStart = text(family, start);
    if (g.chance(0.5)) raw.rangeEnd = text(family, start + BigInt(g.int(0, Number(last - start))));
    // The gateway: default (first address), inside the range, elsewhere in the subnet, or in another range.
    if (g.chance(0.6))
      raw.gateway = text(
        family,
        g.chance(0.3) ? block + BigInt(g.int(0, 8 * Number(size) - 1)) : net + BigInt(g.int(0, Number(size) - 1)),
      );
    raws.push(raw);
  }
  try {
    return { raws, set: canonicalizeRangeSet(raws, 0) };
  } catch (e) {
    if (!(e instanceof CniError)) throw e;
    return undefined; // e.g. a rangeEnd before rangeStart; canonicalize's own tests cover those
  }
}

/** What must be visited: every address of every range except that range's gateway, in set order. */
function allocatable(set: RangeSet): IPAddr[] {
  const out: IPAddr[] = [];
  for (const r of set) {
    for (let v = r.rangeStart.value; v <= r.rangeEnd.value; v++) {
      if (!(r.gateway.family === r.rangeStart.family && r.gateway.value === v))
        out.push({ family: r.rangeStart.family, value: v });
    }
  }
  return out;
}

describe(`iterateRangeSet on generated range sets (${PROPERTY_RUNS} runs, seed ${PROPERTY_SEED})`, () => {
  it("every allocatable address exactly once, starting after lastReserved, v4 and v6", { timeout: 900_000 }, () => {
    const g = new Gen(PROPERTY_SEED);
    let runs = 0;
    let visited = 0;
    while (runs < PROPERTY_RUNS) {
      const family: Family = g.chance(0.5) ? 4 : 6;
      const made = rangeSet(g, family);
      if (!made) continue;
      runs++;
      const { raws, set } = made;
      const expected = allocatable(set);
      const all = set.flatMap((r) => {
        const xs: IPAddr[] = [];
        for (let v = r.rangeStart.value; v <= r.rangeEnd.value; v++) xs.push({ family, value: v });
        return xs;
      });
      // lastReserved: none, an address of the set (gateways included), or one outside it.
      const r = g.next();
      const last: IPAddr | undefined =
        r < 0.25
          ? undefined
          : r < 0.85 && all.length > 0
            ? g.pick(all)
            : { family, value: g.chance(0.5) ? 0n : set[0]!.subnet.network };
      const label = `seed ${PROPERTY_SEED} run ${runs}: ${JSON.stringify(raws)} last ${last ? formatIP(last) : "-"}`;
      const got: string[] = [];
      for (const c of iterateRangeSet(set, last)) {
        got.push(formatIP(c.ip));
        if (got.length > expected.length + 1) break; // a loop that never ends shows up as a duplicate
      }
      expect([...got].sort(), label).toEqual(expected.map(formatIP).sort());
      expect(new Set(got).size, label).toBe(got.length);
      // Every offered address is the reference's file name for it: canonical text that parses back.
      for (const t of got) expect(parseIP(t) && formatIP(parseIP(t)!), label).toBe(t);
      // Round robin: with lastReserved inside the set, the walk begins at the next allocatable address in set order.
      const inSet =
        last !== undefined && set.some((x) => last.value >= x.rangeStart.value && last.value <= x.rangeEnd.value);
      if (inSet && expected.length > 0) {
        const order = all.map((a) => a.value);
        const at = order.indexOf(last!.value);
        const next = [...order.slice(at + 1), ...order.slice(0, at + 1)].find((v) =>
          expected.some((e) => e.value === v),
        );
        expect(got[0], label).toBe(text(family, next!));
      } else if (expected.length > 0) {
        expect(got[0], label).toBe(formatIP(expected[0]!));
      }
      // freeCount (used by STATUS) agrees with the walk, for a random set of reserved addresses.
      const reserved = got.filter(() => g.chance(0.3));
      expect(freeCount(set, reserved), label).toBe(BigInt(got.length - reserved.length));
      visited += got.length;
    }
    report("property-range-iteration", { rangeSets: runs, addressesVisited: visited });
  });

  // A known bug (docs/reliability.md): a subnet that contains the IPv4-mapped block ::ffff:0:0/96 is accepted, and
  // the walk offers mapped addresses, whose text parseIP() refuses: host-local reserves ::ffff:0:0, cannot print it
  // (999), and no DEL or GC can ever release the file. The property above excludes such subnets.
  it.fails("KNOWN BUG: a set spanning ::ffff:0:0/96 offers only addresses whose text parses back", () => {
    const set = canonicalizeRangeSet([{ subnet: "::/80", rangeStart: "::fffe:ffff:fffe", where: "ranges[0][0]" }], 0);
    let n = 0;
    for (const c of iterateRangeSet(set)) {
      const t = formatIP(c.ip);
      expect(parseIP(t) && formatIP(parseIP(t)!)).toBe(t);
      if (++n > 4) break;
    }
  });
});
