// host-local, the BUILT executable, against real directories: result shapes per version, the on-disk format shared
// with the reference Go plugin (/usr/lib/cni/host-local), round robin, requested IPs, exhaustion and STATUS, GC,
// interoperability, crash leftovers, concurrency, kill -9, path safety and bad configs. No netns is needed:
// host-local never enters one, so CNI_NETNS is any absolute path.
import type { ChildProcess } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProcResult, spawnPlugin } from "../../sandbox/plugin.js";
import { labPath } from "../../sandbox/tools.js";
import { DIST_BIN, type ExeResult, Sandbox, requireBuilt, runExe } from "./helpers.js";

// --- helpers ------------------------------------------------------------------------------------------------------

const OURS = join(DIST_BIN, "host-local");
const REFERENCE = "/usr/lib/cni/host-local";
const FAKE_NETNS = "/var/run/netns/fake";
const sandbox = new Sandbox();
/** The node-tools PATH plus util-linux flock, which lib/lock.ts runs by name (GC locks through it). */
let PATH = "";

beforeAll(() => {
  requireBuilt();
  PATH = labPath(sandbox);
});
afterAll(() => sandbox.cleanup());

type Json = Record<string, unknown>;

/** A network configuration: extra's top-level keys win, extra.ipam is merged over the default ipam. */
function conf(version: string, extra: Json & { ipam?: Json } = {}): string {
  const { ipam, ...top } = extra;
  return JSON.stringify({
    cniVersion: version,
    name: "net1",
    type: "bridge",
    ...top,
    ipam: { type: "host-local", ...ipam },
  });
}

/** The environment a runtime sets for one verb (empty id/ifname are left out, as for GC and STATUS). */
function env(cmd: string, id = "", ifname = "", extra: Record<string, string> = {}): Record<string, string> {
  const e: Record<string, string> = { PATH, CNI_COMMAND: cmd, CNI_PATH: "/opt/cni/bin" };
  if (id !== "") e.CNI_CONTAINERID = id;
  if (ifname !== "") e.CNI_IFNAME = ifname;
  if (cmd === "ADD" || cmd === "CHECK") e.CNI_NETNS = FAKE_NETNS;
  return { ...e, ...extra };
}

/** Success of a verb that prints nothing (DEL, CHECK, GC, STATUS). */
function expectOk(r: ExeResult): void {
  expect(r.status, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toBe("");
}

function expectError(r: ExeResult, code: number): void {
  expect(r.status, r.stdout + r.stderr).toBe(1);
  expect(r.json?.code, r.stdout).toBe(code);
  expect(typeof r.json?.msg).toBe("string");
}

/** Every path under root (relative; directories end in "/", symlinks in "@"), sorted. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymbolicLink()) out.push(`${r}@`);
      else if (e.isDirectory()) {
        out.push(`${r}/`);
        walk(join(dir, e.name), r);
      } else out.push(r);
    }
  };
  if (existsSync(root)) walk(root, "");
  return out.sort();
}

const sorted = (a: string[]): string[] => [...a].sort();
const mode = (p: string): number => statSync(p).mode & 0o777;

/** One host-local network in its own temp dataDir, with verbs run by ours (default) or the reference. */
class Net {
  readonly dataDir: string;
  constructor(
    label: string,
    readonly ipam: Json,
    readonly name = "net1",
    readonly version = "1.0.0",
  ) {
    this.dataDir = sandbox.tmpdir(`hl-${label}`);
  }
  get dir(): string {
    return join(this.dataDir, this.name);
  }
  get attachments(): string {
    return join(this.dataDir, ".cni-ts", this.name, "attachments");
  }
  conf(top: Json = {}, version = this.version): string {
    const { ipam, ...rest } = top as Json & { ipam?: Json };
    return conf(version, { name: this.name, ...rest, ipam: { dataDir: this.dataDir, ...this.ipam, ...ipam } });
  }
  run(
    cmd: string,
    id = "",
    ifname = "",
    o: { exe?: string; top?: Json; env?: Record<string, string>; version?: string } = {},
  ): ExeResult {
    return runExe(o.exe ?? OURS, env(cmd, id, ifname, o.env), this.conf(o.top, o.version ?? this.version));
  }
  /** ADD that must succeed; returns the result. */
  add(id: string, ifname = "eth0", o: Parameters<Net["run"]>[3] = {}): Json {
    const r = this.run("ADD", id, ifname, o);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    return r.json as Json;
  }
  /** The addresses (without prefix) of an ADD result. */
  static addrs(result: Json): string[] {
    return (result.ips as Array<{ address: string }>).map((ip) => ip.address.split("/")[0] as string);
  }
  addrOf(id: string, ifname = "eth0", o: Parameters<Net["run"]>[3] = {}): string[] {
    return Net.addrs(this.add(id, ifname, o));
  }
  del(id: string, ifname = "eth0", o: Parameters<Net["run"]>[3] = {}): void {
    const r = this.run("DEL", id, ifname, o);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toBe("");
  }
  gc(valid: Json, version = "1.1.0"): ExeResult {
    return this.run("GC", "", "", { top: valid, version });
  }
  /**
   * The network directory's entries (none when it does not exist yet), without `lock`: the reference's flock file
   * may or may not be there depending on whether an operation of ours took the lock; when it is, it is empty.
   */
  files(): string[] {
    if (!existsSync(this.dir)) return [];
    const all = sorted(readdirSync(this.dir));
    if (all.includes("lock")) expect(statSync(join(this.dir, "lock")).size).toBe(0);
    return all.filter((f) => f !== "lock");
  }
  /** Every address an entry of our attachment index claims (the index must never outlive a release). */
  claims(): string[] {
    if (!existsSync(this.attachments)) return [];
    return readdirSync(this.attachments).flatMap(
      (f) => (JSON.parse(readFileSync(join(this.attachments, f), "utf8")) as { ips: string[] }).ips,
    );
  }
  /** Make a file look as if a crash left it long ago. */
  age(file: string): void {
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(this.dir, file), old, old);
  }
  /**
   * Make every attachment's ADD (or DEL) look an hour old: an index entry's mtime is when its ADD began, and GC never
   * releases an ADD that began less than 60 s ago, whatever gcGraceSeconds says (docs/host-local.md).
   */
  ageIndex(): void {
    const old = new Date(Date.now() - 3_600_000);
    for (const f of readdirSync(this.attachments)) utimesSync(join(this.attachments, f), old, old);
  }
  read(file: string): string {
    return readFileSync(join(this.dir, file), "utf8");
  }
  /** Reservation files (named by an address) and their content. */
  reservations(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of this.files()) if (!f.startsWith("last_reserved_ip.")) out[f] = this.read(f);
    return out;
  }
}

