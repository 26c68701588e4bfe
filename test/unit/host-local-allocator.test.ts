import { describe, expect, it } from "vitest";
import { type IPAddr, formatIP, parseIP } from "../../lib/cidr.js";
import { CniError } from "../../lib/errors.js";
import {
  type ReservationStore,
  allocate,
  freeCount,
  hasFree,
  iterateRangeSet,
} from "../../ipam/host-local/allocator.js";
import { type RawRange, type RangeSet, canonicalizeRangeSet } from "../../ipam/host-local/range.js";

/** The disk layout in memory: ip -> "id\r\nifname" (or a bare id for legacy files), and last_reserved_ip.<set>. */
class MemStore implements ReservationStore {
  readonly files = new Map<string, string>();
  readonly last = new Map<number, string>();
  readonly released: string[] = [];
  /** IPs whose reserve() loses a race: reports taken although no file exists. */
  readonly racy = new Set<string>();
  /** reserve() throws for these. */
  readonly broken = new Set<string>();

  async reserve(ip: string, id: string, ifname: string, setIndex: number): Promise<boolean> {
    if (this.broken.has(ip)) throw new Error(`open ${ip}: no space left on device`);
    if (this.files.has(ip) || this.racy.has(ip)) return false;
    this.files.set(ip, `${id}\r\n${ifname}`);
    this.last.set(setIndex, ip);
    return true;
  }
  async lastReserved(setIndex: number): Promise<string | undefined> {
    return this.last.get(setIndex);
  }
  async isReserved(ip: string): Promise<boolean> {
    return this.files.has(ip);
  }
  async findByAttachment(id: string, ifname: string): Promise<string[]> {
    return [...this.files].filter(([, v]) => v === `${id}\r\n${ifname}` || v === id).map(([ip]) => ip);
  }
  async release(ip: string): Promise<void> {
    this.released.push(ip);
    this.files.delete(ip);
  }
}

function set(...ranges: Omit<RawRange, "where">[]): RangeSet {
  return canonicalizeRangeSet(
    ranges.map((r, i) => ({ ...r, where: `r${i}` })),
    0,
  );
}

function ip(text: string): IPAddr {
  const v = parseIP(text);
  if (!v) throw new Error(`bad test IP ${text}`);
  return v;
}

function walk(s: RangeSet, last?: string): string[] {
  return [...iterateRangeSet(s, last === undefined ? undefined : ip(last))].map((c) => formatIP(c.ip));
}

async function errorOf(p: Promise<unknown>): Promise<{ code: number; msg: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CniError) return { code: e.code, msg: e.message };
    throw e;
  }
  throw new Error("expected a CniError");
}

const v4 = set({ subnet: "10.1.2.0/24" });
const v6 = set({ subnet: "2001:db8:1::/64" });
const slash29 = set({ subnet: "10.1.2.0/29" });

