import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { decodeGo } from "../../lib/gojson.js";
import type { NetConf } from "../../lib/types.js";
import { checkAllowlist, readAllowlist } from "../../plugins/tuning/allowlist.js";
import { PendingBackup, backupPath, formatBackup, parseBackup, readBackup } from "../../plugins/tuning/backup.js";
import {
  DEFAULT_DATA_DIR,
  TUNING_CONF_SHAPE,
  changesLink,
  loadTuningConfig,
  parseMac,
} from "../../plugins/tuning/config.js";
import { backupOf, checkProblem, linkTokens } from "../../plugins/tuning/main.js";
import { restoreTokens } from "../../plugins/tuning/pod.js";
import { sysctlKeyParts, sysctlKeyPath } from "../../plugins/tuning/sysctl-key.js";
import { codeOf } from "./codes.js";

const conf = (o: Record<string, unknown> = {}): NetConf =>
  decodeGo({ cniVersion: "1.0.0", name: "net1", type: "tuning", ...o }, TUNING_CONF_SHAPE) as NetConf;
const load = (o: Record<string, unknown> = {}, args: Record<string, string> = {}, ifname = "eth0") =>
  loadTuningConfig(conf(o), new Map(Object.entries(args)), ifname);

describe("tuning sysctl keys", () => {
  it("reads dot and slash forms alike, and replaces the first IFNAME after the dots", () => {
    expect(sysctlKeyPath("net.ipv4.conf.eth0.rp_filter", "eth0")).toBe("/proc/sys/net/ipv4/conf/eth0/rp_filter");
    expect(sysctlKeyPath("net/ipv4/conf/eth0/rp_filter", "eth0")).toBe("/proc/sys/net/ipv4/conf/eth0/rp_filter");
    expect(sysctlKeyPath("net.ipv4.conf.IFNAME.rp_filter", "eth0.100")).toBe(
      "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
    );
    expect(sysctlKeyPath("net.core.somaxconn", "eth0")).toBe("/proc/sys/net/core/somaxconn");
    expect(sysctlKeyParts("net.ipv6.conf.IFNAME.IFNAME", "e1")).toEqual(["net", "ipv6", "conf", "e1", "IFNAME"]);
  });

  it.each([
    ["kernel.panic", "not under net."],
    ["net", "only net"],
    ["", "empty"],
    ["net..ipv4.conf.all.forwarding", ".."],
    ["net/ipv4/../../kernel/panic", ".."],
    ["net.ipv4.conf.all.forwarding.", "empty part"],
    ["/net/ipv4/conf/all/forwarding", "leading separator"],
    ["net//ipv4", "empty part"],
    ["net.ipv4.conf.all.rp_filter\n", "newline"],
    ["net.ipv4.conf.a\u0000b.x", "NUL"],
    ["net.ipv4.conf.eth 0.x", "space"],
    ["net.ipv4.conf.-x.y", "leading dash"],
    ["net.ipv4.conf.$(id).x", "shell"],
    ["net.ipv4.conf.é.x", "non-ASCII"],
    [`net.${"a".repeat(300)}`, "too long"],
  ])("refuses %j (%s) with code 7", (key) => {
    expect(codeOf(() => sysctlKeyPath(key, "eth0"))).toBe(7);
  });
});