/** runExe, but asynchronous (spawn), so that many run at once; onSpawn gets the child (to kill it). */
function runAsync(
  file: string,
  e: Record<string, string>,
  stdin: string,
  onSpawn?: (c: ChildProcess) => void,
): Promise<ProcResult> {
  return spawnPlugin(file, [], stdin, { env: e, ...(onSpawn ? { onSpawn } : {}) });
}

const dualStack = (n: number): Json => ({
  ranges: [[{ subnet: `10.${n}.0.0/24` }], [{ subnet: `fd${n.toString().padStart(2, "0")}::/64` }]],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: `10.${n}.0.254` }, { dst: "::/0" }],
});
/** What a network directory holds once every reservation is released (plus, possibly, the empty `lock`). */
const LR = ["last_reserved_ip.0", "last_reserved_ip.1"];
/**
 * GC leaves attachments changed less than gcGraceSeconds ago alone (default 60): these tests want it to act now. An
 * ADD that began less than 60 s ago is kept whatever the grace: tests that GC such attachments age them (ageIndex).
 */
const NO_GRACE = { gcGraceSeconds: 0 };

// --- 1. ADD / CHECK / DEL per version --------------------------------------------------------------------------

describe.each([
  ["0.3.1", 31],
  ["0.4.0", 40],
  ["1.0.0", 41],
  ["1.1.0", 42],
] as const)("dual-stack ADD/CHECK/DEL at %s", (version, n) => {
  const v4 = `10.${n}.0`;
  const v6 = `fd${n}:`;
  const old = version === "0.3.1" || version === "0.4.0";
  const mk = (label: string) => new Net(`${label}-${n}`, dualStack(n), "net1", version);

  it("ADD prints the result of the version and writes the reference's files", () => {
    const net = mk("add");
    const result = net.add("ctr1", "eth0");
    const ip = (address: string, gateway: string, family: string) =>
      old ? { version: family, address, gateway } : { address, gateway };
    const expected: Json = {
      cniVersion: version,
      ips: [ip(`${v4}.2/24`, `${v4}.1`, "4"), ip(`${v6}:2/64`, `${v6}:1`, "6")],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: `${v4}.254` }, { dst: "::/0" }],
    };
    if (old) expected.dns = {};
    expect(result).toEqual(expected);

    expect(net.files()).toEqual(sorted([`${v4}.2`, `${v6}:2`, ...LR]));
    expect(net.reservations()).toEqual({ [`${v4}.2`]: "ctr1\r\neth0", [`${v6}:2`]: "ctr1\r\neth0" });
    expect(mode(join(net.dir, `${v4}.2`))).toBe(0o600);
    expect(mode(join(net.dir, `${v6}:2`))).toBe(0o600);
    expect(mode(net.dir)).toBe(0o755);
    expect(net.read("last_reserved_ip.0")).toBe(`${v4}.2`);
    expect(net.read("last_reserved_ip.1")).toBe(`${v6}:2`);

    // A second ADD of another container takes the next addresses.
    expect(net.addrOf("ctr2")).toEqual([`${v4}.3`, `${v6}:3`]);
    expect(net.read("last_reserved_ip.0")).toBe(`${v4}.3`);
    expect(net.read("last_reserved_ip.1")).toBe(`${v6}:3`);

    // The same attachment again is refused (plugins#327), and keeps what it has.
    expectError(net.run("ADD", "ctr1", "eth0"), 102);
    expect(net.reservations()[`${v4}.2`]).toBe("ctr1\r\neth0");
  });

  if (version === "0.3.1") {
    it("CHECK is not part of 0.3.1: code 1", () => {
      const net = mk("check");
      net.add("ctr1");
      expectError(net.run("CHECK", "ctr1", "eth0"), 1);
    });
  } else {
    it("CHECK with prevResult = the ADD result passes; an address not reserved fails with 103", () => {
      const net = mk("check");
      const prev = net.add("ctr1");
      const ok = net.run("CHECK", "ctr1", "eth0", { top: { prevResult: prev } });
      expect(ok.status, ok.stdout).toBe(0);
      expect(ok.stdout).toBe("");

      const wrong = structuredClone(prev) as { ips: Array<{ address: string }> };
      (wrong.ips[0] as { address: string }).address = `${v4}.77/24`;
      expectError(net.run("CHECK", "ctr1", "eth0", { top: { prevResult: wrong } }), 103);
      const wrong6 = structuredClone(prev) as { ips: Array<{ address: string }> };
      (wrong6.ips[1] as { address: string }).address = `${v6}:77/64`;
      expectError(net.run("CHECK", "ctr1", "eth0", { top: { prevResult: wrong6 } }), 103);
      // Another attachment's address is not ours either.
      const other = Net.addrs(net.add("ctr2"));
      const stolen = structuredClone(prev) as { ips: Array<{ address: string }> };
      (stolen.ips[0] as { address: string }).address = `${other[0]}/24`;
      expectError(net.run("CHECK", "ctr1", "eth0", { top: { prevResult: stolen } }), 103);
      // An attachment with no reservation at all.
      expectError(net.run("CHECK", "ctr9", "eth0", { top: { prevResult: prev } }), 103);
      expectError(net.run("CHECK", "ctr1", "eth1", { top: { prevResult: prev } }), 103);
    });
  }

  it("DEL leaves only lock and last_reserved_ip.*; twice and for unknown containers it succeeds", () => {
    const net = mk("del");
    net.add("ctr1");
    net.del("ctr1");
    expect(net.files()).toEqual(LR);
    expect(net.read("last_reserved_ip.0")).toBe(`${v4}.2`);
    expect(net.claims()).toEqual([]);
    net.del("ctr1");
    net.del("never-added");
    expect(net.files()).toEqual(LR);
    // DEL on a network that never had a reservation creates nothing.
    const fresh = mk("del-fresh");
    fresh.del("ctr1");
    expect(tree(fresh.dataDir)).toEqual([]);
  });

  it("DEL releases exactly (id, ifname): the container's other interface keeps its addresses", () => {
    const net = mk("ifnames");
    expect(net.addrOf("ctr1", "eth0")).toEqual([`${v4}.2`, `${v6}:2`]);
    expect(net.addrOf("ctr1", "net1")).toEqual([`${v4}.3`, `${v6}:3`]);
    expect(net.addrOf("ctr2", "eth0")).toEqual([`${v4}.4`, `${v6}:4`]);
    net.del("ctr1", "eth0");
    expect(net.reservations()).toEqual({
      [`${v4}.3`]: "ctr1\r\nnet1",
      [`${v6}:3`]: "ctr1\r\nnet1",
      [`${v4}.4`]: "ctr2\r\neth0",
      [`${v6}:4`]: "ctr2\r\neth0",
    });
    net.del("ctr1", "net1");
    expect(net.reservations()).toEqual({ [`${v4}.4`]: "ctr2\r\neth0", [`${v6}:4`]: "ctr2\r\neth0" });
  });
});

