// The disk store's contract: the reference's format, atomic reservations, and an attachment index that is a claim
// checked against the files, never the only way to find a reservation (the reference plugin, a crash of ours).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { parseResolvConf } from "../../ipam/host-local/resolvconf.js";
import { DiskStore } from "../../ipam/host-local/store.js";

let dataDir = "";
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "cni-ts-store-"));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const open = () => DiskStore.open(dataDir, "net1", true)!;

describe("DiskStore", () => {
  it("writes reservations in the reference's format, mode 0600, and remembers the last one per set", async () => {
    const s = open();
    expect(await s.reserve("10.1.0.2", "ctr1", "eth0", 0)).toBe(true);
    const file = join(dataDir, "net1", "10.1.0.2");
    expect(readFileSync(file, "utf8")).toBe("ctr1\r\neth0");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "net1")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dataDir, "net1", "last_reserved_ip.0"), "utf8")).toBe("10.1.0.2");
    expect(await s.lastReserved(0)).toBe("10.1.0.2");
  });

  it("a taken address cannot be reserved again", async () => {
    await open().reserve("10.1.0.2", "ctr1", "eth0", 0);
    expect(await open().reserve("10.1.0.2", "ctr2", "eth0", 0)).toBe(false);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("ctr1\r\neth0");
  });

  it("an ADD's index entry goes adding -> added; DEL leaves a tombstone; a repeated DEL finds nothing", async () => {
    const s = open();
    s.begin("ctr1", "eth0");
    expect(s.entries()).toEqual([expect.objectContaining({ id: "ctr1", ifname: "eth0", state: "adding", ips: [] })]);
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    await s.reserve("fd01::2", "ctr1", "eth0", 1);
    s.commit(["10.1.0.2", "fd01::2"]);
    const t = open();
    expect(await t.findByAttachment("ctr1", "eth0")).toEqual(["10.1.0.2", "fd01::2"]);
    expect(t.releaseAttachment("ctr1", "eth0").sort()).toEqual(["10.1.0.2", "fd01::2"]);
    expect(t.entries()).toEqual([expect.objectContaining({ state: "released", ips: [] })]);
    expect(t.releaseAttachment("ctr1", "eth0")).toEqual([]);
    expect(readdirSync(join(dataDir, "net1")).sort()).toEqual(["last_reserved_ip.0", "last_reserved_ip.1"]);
  });

  it("a failed ADD leaves a tombstone, not a claim", async () => {
    const s = open();
    s.begin("ctr1", "eth0");
    s.abort();
    expect(s.entries()).toEqual([expect.objectContaining({ state: "released", ips: [] })]);
  });

  it("finds what an interrupted ADD reserved (state adding) by scanning, and releases it", async () => {
    const s = open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.7", "ctr1", "eth0", 0);
    // killed here: no commit
    expect(open().releaseAttachment("ctr1", "eth0")).toEqual(["10.1.0.7"]);
  });

  it("finds a reservation the reference plugin made (no index entry) by scanning, and releases it", () => {
    const s = open();
    writeFileSync(join(dataDir, "net1", "10.1.0.9"), "refctr\r\neth0");
    expect(s.held("refctr", "eth0")).toEqual(["10.1.0.9"]);
    expect(s.releaseAttachment("refctr", "eth0")).toEqual(["10.1.0.9"]);
  });

  it("uses prevResult hints only when the file names the attachment", async () => {
    const s = open();
    writeFileSync(join(dataDir, "net1", "10.1.0.3"), "other\r\neth0");
    s.begin("ctr1", "eth0");
    s.commit([]);
    expect(s.releaseAttachment("ctr1", "eth0", ["10.1.0.3"])).toEqual([]);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.3"), "utf8")).toBe("other\r\neth0");
  });

  it("does not trust an index entry whose file was given to someone else", async () => {
    const s = open();
    s.begin("ctr1", "eth0");
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    s.commit(["10.1.0.2"]);
    rmSync(join(dataDir, "net1", "10.1.0.2"));
    writeFileSync(join(dataDir, "net1", "10.1.0.2"), "other\r\neth0");
    expect(open().releaseAttachment("ctr1", "eth0")).toEqual([]);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("other\r\neth0");
  });

  it("legacy ID-only files count only when the attachment holds no current-format file", async () => {
    const s = open();
    writeFileSync(join(dataDir, "net1", "10.1.0.5"), "ctr1");
    expect(s.held("ctr1", "eth0")).toEqual(["10.1.0.5"]);
    writeFileSync(join(dataDir, "net1", "10.1.0.6"), "ctr1\r\neth0");
    expect(s.held("ctr1", "eth0")).toEqual(["10.1.0.6"]);
  });

  it("an empty reservation file is a leftover only once it is old: young ones may be a reference ADD mid-write", async () => {
    const s = open();
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
    const s = open();
    await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
    writeFileSync(join(dataDir, "net1", "lock"), "");
    expect(s.scan().map((r) => r.ip)).toEqual(["10.1.0.2"]);
  });

  it("refuses a symlink planted at <dataDir>/<name>", () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "cni-ts-elsewhere-"));
    try {
      symlinkSync(elsewhere, join(dataDir, "net2"));
      expect(() => DiskStore.open(dataDir, "net2", true)).toThrow(CniError);
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it("opening without create leaves a missing network missing", () => {
    expect(DiskStore.open(dataDir, "never", false)).toBeUndefined();
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

describe("resolv.conf", () => {
  it("takes nameserver, domain, search and options; skips comments", () => {
    const text = "# generated\nnameserver 10.96.0.10\nnameserver fd00::10\n; old\ndomain cluster.local\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5 rotate\nbogus line\n";
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
