// The disk store's contract: the reference's format, atomic reservations, and an attachment index that is a claim
// checked against the files, never the only way to find a reservation (the reference plugin, a crash of ours).
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { parseResolvConf } from "../../ipam/host-local/resolvconf.js";
import { DiskStore, type EntryNow, TOMBSTONE_TTL_MS } from "../../ipam/host-local/store.js";

let dataDir = "";
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "cni-ts-store-"));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const open = async () => (await DiskStore.open(dataDir, "net1", true))!;

describe("DiskStore", () => {
  it("writes reservations in the reference's format, mode 0600, and remembers the last one per set", async () => {
    const s = await open();
    expect(await s.reserve("10.1.0.2", "ctr1", "eth0", 0)).toBe(true);
    const file = join(dataDir, "net1", "10.1.0.2");
    expect(readFileSync(file, "utf8")).toBe("ctr1\r\neth0");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "net1")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dataDir, "net1", "last_reserved_ip.0"), "utf8")).toBe("10.1.0.2");
    expect(await s.lastReserved(0)).toBe("10.1.0.2");
  });

  it("a taken address cannot be reserved again", async () => {
    await (await open()).reserve("10.1.0.2", "ctr1", "eth0", 0);
    expect(await (await open()).reserve("10.1.0.2", "ctr2", "eth0", 0)).toBe(false);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("ctr1\r\neth0");
  });

  it("an ADD's index entry goes adding -> added; DEL leaves a tombstone; a repeated DEL finds nothing", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    expect(s.entries()).toEqual([expect.objectContaining({ id: "ctr1", ifname: "eth0", state: "adding", ips: [] })]);
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    await s.reserve("fd01::2", "ctr1", "eth0", 1);
    s.commit(["10.1.0.2", "fd01::2"]);
    const t = await open();
    expect(await t.findByAttachment("ctr1", "eth0")).toEqual(["10.1.0.2", "fd01::2"]);
    expect(t.releaseAttachment("ctr1", "eth0").sort()).toEqual(["10.1.0.2", "fd01::2"]);
    expect(t.entries()).toEqual([expect.objectContaining({ state: "released", ips: [] })]);
    expect(t.releaseAttachment("ctr1", "eth0")).toEqual([]);
    expect(readdirSync(join(dataDir, "net1")).sort()).toEqual(["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
  });

  it("a repeated DEL that finds the tombstone and nothing held writes nothing; one that finds addresses does", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    s.commit(["10.1.0.2"]);
    expect(s.releaseAttachment("ctr1", "eth0")).toEqual(["10.1.0.2"]);
    const file = join(dataDir, ".cni-ts", "net1", "attachments", "ctr1@eth0");
    const first = statSync(file).ino;
    expect((await open()).releaseAttachment("ctr1", "eth0")).toEqual([]);
    expect(statSync(file).ino).toBe(first);
    // An address still naming the attachment (a hint from prevResult) is released, and the tombstone written again.
    await s.reserve("10.1.0.3", "ctr1", "eth0", 0);
    expect((await open()).releaseAttachment("ctr1", "eth0", ["10.1.0.3"])).toEqual(["10.1.0.3"]);
    expect(statSync(file).ino).not.toBe(first);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ state: "released", ips: [] });
  });

  it("a failed ADD of a new attachment leaves no entry at all; of a released one, its tombstone as it was", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    s.abort();
    expect(s.entries()).toEqual([]);
    s.begin("ctr1", "eth0");
    s.commit([]);
    s.releaseAttachment("ctr1", "eth0");
    const tombstone = readFileSync(join(dataDir, ".cni-ts", "net1", "attachments", "ctr1@eth0"), "utf8");
    s.begin("ctr1", "eth0");
    s.abort();
    expect(readFileSync(join(dataDir, ".cni-ts", "net1", "attachments", "ctr1@eth0"), "utf8")).toBe(tombstone);
  });

  it("a failed ADD puts last_reserved_ip.<set> back as it was, and removes one it created", async () => {
    const s = await open();
    s.begin("a", "eth0");
    await s.reserve("10.1.0.2", "a", "eth0", 0);
    s.commit(["10.1.0.2"]);
    s.begin("b", "eth0");
    await s.reserve("10.1.0.3", "b", "eth0", 0);
    await s.reserve("fd01::3", "b", "eth0", 1);
    await s.release("10.1.0.3");
    await s.release("fd01::3");
    s.abort();
    expect(readFileSync(join(dataDir, "net1", "last_reserved_ip.0"), "utf8")).toBe("10.1.0.2");
    expect(readdirSync(join(dataDir, "net1")).sort()).toEqual(["10.1.0.2", "last_reserved_ip.0", "lock"]);
  });

  it("releaseOwned releases what the entry lists only while the entry is that ADD's", async () => {
    const s = await open();
    s.begin("c", "eth0", "a".repeat(32));
    await s.reserve("10.1.0.2", "c", "eth0", 0);
    s.commit(["10.1.0.2"]);
    expect(s.releaseOwned("c", "eth0", "b".repeat(32))).toEqual([]);
    expect(await s.findByAttachment("c", "eth0")).toEqual(["10.1.0.2"]);
    expect(s.releaseOwned("c", "eth0", "a".repeat(32))).toEqual(["10.1.0.2"]);
    expect(await s.findByAttachment("c", "eth0")).toEqual([]);
    expect(s.entries()).toEqual([expect.objectContaining({ state: "released", ips: [] })]);
  });

  it("finds what an interrupted ADD reserved (state adding) by scanning, and releases it", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.7", "ctr1", "eth0", 0);
    // killed here: no commit
    expect((await open()).releaseAttachment("ctr1", "eth0")).toEqual(["10.1.0.7"]);
  });

  it("finds a reservation the reference plugin made (no index entry) by scanning, and releases it", async () => {
    const s = await open();
    writeFileSync(join(dataDir, "net1", "10.1.0.9"), "refctr\r\neth0");
    expect(s.held("refctr", "eth0")).toEqual(["10.1.0.9"]);
    expect(s.releaseAttachment("refctr", "eth0")).toEqual(["10.1.0.9"]);
  });

  it("uses prevResult hints only when the file names the attachment", async () => {
    const s = await open();
    writeFileSync(join(dataDir, "net1", "10.1.0.3"), "other\r\neth0");
    s.begin("ctr1", "eth0");
    s.commit([]);
    expect(s.releaseAttachment("ctr1", "eth0", ["10.1.0.3"])).toEqual([]);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.3"), "utf8")).toBe("other\r\neth0");
  });

  it("does not trust an index entry whose file was given to someone else", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    s.commit(["10.1.0.2"]);
    rmSync(join(dataDir, "net1", "10.1.0.2"));
    writeFileSync(join(dataDir, "net1", "10.1.0.2"), "other\r\neth0");
    expect((await open()).releaseAttachment("ctr1", "eth0")).toEqual([]);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("other\r\neth0");
  });

  it("legacy ID-only files count only when the attachment holds no current-format file", async () => {
    const s = await open();
    writeFileSync(join(dataDir, "net1", "10.1.0.5"), "ctr1");
    expect(s.held("ctr1", "eth0")).toEqual(["10.1.0.5"]);
    writeFileSync(join(dataDir, "net1", "10.1.0.6"), "ctr1\r\neth0");
    expect(s.held("ctr1", "eth0")).toEqual(["10.1.0.6"]);
  });

  it("an empty reservation file is a leftover only once it is old: young ones may be a reference ADD mid-write", async () => {
    const s = await open();
    const young = join(dataDir, "net1", "10.1.0.8");
    writeFileSync(young, "");
    expect(await s.reserve("10.1.0.8", "ctr3", "eth0", 0)).toBe(false);
    const old = join(dataDir, "net1", "10.1.0.7");
    writeFileSync(old, "");
    utimesSync(old, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(await s.reserve("10.1.0.7", "ctr3", "eth0", 0)).toBe(true);
    expect(readFileSync(old, "utf8")).toBe("ctr3\r\neth0");
    utimesSync(young, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(s.scan().map((r) => r.ip)).toEqual(["10.1.0.7"]);
    expect(readdirSync(join(dataDir, "net1"))).not.toContain("10.1.0.8");
  });

  it("never treats lock or last_reserved_ip.* as reservations", async () => {
    const s = await open();
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    writeFileSync(join(dataDir, "net1", "lock"), "");
    expect(s.scan().map((r) => r.ip)).toEqual(["10.1.0.2"]);
  });

  it("refuses a symlink planted at <dataDir>/<name> or at any directory of ours, and writes nothing anywhere", async () => {
    for (const planted of ["net2", ".cni-ts", ".cni-ts/net2", ".cni-ts/net2/attachments", ".cni-ts/net2/tmp"]) {
      const elsewhere = mkdtempSync(join(tmpdir(), "cni-ts-elsewhere-"));
      try {
        mkdirSync(join(dataDir, planted, ".."), { recursive: true });
        symlinkSync(elsewhere, join(dataDir, planted));
        const before = readdirSync(dataDir, { recursive: true }).sort();
        await expect(DiskStore.open(dataDir, "net2", true)).rejects.toThrow(CniError);
        await expect(DiskStore.open(dataDir, "net2", false)).rejects.toThrow(CniError);
        expect(readdirSync(elsewhere)).toEqual([]);
        expect(readdirSync(dataDir, { recursive: true }).sort()).toEqual(before);
      } finally {
        rmSync(join(dataDir, planted.split("/")[0]!), { recursive: true, force: true });
        rmSync(elsewhere, { recursive: true, force: true });
      }
    }
  });

  it("follows a symlinked dataDir, as the reference does", async () => {
    const real = mkdtempSync(join(tmpdir(), "cni-ts-real-"));
    try {
      const link = join(dataDir, "linked");
      symlinkSync(real, link);
      const s = (await DiskStore.open(link, "net1", true))!;
      expect(await s.reserve("10.1.0.2", "c", "eth0", 0)).toBe(true);
      expect(readdirSync(join(real, "net1"))).toContain("10.1.0.2");
    } finally {
      rmSync(real, { recursive: true, force: true });
    }
  });

  it("opening without create leaves a missing network missing", async () => {
    expect(await DiskStore.open(dataDir, "never", false)).toBeUndefined();
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it("indexes the reference's reservations the first time it opens a network, so ADD sees its duplicates", async () => {
    mkdirSync(join(dataDir, "net1"));
    writeFileSync(join(dataDir, "net1", "10.1.0.4"), "refctr\r\neth0");
    writeFileSync(join(dataDir, "net1", "fd01::4"), "refctr\r\neth0");
    const s = await open();
    expect((await s.findByAttachment("refctr", "eth0")).sort()).toEqual(["10.1.0.4", "fd01::4"]);
    expect(s.entries()).toEqual([expect.objectContaining({ id: "refctr", ifname: "eth0", state: "added" })]);
  });

  it("a refused ADD (duplicate) keeps what the attachment already holds", async () => {
    const s = await open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    s.commit(["10.1.0.2"]);
    s.begin("ctr1", "eth0");
    s.abort();
    expect(await s.findByAttachment("ctr1", "eth0")).toEqual(["10.1.0.2"]);
  });
});

describe("removing index entries safely (GC, tombstone sweep)", () => {
  const entryFile = (id: string) => join(dataDir, ".cni-ts", "net1", "attachments", `${id}@eth0`);
  const hoursAgo = (file: string, h: number) =>
    utimesSync(file, new Date(Date.now() - h * 3_600_000), new Date(Date.now() - h * 3_600_000));
  const oldTombstone = (e: EntryNow) => e.entry.state === "released" && Date.now() - e.sinceMs >= TOMBSTONE_TTL_MS;

  it("an entry rewritten by its ADD before it is judged is put back", async () => {
    const s = await open();
    s.begin("c", "eth0");
    s.commit([]);
    s.releaseAttachment("c", "eth0"); // a tombstone
    hoursAgo(entryFile("c"), 2);
    s.begin("c", "eth0"); // ADD again: the name now holds an "adding" entry
    expect(s.forgetIf("c", "eth0", oldTombstone)).toBe(false);
    expect(s.entries()).toEqual([expect.objectContaining({ id: "c", state: "adding" })]);
  });

  it("an entry its ADD rewrites while it is being judged (renamed aside) keeps the ADD's version", async () => {
    const s = await open();
    const add = await open();
    s.begin("c", "eth0");
    s.commit([]);
    s.releaseAttachment("c", "eth0");
    hoursAgo(entryFile("c"), 2);
    // Judged old, and dropped, but the ADD wrote its intent in between: that one stays.
    expect(
      s.forgetIf("c", "eth0", (e) => {
        add.begin("c", "eth0");
        return oldTombstone(e);
      }),
    ).toBe(true);
    expect(s.entries()).toEqual([expect.objectContaining({ id: "c", state: "adding" })]);
    // Judged young and put back, but the ADD wrote in between: the newer one wins, the old one is not put back.
    add.commit([]);
    // Told apart by inode, not content: two commits within one millisecond write the same bytes.
    const judged = statSync(entryFile("c")).ino;
    expect(
      s.forgetIf("c", "eth0", (e) => {
        add.begin("c", "eth0");
        add.commit([]);
        return e.entry.state === "released";
      }),
    ).toBe(false);
    expect(JSON.parse(readFileSync(entryFile("c"), "utf8"))).toMatchObject({ state: "added" });
    expect(statSync(entryFile("c")).ino).not.toBe(judged);
    expect(readdirSync(join(dataDir, ".cni-ts", "net1", "tmp"))).toEqual([]);
  });

  it("sweepTombstones: once per hour (the marker's mtime), only tombstones older than an hour", async () => {
    for (const id of ["old", "young", "stuck"]) (await open()).begin(id, "eth0"); // "stuck" stays "adding"
    const t = await open();
    t.begin("live", "eth0");
    t.commit([]);
    t.releaseAttachment("old", "eth0");
    t.releaseAttachment("young", "eth0");
    for (const id of ["old", "live", "stuck"]) hoursAgo(entryFile(id), 2);
    expect(t.sweepTombstones()).toBe(0); // swept when first used: not again within the hour
    expect(t.entries()).toHaveLength(4);
    hoursAgo(join(dataDir, ".cni-ts", "net1", "swept"), 1.01);
    expect(t.sweepTombstones()).toBe(1);
    expect(
      t
        .entries()
        .map((e) => `${e.id} ${e.state}`)
        .sort(),
    ).toEqual(["live added", "stuck adding", "young released"]);
    hoursAgo(entryFile("young"), 2);
    expect(t.sweepTombstones()).toBe(0); // the marker is fresh again
  });
});

describe("resolv.conf", () => {
  it("takes nameserver, domain, search and options; skips comments", () => {
    const text =
      "# generated\nnameserver 10.96.0.10\nnameserver fd00::10\n; old\ndomain cluster.local\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5 rotate\nbogus line\n";
    expect(parseResolvConf(text)).toEqual({
      nameservers: ["10.96.0.10", "fd00::10"],
      domain: "cluster.local",
      search: ["default.svc.cluster.local", "svc.cluster.local"],
      options: ["ndots:5", "rotate"],
    });
  });
  it("an empty file is an empty dns", () => {
    expect(parseResolvConf("")).toEqual({});
  });
});