// --- 2. round robin ---------------------------------------------------------------------------------------------

describe("round robin", () => {
  it("a released address is not handed out again before the range wraps", () => {
    const net = new Net("rr", { ranges: [[{ subnet: "10.2.0.0/24" }]] });
    expect(net.addrOf("a")).toEqual(["10.2.0.2"]);
    expect(net.addrOf("b")).toEqual(["10.2.0.3"]);
    net.del("a");
    expect(net.addrOf("c")).toEqual(["10.2.0.4"]);
    expect(net.reservations()).toEqual({ "10.2.0.3": "b\r\neth0", "10.2.0.4": "c\r\neth0" });
  });

  it("wraps from rangeEnd to rangeStart and skips what is taken", () => {
    const net = new Net("wrap", {
      ranges: [[{ subnet: "10.2.1.0/24", rangeStart: "10.2.1.10", rangeEnd: "10.2.1.12" }]],
    });
    expect(net.addrOf("x1")).toEqual(["10.2.1.10"]);
    expect(net.addrOf("x2")).toEqual(["10.2.1.11"]);
    expect(net.addrOf("x3")).toEqual(["10.2.1.12"]);
    net.del("x1");
    expect(net.addrOf("x4")).toEqual(["10.2.1.10"]);
    net.del("x3");
    expect(net.addrOf("x5")).toEqual(["10.2.1.12"]);
    expectError(net.run("ADD", "x6", "eth0"), 101);
    expect(net.read("last_reserved_ip.0")).toBe("10.2.1.12");
    expect(net.reservations()).toEqual({
      "10.2.1.10": "x4\r\neth0",
      "10.2.1.11": "x2\r\neth0",
      "10.2.1.12": "x5\r\neth0",
    });
  });
});

// --- 3. requested IPs -------------------------------------------------------------------------------------------

describe("requested IPs", () => {
  const mk = (label: string) => new Net(label, dualStack(3));

  it("CNI_ARGS IP= picks the v4 address; the v6 set allocates as usual", () => {
    const net = mk("req-args");
    expect(net.addrOf("c1", "eth0", { env: { CNI_ARGS: "IP=10.3.0.50" } })).toEqual(["10.3.0.50", "fd03::2"]);
    expect(net.read("10.3.0.50")).toBe("c1\r\neth0");
    expect(net.read("last_reserved_ip.0")).toBe("10.3.0.50");
    // Round robin continues after the requested address.
    expect(net.addrOf("c2")).toEqual(["10.3.0.51", "fd03::3"]);
  });

  it("args.cni.ips and runtimeConfig.ips (prefix ignored, the range's is used)", () => {
    const net = mk("req-json");
    const a = net.add("c1", "eth0", { top: { args: { cni: { ips: ["10.3.0.60", "fd03::60"] } } } });
    expect(a.ips).toEqual([
      { address: "10.3.0.60/24", gateway: "10.3.0.1" },
      { address: "fd03::60/64", gateway: "fd03::1" },
    ]);
    const b = net.add("c2", "eth0", { top: { runtimeConfig: { ips: ["10.3.0.70/16", "fd03::70/120"] } } });
    expect(b.ips).toEqual([
      { address: "10.3.0.70/24", gateway: "10.3.0.1" },
      { address: "fd03::70/64", gateway: "fd03::1" },
    ]);
    expect(net.reservations()).toEqual({
      "10.3.0.60": "c1\r\neth0",
      "fd03::60": "c1\r\neth0",
      "10.3.0.70": "c2\r\neth0",
      "fd03::70": "c2\r\neth0",
    });
  });

  it("the gateway is refused with code 7, an address outside every range with code 7", () => {
    const net = mk("req-gw");
    expectError(net.run("ADD", "c1", "eth0", { env: { CNI_ARGS: "IP=10.3.0.1" } }), 7);
    expectError(net.run("ADD", "c1", "eth0", { top: { args: { cni: { ips: ["fd03::1"] } } } }), 7);
    expectError(net.run("ADD", "c1", "eth0", { env: { CNI_ARGS: "IP=10.99.0.5" } }), 7);
    expect(net.reservations()).toEqual({});
  });

  it("a taken address is code 102, and what this ADD reserved before is given back", () => {
    const net = mk("req-taken");
    expect(net.addrOf("c1", "eth0", { env: { CNI_ARGS: "IP=10.3.0.50" } })).toEqual(["10.3.0.50", "fd03::2"]);
    const r = net.run("ADD", "c2", "eth0", { env: { CNI_ARGS: "IP=10.3.0.50" } });
    expectError(r, 102);
    expect(String(r.json?.msg)).toContain("10.3.0.50");
    // v4 is free and reserved first, then v6 is taken: the v4 reservation is rolled back.
    expectError(net.run("ADD", "c3", "eth0", { top: { args: { cni: { ips: ["10.3.0.61", "fd03::2"] } } } }), 102);
    expect(net.reservations()).toEqual({ "10.3.0.50": "c1\r\neth0", "fd03::2": "c1\r\neth0" });
  });
});

