// The disk store's contract with the reference's format: the attachment index is a cache that must notice every
// change made behind its back (the reference plugin, a crash of ours, a person) and never hide a reservation.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
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
    expect(await s.locked(() => s.reserve("10.1.0.2", "ctr1", "eth0", 0))).toBe(true);
    const file = join(dataDir, "net1", "10.1.0.2");
    expect(readFileSync(file, "utf8")).toBe("ctr1\r\neth0");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "net1")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dataDir, "net1", "last_reserved_ip.0"), "utf8")).toBe("10.1.0.2");
    expect(await s.lastReserved(0)).toBe("10.1.0.2");
  });

  it("a taken address cannot be reserved again", async () => {
    const s = open();
    await s.locked(() => s.reserve("10.1.0.2", "ctr1", "eth0", 0));
    expect(await open().locked(() => open().reserve("10.1.0.2", "ctr2", "eth0", 0))).toBe(false);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("ctr1\r\neth0");
  });

  it("finds an attachment's addresses through the index, across processes (new store objects)", async () => {
    const s = open();
    await s.locked(async () => {
      await s.reserve("10.1.0.2", "ctr1", "eth0", 0);
      await s.reserve("fd01::2", "ctr1", "eth0", 1);
      await s.reserve("10.1.0.3", "ctr1", "net1", 0);
    });
    const t = open();
    expect(await t.locked(async () => t.held("ctr1", "eth0").sort())).toEqual(["10.1.0.2", "fd01::2"]);
    expect(await t.locked(async () => t.releaseAttachment("ctr1", "eth0").sort())).toEqual(["10.1.0.2", "fd01::2"]);
    expect(readdirSync(join(dataDir, "net1")).sort()).toEqual(["10.1.0.3", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
  });

  it("sees a reservation written behind its back (by the reference plugin) and can release it", async () => {
    const s = open();
    await s.locked(() => s.reserve("10.1.0.2", "ctr1", "eth0", 0));
    writeFileSync(join(dataDir, "net1", "10.1.0.9"), "refctr\r\neth0");
    const t = open();
    expect(await t.locked(async () => t.held("refctr", "eth0"))).toEqual(["10.1.0.9"]);
    expect(await t.locked(async () => t.releaseAttachment("refctr", "eth0"))).toEqual(["10.1.0.9"]);
  });

  it("does not trust an index entry whose file was removed or given to someone else", async () => {
    const s = open();
    await s.locked(() => s.reserve("10.1.0.2", "ctr1", "eth0", 0));
    rmSync(join(dataDir, "net1", "10.1.0.2"));
    writeFileSync(join(dataDir, "net1", "10.1.0.2"), "other\r\neth0");
    const t = open();
    expect(await t.locked(async () => t.held("ctr1", "eth0"))).toEqual([]);
    expect(await t.locked(async () => t.releaseAttachment("ctr1", "eth0"))).toEqual([]);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.2"), "utf8")).toBe("other\r\neth0");
  });

  it("legacy ID-only files count only when the attachment holds no current-format file", async () => {
    const s = open();
    writeFileSync(join(dataDir, "net1", "10.1.0.5"), "ctr1");
    expect(await s.locked(async () => s.held("ctr1", "eth0"))).toEqual(["10.1.0.5"]);
    await s.locked(() => s.reserve("10.1.0.6", "ctr1", "eth0", 0));
    expect(await s.locked(async () => s.held("ctr1", "eth0"))).toEqual(["10.1.0.6"]);
  });

  it("removes empty reservation files (reference leftovers) when it rescans, and replaces one in its way", async () => {
    const s = open();
    writeFileSync(join(dataDir, "net1", "10.1.0.7"), "");
    writeFileSync(join(dataDir, "net1", "10.1.0.8"), "");
    expect(await s.locked(async () => s.scan())).toEqual([]);
    expect(readdirSync(join(dataDir, "net1"))).not.toContain("10.1.0.7");
    writeFileSync(join(dataDir, "net1", "10.1.0.8"), "");
    expect(await s.locked(() => s.reserve("10.1.0.8", "ctr3", "eth0", 0))).toBe(true);
    expect(readFileSync(join(dataDir, "net1", "10.1.0.8"), "utf8")).toBe("ctr3\r\neth0");
  });

  it("never treats lock or last_reserved_ip.* as reservations", async () => {
    const s = open();
    await s.locked(() => s.reserve("10.1.0.2", "ctr1", "eth0", 0));
    expect((await s.locked(async () => s.scan())).map((r) => r.ip)).toEqual(["10.1.0.2"]);
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