describe("tuning config", () => {
  it("has the reference's defaults", () => {
    expect(load()).toEqual({
      name: "net1",
      dataDir: DEFAULT_DATA_DIR,
      sysctls: [],
      mac: undefined,
      mtu: undefined,
      promisc: false,
      allmulti: undefined,
      txQLen: undefined,
    });
    expect(changesLink(load())).toBe(false);
  });

  it("reads keys case-insensitively as Go does (last duplicate wins) and keeps sysctl map keys exact", () => {
    const c = load({
      MTU: 1400,
      Mac: "C2-11-22-33-44-55",
      TxQlen: 0,
      AllMulti: false,
      Promisc: true,
      DataDir: "/tmp/x",
      SYSCTL: { "net.core.somaxconn": "512" },
    });
    expect(c).toMatchObject({
      mtu: 1400,
      mac: "c2:11:22:33:44:55",
      txQLen: 0,
      allmulti: false,
      promisc: true,
      dataDir: "/tmp/x",
    });
    expect(c.sysctls).toEqual([{ key: "net.core.somaxconn", path: "/proc/sys/net/core/somaxconn", value: "512" }]);
    expect(changesLink(c)).toBe(true);
  });

  it("merges in the reference's order: config < CNI_ARGS MAC < runtimeConfig.mac < args.cni", () => {
    expect(load({ mac: "02:00:00:00:00:01" }, { MAC: "02:00:00:00:00:02" }).mac).toBe("02:00:00:00:00:02");
    expect(
      load({ mac: "02:00:00:00:00:01", runtimeConfig: { mac: "02:00:00:00:00:03" } }, { MAC: "02:00:00:00:00:02" }).mac,
    ).toBe("02:00:00:00:00:03");
    expect(load({ runtimeConfig: { mac: "02:00:00:00:00:03" }, args: { cni: { mac: "02:00:00:00:00:04" } } }).mac).toBe(
      "02:00:00:00:00:04",
    );
    expect(load({ mac: "02:00:00:00:00:01", args: { cni: { mac: "" } } }).mac).toBeUndefined();
    const c = load({
      mtu: 1400,
      promisc: true,
      sysctl: { "net.core.somaxconn": "1", "net.ipv4.ip_forward": "1" },
      args: { CNI: { MTU: 1300, promisc: false, allmulti: true, txQLen: 10, sysctl: { "net.core.somaxconn": "2" } } },
    });
    expect(c).toMatchObject({ mtu: 1300, promisc: false, allmulti: true, txQLen: 10 });
    expect(c.sysctls.map((s) => [s.key, s.value])).toEqual([
      ["net.core.somaxconn", "2"],
      ["net.ipv4.ip_forward", "1"],
    ]);
    expect(load({ mtu: 1400, args: { cni: { mtu: 0 } } }).mtu).toBeUndefined();
    expect(load({ args: { cni: { sysctl: { "net.core.somaxconn": "3" } } } }).sysctls).toHaveLength(1);
  });

  it.each([
    [{ mtu: "1400" }, 7],
    [{ mtu: 1400.5 }, 7],
    [{ mtu: 67 }, 7],
    [{ mtu: 65536 }, 7],
    [{ mtu: -1 }, 7],
    [{ txQLen: -1 }, 7],
    [{ txQLen: 2 ** 32 }, 7],
    [{ txQLen: "1000" }, 7],
    [{ promisc: "true" }, 7],
    [{ allmulti: 1 }, 7],
    [{ mac: 12 }, 7],
    [{ mac: "zz:11:22:33:44:55" }, 7],
    [{ mac: "01:00:5e:00:00:01" }, 7],
    [{ mac: "00:00:00:00:00:00" }, 7],
    [{ mac: "02:11:22:33:44:55:66:77" }, 7],
    [{ mac: "02:11:22-33:44:55" }, 7],
    [{ sysctl: [] }, 7],
    [{ sysctl: "net.core.somaxconn=1" }, 7],
    [{ sysctl: { "net.core.somaxconn": 1 } }, 7],
    [{ sysctl: { "net.core.somaxconn": "1\n2" } }, 7],
    [{ sysctl: { "net.core.somaxconn": "1\u0000" } }, 7],
    [{ sysctl: { "kernel.hostname": "x" } }, 7],
    [{ sysctl: { "net.core.somaxconn": "1", "net/core/somaxconn": "2" } }, 7],
    [{ args: { cni: { sysctl: { "../../etc": "1" } } } }, 7],
    [{ args: { cni: { mtu: "x" } } }, 7],
    [{ args: "x" }, 7],
    [{ runtimeConfig: { mac: ["x"] } }, 7],
    [{ dataDir: "relative/dir" }, 7],
    [{ dataDir: "/run/../etc" }, 7],
    [{ dataDir: 5 }, 7],
  ])("refuses %j with code %i", (o, code) => {
    expect(codeOf(() => load(o))).toBe(code);
  });

  it("refuses a bad CNI_ARGS MAC with code 4 and a bad winning mac only", () => {
    expect(codeOf(() => load({}, { MAC: "nope" }))).toBe(4);
    // Overridden by the capability: the reference never parses it either.
    expect(load({ runtimeConfig: { mac: "02:00:00:00:00:03" } }, { MAC: "nope" }).mac).toBe("02:00:00:00:00:03");
  });

  it("accepts Go's MAC spellings and canonicalises them", () => {
    expect(parseMac("0A:58:0A:01:00:05")).toBe("0a:58:0a:01:00:05");
    expect(parseMac("0a-58-0a-01-00-05")).toBe("0a:58:0a:01:00:05");
    expect(parseMac("0a58.0a01.0005")).toBe("0a:58:0a:01:00:05");
  });
});