describe("iterateRangeSet", () => {
  it("starts at rangeStart and skips the default gateway", () => {
    expect(walk(slash29)).toEqual(["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  });

  it("resumes after lastReserved and wraps from rangeEnd back to rangeStart", () => {
    expect(walk(slash29, "10.1.2.4")).toEqual(["10.1.2.5", "10.1.2.6", "10.1.2.2", "10.1.2.3", "10.1.2.4"]);
    expect(walk(slash29, "10.1.2.6")).toEqual(["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  });

  it("starts from the first rangeStart when lastReserved lies outside every range, or is of the other family", () => {
    expect(walk(slash29, "10.9.9.9")).toEqual(["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]);
    expect(walk(slash29, "10.1.2.7")).toEqual(["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]);
    expect(walk(slash29, "::a01:204")).toEqual(["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  });

  it("skips a gateway in the middle of a range", () => {
    const s = set({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.14", gateway: "10.1.2.12" });
    expect(walk(s)).toEqual(["10.1.2.10", "10.1.2.11", "10.1.2.13", "10.1.2.14"]);
    expect(walk(s, "10.1.2.11")).toEqual(["10.1.2.13", "10.1.2.14", "10.1.2.10", "10.1.2.11"]);
  });

  it("hands out .1 first when the gateway is .254", () => {
    const s = set({ subnet: "10.1.2.0/24", gateway: "10.1.2.254" });
    const all = walk(s);
    expect(all.slice(0, 2)).toEqual(["10.1.2.1", "10.1.2.2"]);
    expect(all.at(-1)).toBe("10.1.2.253");
    expect(all).toHaveLength(253);
  });

  it("crosses ranges in order and wraps from the last range to the first", () => {
    const s = set(
      { subnet: "10.1.1.0/24", rangeStart: "10.1.1.10", rangeEnd: "10.1.1.11" },
      { subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.11" },
      { subnet: "10.1.3.0/24", rangeStart: "10.1.3.1", rangeEnd: "10.1.3.2" },
    );
    expect(walk(s)).toEqual(["10.1.1.10", "10.1.1.11", "10.1.2.10", "10.1.2.11", "10.1.3.2"]);
    // lastReserved at the end of one range: the next range's start comes next.
    expect(walk(s, "10.1.1.11")).toEqual(["10.1.2.10", "10.1.2.11", "10.1.3.2", "10.1.1.10", "10.1.1.11"]);
    expect(walk(s, "10.1.3.2")).toEqual(["10.1.1.10", "10.1.1.11", "10.1.2.10", "10.1.2.11", "10.1.3.2"]);
  });

  it("walks IPv6 with wrap-around, in Go's text form", () => {
    const s = set(
      { subnet: "fd09::/120", rangeStart: "fd09::fd" },
      { subnet: "fd0a::/120", rangeStart: "fd0a::1", rangeEnd: "fd0a::3" },
    );
    expect(walk(s)).toEqual(["fd09::fd", "fd09::fe", "fd09::ff", "fd0a::2", "fd0a::3"]);
    expect(walk(s, "fd09::ff")).toEqual(["fd0a::2", "fd0a::3", "fd09::fd", "fd09::fe", "fd09::ff"]);
    expect(walk(s, "fd0a::3")).toEqual(["fd09::fd", "fd09::fe", "fd09::ff", "fd0a::2", "fd0a::3"]);
  });

  it("yields nothing for a range holding only its gateway", () => {
    expect(walk(set({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.1", rangeEnd: "10.1.2.1" }))).toEqual([]);
  });
});

describe("allocate: round robin", () => {
  it("allocates .2 then .3 and records the address with its subnet prefix and gateway", async () => {
    const store = new MemStore();
    expect(await allocate(store, [v4], [], "c1", "eth0")).toEqual([{ address: "10.1.2.2/24", gateway: "10.1.2.1" }]);
    expect(await allocate(store, [v4], [], "c2", "eth0")).toEqual([{ address: "10.1.2.3/24", gateway: "10.1.2.1" }]);
    expect(store.files.get("10.1.2.2")).toBe("c1\r\neth0");
    expect(store.last.get(0)).toBe("10.1.2.3");
  });

  it("does not reuse a released address until the range has been walked round", async () => {
    const store = new MemStore();
    await allocate(store, [slash29], [], "c1", "eth0");
    await store.release("10.1.2.2");
    expect(await allocate(store, [slash29], [], "c2", "eth0")).toEqual([
      { address: "10.1.2.3/29", gateway: "10.1.2.1" },
    ]);
  });

  it("wraps to the start after lastReserved = rangeEnd", async () => {
    const store = new MemStore();
    store.last.set(0, "10.1.2.254");
    expect(await allocate(store, [v4], [], "c1", "eth0")).toEqual([{ address: "10.1.2.2/24", gateway: "10.1.2.1" }]);
  });

  it("starts over when lastReserved lies outside the set", async () => {
    const store = new MemStore();
    store.last.set(0, "192.168.0.9");
    expect(await allocate(store, [v4], [], "c1", "eth0")).toEqual([{ address: "10.1.2.2/24", gateway: "10.1.2.1" }]);
  });

  it("skips taken addresses and addresses whose reservation race was lost", async () => {
    const store = new MemStore();
    store.files.set("10.1.2.2", "other\r\neth0");
    store.racy.add("10.1.2.3");
    expect(await allocate(store, [v4], [], "c1", "eth0")).toEqual([{ address: "10.1.2.4/24", gateway: "10.1.2.1" }]);
  });

  it("allocates IPv6 and returns one address per set in set order (dual stack)", async () => {
    const store = new MemStore();
    expect(await allocate(store, [v4, v6], [], "c1", "eth0")).toEqual([
      { address: "10.1.2.2/24", gateway: "10.1.2.1" },
      { address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" },
    ]);
    expect(store.last.get(1)).toBe("2001:db8:1::2");
  });

  it("exhausts a /29 after exactly five addresses and never hands out the broadcast", async () => {
    const store = new MemStore();
    const got: string[] = [];
    for (let i = 0; i < 5; i++)
      got.push(...(await allocate(store, [slash29], [], `c${i}`, "eth0")).map((c) => c.address));
    expect(got).toEqual(["10.1.2.2/29", "10.1.2.3/29", "10.1.2.4/29", "10.1.2.5/29", "10.1.2.6/29"]);
    expect(await errorOf(allocate(store, [slash29], [], "c5", "eth0"))).toEqual({
      code: 101,
      msg: "failed to allocate for range 0: no IP addresses available in range set: 10.1.2.1-10.1.2.6",
    });
  });

  it("names every range of a full set in the exhaustion message", async () => {
    const s = set({ subnet: "10.1.1.0/30" }, { subnet: "10.1.2.0/30" });
    const store = new MemStore();
    await allocate(store, [s], [], "c1", "eth0");
    await allocate(store, [s], [], "c2", "eth0");
    expect(await errorOf(allocate(store, [s], [], "c3", "eth0"))).toEqual({
      code: 101,
      msg: "failed to allocate for range 0: no IP addresses available in range set: 10.1.1.1-10.1.1.2,10.1.2.1-10.1.2.2",
    });
  });
});

describe("allocate: duplicate attachments", () => {
  it("refuses a second ADD of the same container and interface", async () => {
    const store = new MemStore();
    await allocate(store, [v4], [], "c1", "eth0");
    expect(await errorOf(allocate(store, [v4], [], "c1", "eth0"))).toEqual({
      code: 102,
      msg: "failed to allocate for range 0: 10.1.2.2 has been allocated to c1, duplicate allocation is not allowed",
    });
  });

  it("matches legacy reservations that hold only the container ID", async () => {
    const store = new MemStore();
    store.files.set("10.1.2.7", "c1");
    expect(await errorOf(allocate(store, [v4], [], "c1", "eth0"))).toEqual({
      code: 102,
      msg: "failed to allocate for range 0: 10.1.2.7 has been allocated to c1, duplicate allocation is not allowed",
    });
  });

  it("allows the same container on another interface, and an address held in another set", async () => {
    const store = new MemStore();
    await allocate(store, [v4], [], "c1", "eth0");
    expect(await allocate(store, [v4], [], "c1", "eth1")).toEqual([{ address: "10.1.2.3/24", gateway: "10.1.2.1" }]);
    expect(await allocate(store, [v6], [], "c1", "eth0")).toEqual([
      { address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" },
    ]);
  });
});

describe("allocate: requested IPs", () => {
  it("reserves a free requested IP with the range's prefix and leaves round robin to the other sets", async () => {
    const store = new MemStore();
    expect(await allocate(store, [v4, v6], [ip("10.1.2.77")], "c1", "eth0")).toEqual([
      { address: "10.1.2.77/24", gateway: "10.1.2.1" },
      { address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" },
    ]);
    expect(store.last.get(0)).toBe("10.1.2.77");
  });

  it("fills requested IPs in both families", async () => {
    const store = new MemStore();
    expect(await allocate(store, [v4, v6], [ip("2001:db8:1::abc"), ip("10.1.2.9")], "c1", "eth0")).toEqual([
      { address: "10.1.2.9/24", gateway: "10.1.2.1" },
      { address: "2001:db8:1::abc/64", gateway: "2001:db8:1::1" },
    ]);
  });

  it("refuses a requested IP that is taken", async () => {
    const store = new MemStore();
    store.files.set("10.1.2.77", "other\r\neth0");
    expect(await errorOf(allocate(store, [v4], [ip("10.1.2.77")], "c1", "eth0"))).toEqual({
      code: 102,
      msg: "failed to allocate for range 0: requested IP address 10.1.2.77 is not available in range set 10.1.2.1-10.1.2.254",
    });
  });

  it("refuses the gateway", async () => {
    const store = new MemStore();
    expect(await errorOf(allocate(store, [v4], [ip("10.1.2.1")], "c1", "eth0"))).toEqual({
      code: 7,
      msg: "failed to allocate for range 0: requested ip 10.1.2.1 is subnet's gateway",
    });
    expect(store.files.size).toBe(0);
  });

  it("refuses requested IPs that lie in no set (outside the range counts) before reserving anything", async () => {
    const store = new MemStore();
    const narrow = set({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.100" });
    expect(await errorOf(allocate(store, [narrow, v6], [ip("10.1.2.5"), ip("192.168.1.1")], "c1", "eth0"))).toEqual({
      code: 7,
      msg: "failed to allocate all requested IPs: 10.1.2.5 192.168.1.1",
    });
    expect(store.files.size).toBe(0);
  });

  it("takes only one requested IP per set; a second one in the same set is unmatched", async () => {
    expect(await errorOf(allocate(new MemStore(), [v4], [ip("10.1.2.5"), ip("10.1.2.6")], "c1", "eth0"))).toEqual({
      code: 7,
      msg: "failed to allocate all requested IPs: 10.1.2.6",
    });
  });

  it("skips the duplicate check for a requested IP, as the reference does", async () => {
    const store = new MemStore();
    await allocate(store, [v4], [], "c1", "eth0");
    expect(await allocate(store, [v4], [ip("10.1.2.50")], "c1", "eth0")).toEqual([
      { address: "10.1.2.50/24", gateway: "10.1.2.1" },
    ]);
  });
});

describe("allocate: rollback", () => {
  it("releases what this ADD reserved when a later set is full", async () => {
    const store = new MemStore();
    const tiny = set({ subnet: "10.9.0.0/30" });
    await allocate(store, [tiny], [], "other", "eth0");
    expect(await errorOf(allocate(store, [v4, tiny], [], "c1", "eth0"))).toEqual({
      code: 101,
      msg: "failed to allocate for range 1: no IP addresses available in range set: 10.9.0.1-10.9.0.2",
    });
    expect(store.released).toEqual(["10.1.2.2"]);
    expect([...store.files.keys()]).toEqual(["10.9.0.2"]);
  });

  it("releases only this ADD's addresses when a later set finds a duplicate", async () => {
    const store = new MemStore();
    await allocate(store, [v6], [], "c1", "eth0");
    expect((await errorOf(allocate(store, [v4, v6], [], "c1", "eth0"))).code).toBe(102);
    expect(store.released).toEqual(["10.1.2.2"]);
    expect([...store.files.keys()]).toEqual(["2001:db8:1::2"]);
  });

  it("releases on a store failure and reports it as an I/O failure", async () => {
    const store = new MemStore();
    store.broken.add("2001:db8:1::2");
    expect(await errorOf(allocate(store, [v4, v6], [], "c1", "eth0"))).toEqual({
      code: 5,
      msg: "failed to allocate for range 1: open 2001:db8:1::2: no space left on device",
    });
    expect(store.files.size).toBe(0);
  });

  it("releases after a requested IP in a later set is refused", async () => {
    const store = new MemStore();
    store.files.set("2001:db8:1::9", "other\r\neth0");
    expect((await errorOf(allocate(store, [v4, v6], [ip("2001:db8:1::9")], "c1", "eth0"))).code).toBe(102);
    expect([...store.files.keys()]).toEqual(["2001:db8:1::9"]);
  });
});

describe("freeCount and hasFree", () => {
  it("counts a /29 as five, minus reservations in the set, ignoring others and the gateway", () => {
    expect(freeCount(slash29, [])).toBe(5n);
    expect(
      freeCount(slash29, [
        "10.1.2.2",
        "10.1.2.6",
        "10.1.2.6",
        "10.1.2.1",
        "10.1.2.7",
        "10.9.9.9",
        "fd00::1",
        "garbage",
      ]),
    ).toBe(3n);
  });

  it("counts a /64 without walking it and a gateway outside the range as nothing", () => {
    expect(freeCount(v6, ["2001:db8:1::2"])).toBe(18446744073709551613n);
    expect(freeCount(set({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.19" }), [])).toBe(10n);
  });

  it("hasFree answers from the store and stops at the first free address", async () => {
    const store = new MemStore();
    for (let i = 0; i < 4; i++) await allocate(store, [slash29], [], `c${i}`, "eth0");
    expect(await hasFree(slash29, (a) => store.isReserved(a))).toBe(true);
    await allocate(store, [slash29], [], "c4", "eth0");
    expect(await hasFree(slash29, (a) => store.isReserved(a))).toBe(false);
    let probes = 0;
    expect(
      await hasFree(v6, () => {
        probes++;
        return false;
      }),
    ).toBe(true);
    expect(probes).toBe(1);
  });
});