describe("a refused ADD keeps what the attachment already holds", () => {
  it("a repeated ADD (102) and a requested IP it holds itself (102): DEL without prevResult still releases all", () => {
    const net = new Net("refused", dualStack(3));
    expect(net.addrOf("c1")).toEqual(["10.3.0.2", "fd03::2"]);
    expectError(net.run("ADD", "c1", "eth0"), 102);
    expectError(net.run("ADD", "c1", "eth0", { env: { CNI_ARGS: "IP=10.3.0.2" } }), 102);
    expect(net.reservations()).toEqual({ "10.3.0.2": "c1\r\neth0", "fd03::2": "c1\r\neth0" });
    const check = net.run("CHECK", "c1", "eth0");
    expect(check.status, check.stdout).toBe(0);
    net.del("c1");
    expect(net.files()).toEqual(LR);
  });
});

// --- 4. exhaustion and STATUS -----------------------------------------------------------------------------------

describe("exhaustion and STATUS", () => {
  it("a /29 has five addresses; the sixth ADD is 101; STATUS is 50 until one is released", () => {
    const net = new Net("full", { ranges: [[{ subnet: "10.4.0.0/29" }]] }, "net1", "1.1.0");
    const status = () => net.run("STATUS");
    expectOk(status()); // before any reservation
    const got = ["a1", "a2", "a3", "a4", "a5"].map((id) => net.addrOf(id)[0]);
    expect(got).toEqual(["10.4.0.2", "10.4.0.3", "10.4.0.4", "10.4.0.5", "10.4.0.6"]);
    const sixth = net.run("ADD", "a6", "eth0");
    expectError(sixth, 101);
    expect(String(sixth.json?.msg)).toContain("range set: 10.4.0.1-10.4.0.6");
    expect(Object.keys(net.reservations())).toEqual(["10.4.0.2", "10.4.0.3", "10.4.0.4", "10.4.0.5", "10.4.0.6"]);

    const full = status();
    expectError(full, 50);
    expect(full.json?.cniVersion).toBe("1.1.0");

    net.del("a3");
    const ok = status();
    expect(ok.status, ok.stdout).toBe(0);
    expect(ok.stdout).toBe("");
    expect(net.addrOf("a6")).toEqual(["10.4.0.4"]);
    expectError(status(), 50);
  });
});

// --- 5. GC ------------------------------------------------------------------------------------------------------

describe("GC (1.1.0)", () => {
  const mk = (label: string) => {
    const net = new Net(label, { ...dualStack(5), ...NO_GRACE }, "net1", "1.1.0");
    for (const id of ["a1", "a2", "a3", "a4"]) net.add(id);
    net.ageIndex(); // pods ADDed long ago
    return net;
  };
  const att = (...ids: string[]) => ids.map((containerID) => ({ containerID, ifname: "eth0" }));
  /** Content and identity of the files GC must not touch (lock only if it was there before; GC may create it). */
  const untouched = (net: Net, files = [...LR, ...(existsSync(join(net.dir, "lock")) ? ["lock"] : [])]) =>
    files.map((f) => {
      const st = statSync(join(net.dir, f), { bigint: true });
      return { f, content: net.read(f), ino: st.ino, mtime: st.mtimeNs };
    });

  it.each(["cni.dev/valid-attachments", "cni.dev/attachments"])("%s lists 2 of 4: the other 2 are released", (key) => {
    const net = mk(`gc-${key.length}`);
    const before = untouched(net);
    const r = net.gc({ [key]: att("a1", "a3") });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toBe("");
    expect(net.reservations()).toEqual({
      "10.5.0.2": "a1\r\neth0",
      "fd05::2": "a1\r\neth0",
      "10.5.0.4": "a3\r\neth0",
      "fd05::4": "a3\r\neth0",
    });
    expect(
      untouched(
        net,
        before.map((b) => b.f),
      ),
    ).toEqual(before);
    // The released ones are really gone for DEL and CHECK too; the kept ones still check.
    expectError(net.run("CHECK", "a2", "eth0"), 103);
    expectOk(net.run("CHECK", "a1", "eth0"));
  });

  it("an attachment is (id, ifname): the same container with another ifname is not kept", () => {
    const net = mk("gc-ifname");
    expectOk(net.gc({ "cni.dev/valid-attachments": [{ containerID: "a1", ifname: "net1" }, ...att("a2")] }));
    expect(Object.keys(net.reservations()).sort()).toEqual(["10.5.0.3", "fd05::3"]);
  });

  it("an empty list releases all; no list releases nothing", () => {
    const net = mk("gc-empty");
    const before = untouched(net);
    expectOk(net.gc({}));
    expect(Object.keys(net.reservations())).toHaveLength(8);
    expectOk(net.gc({ "cni.dev/valid-attachments": [] }));
    expect(net.files()).toEqual(LR);
    expect(net.claims()).toEqual([]);
    expect(
      untouched(
        net,
        before.map((b) => b.f),
      ),
    ).toEqual(before);
  });

  it("a legacy ID-only file is kept while an attachment of that container is listed", () => {
    const net = mk("gc-legacy");
    writeFileSync(join(net.dir, "10.5.0.100"), "legacyid", { mode: 0o644 });
    expectOk(net.gc({ "cni.dev/valid-attachments": [{ containerID: "legacyid", ifname: "whatever0" }, ...att("a1")] }));
    expect(net.reservations()).toEqual({ "10.5.0.100": "legacyid", "10.5.0.2": "a1\r\neth0", "fd05::2": "a1\r\neth0" });
    expectOk(net.gc({ "cni.dev/valid-attachments": att("a1") }));
    expect(net.reservations()).toEqual({ "10.5.0.2": "a1\r\neth0", "fd05::2": "a1\r\neth0" });
  });

  it("with gcGraceSeconds 0, an attachment whose ADD began less than 60 s ago keeps its addresses (an ADD may still run)", () => {
    const net = mk("gc-young");
    net.add("a5");
    expectOk(net.gc({ "cni.dev/valid-attachments": [] }));
    expect(net.reservations()).toEqual({ "10.5.0.6": "a5\r\neth0", "fd05::6": "a5\r\neth0" });
    expectOk(net.run("CHECK", "a5", "eth0"));
    // Once its ADD is an hour old, the same GC releases it, and forgets it.
    net.ageIndex();
    expectOk(net.gc({ "cni.dev/valid-attachments": [] }));
    expect(net.files()).toEqual(LR);
    expect(readdirSync(net.attachments)).toEqual([]);
  });

  it("GC of a network with no directory creates nothing", () => {
    const net = new Net("gc-none", dualStack(5), "net1", "1.1.0");
    expectOk(net.gc({ "cni.dev/valid-attachments": [] }));
    expect(tree(net.dataDir)).toEqual([]);
  });
});