describe("tuning link changes, backup and CHECK", () => {
  const old = { mac: "0a:58:0a:01:00:05", mtu: 1500, promisc: false, allmulti: false, txQLen: 1000 };

  it("sets what is asked and backs up exactly that (promisc only ever turned on)", () => {
    const c = load({ mac: "02:11:22:33:44:55", mtu: 1400, promisc: true, allmulti: true, txQLen: 500 });
    expect(linkTokens(c)).toEqual([
      "address",
      "02:11:22:33:44:55",
      "mtu",
      "1400",
      "promisc",
      "on",
      "allmulticast",
      "on",
      "txqueuelen",
      "500",
    ]);
    expect(backupOf(c, old)).toEqual(old);
    expect(linkTokens(load({ promisc: false, mtu: 9000 }))).toEqual(["mtu", "9000"]);
    expect(backupOf(load({ mtu: 9000 }), old)).toEqual({ mtu: 1500 });
  });

  it("writes the reference's file format (Go's MarshalIndent with one space, struct order, omitempty)", () => {
    expect(formatBackup({ txQLen: 1000, mtu: 1500, mac: "0a:58:0a:01:00:05", allmulti: false, promisc: false })).toBe(
      '{\n "mac": "0a:58:0a:01:00:05",\n "promisc": false,\n "mtu": 1500,\n "allmulti": false,\n "txQLen": 1000\n}',
    );
    expect(formatBackup({})).toBe("{}");
    expect(formatBackup({ mtu: 0, mac: "" })).toBe("{}");
  });

  it("reads a reference backup back (Go's key rule) and refuses values that must not reach ip", () => {
    expect(parseBackup('{\n "mac": "0A:58:0A:01:00:05",\n "MTU": 1500,\n "promisc": true\n}')).toEqual({
      mac: "0a:58:0a:01:00:05",
      mtu: 1500,
      promisc: true,
    });
    expect(parseBackup("{}")).toEqual({});
    for (const bad of [
      "",
      "null",
      "[]",
      '{"mac":"x y"}',
      '{"mtu":"1500"}',
      '{"mtu":-1}',
      '{"promisc":"on"}',
      '{"txQLen":1.5}',
      '{"mac":"02:00:00:00:00:01 promisc on"}',
    ]) {
      expect(parseBackup(bad)).toBeUndefined();
    }
    expect(restoreTokens({ mac: "0a:58:0a:01:00:05", mtu: 1500, promisc: false, allmulti: true, txQLen: 0 })).toEqual([
      "mtu",
      "1500",
      "address",
      "0a:58:0a:01:00:05",
      "promisc",
      "off",
      "allmulticast",
      "on",
      "txqueuelen",
      "0",
    ]);
  });

  it("compares the live state as the reference does: promisc false means off, sysctls as read", () => {
    const c = load({ sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "1" }, mtu: 1400 });
    expect(checkProblem(c, "eth0", ["1"], { ...old, mtu: 1400 })).toBeUndefined();
    expect(checkProblem(c, "eth0", ["2"], { ...old, mtu: 1400 })).toMatch(/rp_filter is 1, current value is 2/);
    expect(checkProblem(c, "eth0", ["1"], { ...old, mtu: 1400, promisc: true })).toMatch(/promisc is false/);
    expect(checkProblem(c, "eth0", ["1"], old)).toMatch(/MTU of eth0 is 1400, current value is 1500/);
    expect(checkProblem(load({ txQLen: 0 }), "eth0", [], old)).toMatch(/Transmit Queue Length/);
    expect(checkProblem(load({ mac: "0A:58:0A:01:00:05" }), "eth0", [], old)).toBeUndefined();
  });
});

describe("tuning backup file", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("appears only on commit, named <containerID>_<ifname>.json, mode 0600; abandon leaves nothing", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tuning-")), "data");
    dirs.push(join(dir, ".."));
    const path = backupPath(dir, "c1", "eth0");
    expect(path).toBe(join(dir, "c1_eth0.json"));
    const p = new PendingBackup(path, dir);
    expect(existsSync(path)).toBe(false);
    p.commit({ mtu: 1500 });
    expect(readFileSync(path, "utf8")).toBe('{\n "mtu": 1500\n}');
    expect(readBackup(path)).toEqual({ mtu: 1500 });
    const q = new PendingBackup(backupPath(dir, "c2", "eth0"), dir);
    q.abandon();
    expect(readdirSync(dir)).toEqual(["c1_eth0.json"]);
  });

  it("fails with code 5 when the data directory cannot hold it", () => {
    const d = mkdtempSync(join(tmpdir(), "tuning-"));
    dirs.push(d);
    writeFileSync(join(d, "file"), "");
    expect(codeOf(() => new PendingBackup(join(d, "file", "x.json"), join(d, "file")))).toBe(5);
  });
});

describe("tuning sysctl allowlist", () => {
  it("allows everything without a file, otherwise only keys some pattern matches (unanchored, as Go)", () => {
    expect(codeOf(() => checkAllowlist(["net.core.somaxconn"], undefined))).toBeUndefined();
    expect(
      codeOf(() => checkAllowlist(["net.ipv4.conf.IFNAME.rp_filter"], ["^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$"])),
    ).toBeUndefined();
    expect(codeOf(() => checkAllowlist(["net.core.somaxconn"], ["somax"]))).toBeUndefined();
    expect(codeOf(() => checkAllowlist(["net.core.somaxconn", "net.ipv4.ip_forward"], ["somax"]))).toBe(7);
    expect(codeOf(() => checkAllowlist(["net.core.somaxconn"], ["("]))).toBe(7);
  });

  it("reads one pattern a line, blank lines ignored; a missing file is no allowlist", () => {
    const d = mkdtempSync(join(tmpdir(), "tuning-"));
    try {
      writeFileSync(join(d, "allowlist.conf"), "^net\\.core\\..*\n\n  ^net\\.ipv4\\.ip_forward$  \n");
      expect(readAllowlist(join(d, "allowlist.conf"))).toEqual(["^net\\.core\\..*", "^net\\.ipv4\\.ip_forward$"]);
      expect(readAllowlist(join(d, "none.conf"))).toBeUndefined();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