// --- 6. interoperability with the reference plugin -------------------------------------------------------------

describe("interoperability with the reference host-local (Debian v1.1.1) on one dataDir", () => {
  const ref = { exe: REFERENCE };

  it("(a) the reference ADDs 3, ours ADDs, DELs and CHECKs among them", () => {
    const net = new Net("interop-a", dualStack(6));
    const refResults = ["r1", "r2", "r3"].map((id) => net.add(id, "eth0", ref));
    expect(refResults.map(Net.addrs)).toEqual([
      ["10.6.0.2", "fd06::2"],
      ["10.6.0.3", "fd06::3"],
      ["10.6.0.4", "fd06::4"],
    ]);
    expect(mode(join(net.dir, "10.6.0.2"))).toBe(0o644); // the Debian build's mode: read as ours anyway
    expect(net.read("last_reserved_ip.0")).toBe("10.6.0.4");

    expect(net.addrOf("c4")).toEqual(["10.6.0.5", "fd06::5"]);
    // Ours sees the reference's reservations as held: same attachment again is a duplicate.
    expectError(net.run("ADD", "r1", "eth0"), 102);

    net.del("r2");
    expect(existsSync(join(net.dir, "10.6.0.3"))).toBe(false);
    expect(existsSync(join(net.dir, "fd06::3"))).toBe(false);

    const check = net.run("CHECK", "r3", "eth0", { top: { prevResult: refResults[2] } });
    expect(check.status, check.stdout).toBe(0);
    expect(check.stdout).toBe("");

    expect(net.reservations()).toEqual({
      "10.6.0.2": "r1\r\neth0",
      "fd06::2": "r1\r\neth0",
      "10.6.0.4": "r3\r\neth0",
      "fd06::4": "r3\r\neth0",
      "10.6.0.5": "c4\r\neth0",
      "fd06::5": "c4\r\neth0",
    });
    // And the reference can read ours: its CHECK finds c4, its DEL releases it.
    expectOk(net.run("CHECK", "c4", "eth0", ref));
    net.del("c4", "eth0", ref);
    expect(Object.keys(net.reservations()).sort()).toEqual(["10.6.0.2", "10.6.0.4", "fd06::2", "fd06::4"]);
  });

  it("(b) ours ADDs 3, the reference ADDs and DELs in between, ours never hands out a used address", () => {
    const net = new Net("interop-b", {
      ranges: [[{ subnet: "10.6.1.0/24", rangeStart: "10.6.1.2", rangeEnd: "10.6.1.7" }]],
    });
    expect(["c1", "c2", "c3"].map((id) => net.addrOf(id)[0])).toEqual(["10.6.1.2", "10.6.1.3", "10.6.1.4"]);
    expect(net.addrOf("r4", "eth0", ref)).toEqual(["10.6.1.5"]);
    net.del("c2", "eth0", ref);
    expect(existsSync(join(net.dir, "10.6.1.3"))).toBe(false);

    expect(net.addrOf("c5")).toEqual(["10.6.1.6"]);
    expect(net.addrOf("c6")).toEqual(["10.6.1.7"]);
    // Wraps: .2 is c1's, .3 was released by the reference.
    expect(net.addrOf("c7")).toEqual(["10.6.1.3"]);
    expectError(net.run("ADD", "c8", "eth0"), 101);
    // Ours still knows c2 is gone (DEL is a no-op) and that r4 holds .5 (DEL releases it).
    net.del("c2");
    expect(net.files()).toEqual([
      "10.6.1.2",
      "10.6.1.3",
      "10.6.1.4",
      "10.6.1.5",
      "10.6.1.6",
      "10.6.1.7",
      "last_reserved_ip.0",
    ]);
    expect(net.reservations()).toEqual({
      "10.6.1.2": "c1\r\neth0",
      "10.6.1.3": "c7\r\neth0",
      "10.6.1.4": "c3\r\neth0",
      "10.6.1.5": "r4\r\neth0",
      "10.6.1.6": "c5\r\neth0",
      "10.6.1.7": "c6\r\neth0",
    });
    expect(net.read("last_reserved_ip.0")).toBe("10.6.1.3");
    net.del("r4");
    expect(net.addrOf("c8")).toEqual(["10.6.1.5"]);
    expect(net.read("10.6.1.5")).toBe("c8\r\neth0");
  });

  it("(d) 12 of ours and 12 of the reference's ADDs at once share the lock: 24 distinct addresses", async () => {
    const net = new Net("interop-d", dualStack(6));
    const jobs = Array.from({ length: 24 }, (_, i) => ({ id: `m${i}`, exe: i % 2 === 0 ? OURS : REFERENCE }));
    const adds = await Promise.all(jobs.map((j) => runAsync(j.exe, env("ADD", j.id, "eth0"), net.conf())));
    for (const r of adds) expect(r.status, r.stdout + r.stderr).toBe(0);
    const got = adds.map((r) => Net.addrs(JSON.parse(r.stdout) as Json));
    expect(sorted(got.map((a) => a[0] as string))).toEqual(
      sorted(Array.from({ length: 24 }, (_, i) => `10.6.0.${i + 2}`)),
    );
    expect(new Set(got.map((a) => a[1])).size).toBe(24);
    const res = net.reservations();
    jobs.forEach((j, i) => {
      expect(res[got[i]?.[0] as string]).toBe(`${j.id}\r\neth0`);
      expect(res[got[i]?.[1] as string]).toBe(`${j.id}\r\neth0`);
    });
    const dels = await Promise.all(jobs.map((j) => runAsync(OURS, env("DEL", j.id, "eth0"), net.conf())));
    for (const r of dels) expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(net.files()).toEqual(LR);
  });

  // Using both implementations on one network at the same time is not supported (docs/host-local.md): what the
  // reference does behind our index reaches our DEL through prevResult, which a runtime always sends at >= 0.4.0,
  // and otherwise GC reclaims it.
  it("(e) an attachment handled by both in turn: our DEL with prevResult releases what the reference ADDed last", () => {
    const net = new Net("interop-e", { ranges: [[{ subnet: "10.6.2.0/24" }]] });
    expect(net.addrOf("x")).toEqual(["10.6.2.2"]);
    net.del("x");
    const byRef = net.add("x", "eth0", ref);
    expect(Net.addrs(byRef)).toEqual(["10.6.2.3"]);
    net.del("x", "eth0", { top: { prevResult: byRef } });
    expect(net.reservations()).toEqual({});
    // With the reference's DEL in between: what ours remembers (.4) is gone, the reference's .5 must go.
    expect(net.addrOf("y")).toEqual(["10.6.2.4"]);
    net.del("y", "eth0", ref);
    const byRef2 = net.add("y", "eth0", ref);
    expect(Net.addrs(byRef2)).toEqual(["10.6.2.5"]);
    net.del("y", "eth0", { top: { prevResult: byRef2 } });
    expect(net.reservations()).toEqual({});
  });

  it("(e') without prevResult, a reservation the reference made behind our index is reclaimed by GC", () => {
    const net = new Net("interop-e2", { ranges: [[{ subnet: "10.6.3.0/24" }]], gcGraceSeconds: 0 });
    expect(net.addrOf("z")).toEqual(["10.6.3.2"]);
    net.del("z");
    expect(net.addrOf("z", "eth0", ref)).toEqual(["10.6.3.3"]);
    net.del("z");
    expect(net.reservations()).toEqual({ "10.6.3.3": "z\r\neth0" });
    expect(net.gc({ "cni.dev/valid-attachments": [] }).status).toBe(0);
    expect(net.reservations()).toEqual({});
  });

  it("(c) a legacy ID-only file is released by our DEL of that container, whatever the ifname", () => {
    const net = new Net("interop-c", dualStack(6));
    net.add("c1");
    writeFileSync(join(net.dir, "10.6.0.9"), "legacyid", { mode: 0o644 });
    net.del("someone-else");
    expect(net.read("10.6.0.9")).toBe("legacyid");
    expectOk(net.run("CHECK", "legacyid", "eth0"));
    net.del("legacyid", "eth0");
    expect(existsSync(join(net.dir, "10.6.0.9"))).toBe(false);
    expect(net.reservations()).toEqual({ "10.6.0.2": "c1\r\neth0", "fd06::2": "c1\r\neth0" });
  });
});

// --- 7. crash leftovers -----------------------------------------------------------------------------------------

describe("crash leftovers (empty reservation files, plugins#498)", () => {
  it("an empty file named like the first address does not block it: ADD gets it with full content", () => {
    const net = new Net("empty-add", dualStack(7));
    mkdirSync(net.dir, { recursive: true, mode: 0o755 });
    writeFileSync(join(net.dir, "10.7.0.2"), "");
    net.age("10.7.0.2");
    expect(net.addrOf("c1")).toEqual(["10.7.0.2", "fd07::2"]);
    expect(net.read("10.7.0.2")).toBe("c1\r\neth0");
    expect(mode(join(net.dir, "10.7.0.2"))).toBe(0o600);
  });

  it("an old empty file appearing later is removed by GC, the real reservations are kept", () => {
    const net = new Net("empty-gc", { ...dualStack(7), ...NO_GRACE }, "net1", "1.1.0");
    net.add("c1");
    writeFileSync(join(net.dir, "10.7.0.5"), "");
    writeFileSync(join(net.dir, "fd07::9"), "");
    net.age("10.7.0.5");
    net.age("fd07::9");
    expectOk(net.gc({ "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "eth0" }] }));
    expect(net.files()).toEqual(sorted(["10.7.0.2", "fd07::2", ...LR]));
  });

  it("an empty file in the middle of the round robin is reused in turn", () => {
    const net = new Net("empty-rr", { ranges: [[{ subnet: "10.7.1.0/24" }]] });
    net.add("c1");
    writeFileSync(join(net.dir, "10.7.1.3"), "");
    net.age("10.7.1.3");
    expect(net.addrOf("c2")).toEqual(["10.7.1.3"]);
    expect(net.reservations()).toEqual({ "10.7.1.2": "c1\r\neth0", "10.7.1.3": "c2\r\neth0" });
  });
});

// --- 7b. tombstones: the index stays bounded without GC ----------------------------------------------------------

describe("tombstones are swept without GC (at most once an hour, on ADD or DEL)", () => {
  const HOUR = 3_600_000;
  /** Set a file's mtime `ms` back: for an index entry, when its ADD began or its DEL ran. */
  const ageBy = (file: string, ms: number) => {
    const t = new Date(Date.now() - ms);
    utimesSync(file, t, t);
  };
  const meta = (net: Net) => join(net.dataDir, ".cni-ts", net.name);
  const entryFile = (net: Net, id: string) => join(net.attachments, `${id}@eth0`);
  /** Every index entry as "id state". */
  const index = (net: Net) =>
    sorted(
      readdirSync(net.attachments).map((f) => {
        const e = JSON.parse(readFileSync(join(net.attachments, f), "utf8")) as { id: string; state: string };
        return `${e.id} ${e.state}`;
      }),
    );

  it("DEL sweeps tombstones older than an hour once the last sweep is an hour old; young ones, adding and added stay", () => {
    const net = new Net("sweep", { ranges: [[{ subnet: "10.11.0.0/24" }]] });
    for (const id of ["old1", "old2", "young", "live", "stuck"]) net.add(id);
    for (const id of ["old1", "old2", "young"]) net.del(id);
    // An ADD killed long ago, never DELed: its entry still says "adding" (what begin() writes).
    const stuck = JSON.parse(readFileSync(entryFile(net, "stuck"), "utf8")) as Json;
    writeFileSync(entryFile(net, "stuck"), JSON.stringify({ ...stuck, state: "adding" }));
    for (const id of ["old1", "old2", "live", "stuck"]) ageBy(entryFile(net, id), 2 * HOUR);
    // Temporary files of writers killed long ago (and one of a writer still at work) go with the same sweep.
    writeFileSync(join(meta(net), "tmp", "999999.1"), "old");
    ageBy(join(meta(net), "tmp", "999999.1"), 2 * HOUR);
    writeFileSync(join(meta(net), "tmp", "999999.2"), "new");
    const reservations = net.reservations();

    // The last sweep (when the network was first used) is recent: this DEL only stats the marker.
    net.del("nobody1");
    expect(index(net)).toEqual([
      "live added",
      "nobody1 released",
      "old1 released",
      "old2 released",
      "stuck adding",
      "young released",
    ]);

    ageBy(join(meta(net), "swept"), HOUR + 60_000);
    net.del("nobody2");
    expect(index(net)).toEqual([
      "live added",
      "nobody1 released",
      "nobody2 released",
      "stuck adding",
      "young released",
    ]);
    expect(readdirSync(join(meta(net), "tmp"))).toEqual(["999999.2"]);
    expect(Date.now() - statSync(join(meta(net), "swept")).mtimeMs).toBeLessThan(60_000);
    expect(net.reservations()).toEqual(reservations);

    // A DEL repeated after its tombstone was swept still succeeds and releases nothing else.
    net.del("old1");
    expect(net.reservations()).toEqual(reservations);
    expect(net.reservations()).toEqual({ "10.11.0.5": "live\r\neth0", "10.11.0.6": "stuck\r\neth0" });
    // The stuck ADD's DEL still finds its address through its "adding" entry.
    net.del("stuck");
    expect(net.reservations()).toEqual({ "10.11.0.5": "live\r\neth0" });
  });

  it("ADD sweeps too, and a network indexed before the sweep existed (no marker) is swept at once", () => {
    const net = new Net("sweep-add", { ranges: [[{ subnet: "10.11.1.0/24" }]] });
    for (const id of ["a", "b"]) net.add(id);
    net.del("a");
    ageBy(entryFile(net, "a"), 2 * HOUR);
    rmSync(join(meta(net), "swept"));
    net.add("c");
    expect(index(net)).toEqual(["b added", "c added"]);
    expect(existsSync(join(meta(net), "swept"))).toBe(true);
  });

  it("the sweep keeps an old tombstone's attachment working: ADD again, DEL again", () => {
    const net = new Net("sweep-readd", { ranges: [[{ subnet: "10.11.2.0/24" }]] });
    net.add("x");
    net.del("x");
    ageBy(entryFile(net, "x"), 2 * HOUR);
    ageBy(join(meta(net), "swept"), 2 * HOUR);
    expect(net.addrOf("x")).toEqual(["10.11.2.3"]);
    expect(index(net)).toEqual(["x added"]);
    net.del("x");
    expect(net.reservations()).toEqual({});
    expect(index(net)).toEqual(["x released"]);
  });
});

// --- 8. concurrency ---------------------------------------------------------------------------------------------

describe("concurrency", () => {
  it("32 ADDs at once get 32 distinct addresses; 32 DELs at once release them all", async () => {
    const net = new Net("par", { ranges: [[{ subnet: "10.8.0.0/24" }]] });
    const ids = Array.from({ length: 32 }, (_, i) => `p${i}`);
    const adds = await Promise.all(ids.map((id) => runAsync(OURS, env("ADD", id, "eth0"), net.conf())));
    for (const r of adds) expect(r.status, r.stdout + r.stderr).toBe(0);
    const addrs = adds.map((r) => Net.addrs(JSON.parse(r.stdout) as Json)[0] as string);
    expect(new Set(addrs).size).toBe(32);
    const expected = Array.from({ length: 32 }, (_, i) => `10.8.0.${i + 2}`);
    expect(sorted(addrs)).toEqual(sorted(expected));
    const res = net.reservations();
    ids.forEach((id, i) => {
      expect(res[addrs[i] as string]).toBe(`${id}\r\neth0`);
    });
    expect(sorted(net.claims())).toEqual(sorted(expected));

    const dels = await Promise.all(ids.map((id) => runAsync(OURS, env("DEL", id, "eth0"), net.conf())));
    for (const r of dels) expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(net.files()).toEqual(["last_reserved_ip.0"]);
    expect(net.claims()).toEqual([]);
  });
});

// --- 9. kill -9 during ADD --------------------------------------------------------------------------------------

describe("kill -9 during ADD", () => {
  it("30 ADDs killed at random moments, each followed by DEL, then GC: nothing is left and the network works", async () => {
    const net = new Net("kill", { ...dualStack(9), ...NO_GRACE }, "net1", "1.1.0");
    // The kill moments spread over one whole ADD as long as it takes on this machine (a loaded CI machine, or the
    // emulated guest of scripts/vm.mjs, where a fixed window would kill every ADD before it reserved anything).
    const t0 = Date.now();
    expect((await runAsync(OURS, env("ADD", "probe", "eth0"), net.conf())).status).toBe(0);
    const window = Math.max(20, Math.round((Date.now() - t0) * 1.2));
    expect((await runAsync(OURS, env("DEL", "probe", "eth0"), net.conf())).status).toBe(0);
    const outcomes = { killed: 0, finished: 0 };
    for (let i = 0; i < 30; i++) {
      const id = `k${i}`;
      const delay = Math.floor(Math.random() * window);
      const r = await runAsync(OURS, env("ADD", id, "eth0"), net.conf(), (child) => {
        setTimeout(() => child.kill("SIGKILL"), delay);
      });
      if (r.signal === "SIGKILL") outcomes.killed++;
      else {
        expect(r.status, r.stdout + r.stderr).toBe(0);
        outcomes.finished++;
      }
      const d = await runAsync(OURS, env("DEL", id, "eth0"), net.conf());
      expect(d.status, d.stdout + d.stderr).toBe(0);
      expect(Object.values(net.reservations()).filter((c) => c.startsWith(`${id}\r\n`))).toEqual([]);
    }
    expect(outcomes.killed + outcomes.finished).toBe(30);
    expect(outcomes.killed).toBeGreaterThan(0);
    expectOk(net.gc({ "cni.dev/valid-attachments": [] }));

    expect(net.files()).toEqual(LR);
    // Our tmp/ may keep a killed writer's file until GC finds it old enough (the working-tree design sweeps after 60 s).
    // `lock` and the tombstone sweep's marker `swept` are empty by design.
    const empty = tree(net.dataDir).filter(
      (p) =>
        !p.endsWith("/") &&
        p !== "net1/lock" &&
        p !== ".cni-ts/net1/swept" &&
        !p.startsWith(".cni-ts/net1/tmp/") &&
        statSync(join(net.dataDir, p)).size === 0,
    );
    expect(empty).toEqual([]);
    expect(net.claims()).toEqual([]);

    const last = Net.addrs(net.add("final"));
    expect(last).toHaveLength(2);
    expect(net.reservations()).toEqual({ [last[0] as string]: "final\r\neth0", [last[1] as string]: "final\r\neth0" });
    net.del("final");
    expect(net.files()).toEqual(LR);
  });
});

// --- 10. path safety --------------------------------------------------------------------------------------------

describe("path safety", () => {
  it.each([
    ["../x", "../x"],
    ["a/b", "a/b"],
    ["300 bytes", "n".repeat(300)],
    [".cni-ts", ".cni-ts"],
    ["..", ".."],
  ])("network name %s: code 7 for every verb, nothing created", (_label, name) => {
    const net = new Net("badname", dualStack(10), name, "1.1.0");
    const before = tree(net.dataDir);
    expectError(net.run("ADD", "c1", "eth0"), 7);
    expectError(net.run("DEL", "c1", "eth0"), 7);
    expectError(net.gc({ "cni.dev/valid-attachments": [] }), 7);
    expectError(net.run("STATUS"), 7);
    expect(tree(net.dataDir)).toEqual(before);
    expect(before).toEqual([]);
  });

  it("a relative dataDir or one with '..' is code 7 and creates nothing", () => {
    const base = sandbox.tmpdir("hl-datadir");
    const rel = `cni-ts-relative-${sandbox.id}`;
    for (const dataDir of [rel, `./${rel}`, `${base}/a/../b`, `${base}/..`, `${base}/../${rel}`]) {
      const r = runExe(OURS, env("ADD", "c1", "eth0"), conf("1.0.0", { ipam: { dataDir, ...dualStack(10) } }));
      expectError(r, 7);
      expect(String(r.json?.msg)).toContain("dataDir");
      expect(
        runExe(OURS, env("DEL", "c1", "eth0"), conf("1.0.0", { ipam: { dataDir, ...dualStack(10) } })).json?.code,
      ).toBe(7);
    }
    expect(existsSync(join(process.cwd(), rel))).toBe(false);
    expect(tree(base)).toEqual([]);
  });

  it("a symlink planted at <dataDir>/<name> is refused with 7 and its target stays empty", () => {
    const net = new Net("symlink", dualStack(10));
    const target = sandbox.tmpdir("hl-symlink-target");
    symlinkSync(target, net.dir);
    expectError(net.run("ADD", "c1", "eth0"), 7);
    expect(tree(target)).toEqual([]);
    expect(lstatSync(net.dir).isSymbolicLink()).toBe(true);
  });

  it.each([".cni-ts", ".cni-ts/net1"])(
    "a symlink planted at <dataDir>/%s is refused with 7 and its target stays empty",
    (where) => {
      const net = new Net("symlink-meta", dualStack(10));
      const target = sandbox.tmpdir("hl-symlink-meta-target");
      mkdirSync(join(net.dataDir, ".cni-ts"), { mode: 0o755, recursive: true });
      if (where === ".cni-ts") rmSync(join(net.dataDir, ".cni-ts"), { recursive: true });
      symlinkSync(target, join(net.dataDir, where));
      expectError(net.run("ADD", "c1", "eth0"), 7);
      expect(tree(target)).toEqual([]);
      expect(existsSync(join(net.dir, "10.10.0.2"))).toBe(false);
    },
  );
});

// --- 11. bad configs --------------------------------------------------------------------------------------------

describe("bad configurations: code 7, nothing created", () => {
  const cases: Array<[string, Json]> = [
    ["ranges empty", { ranges: [] }],
    ["a range set empty", { ranges: [[]] }],
    ["subnet with host bits", { ranges: [[{ subnet: "10.1.2.3/24" }]] }],
    ["a /32 subnet", { ranges: [[{ subnet: "10.1.2.3/32" }]] }],
    ["a /128 subnet", { ranges: [[{ subnet: "fd11::1/128" }]] }],
    ["overlapping range sets", { ranges: [[{ subnet: "10.11.0.0/24" }], [{ subnet: "10.11.0.0/25" }]] }],
    ["overlapping ranges in one set", { ranges: [[{ subnet: "10.11.0.0/24" }, { subnet: "10.11.0.0/16" }]] }],
    ["mixed families in one set", { ranges: [[{ subnet: "10.11.0.0/24" }, { subnet: "fd11::/64" }]] }],
    ["rangeStart outside the subnet", { ranges: [[{ subnet: "10.11.0.0/24", rangeStart: "10.12.0.5" }]] }],
    ["subnet not a CIDR", { ranges: [[{ subnet: "10.11.0.0" }]] }],
    ["ranges not an array", { ranges: { subnet: "10.11.0.0/24" } }],
  ];

  it.each(cases)("%s", (_label, ipam) => {
    const dataDir = sandbox.tmpdir("hl-badconf");
    const r = runExe(OURS, env("ADD", "c1", "eth0"), conf("1.0.0", { ipam: { dataDir, ...ipam } }));
    expectError(r, 7);
    expect(tree(dataDir)).toEqual([]);
  });

  it("no ipam key", () => {
    const name = `noipam-${sandbox.id}`;
    const r = runExe(OURS, env("ADD", "c1", "eth0"), JSON.stringify({ cniVersion: "1.0.0", name, type: "bridge" }));
    expectError(r, 7);
    expect(existsSync(join("/var/lib/cni/networks", name))).toBe(false);
  });
});
