// host-local (and bridge + host-local) on a shared node, tried as an attacker and as an unlucky runtime would
// (issue 16: 1, 2, 5, 7, 9): links planted where host-local writes, special files where it reads, six ADDs of one
// attachment at once, a prevResult that does not decode, and refused ADDs that must leave nothing behind. The BUILT
// executables run inside a node namespace of this run (host-local itself never enters a netns, but it runs where
// bridge runs it); pods are namespaces beside it. Planted links point at victim files of a per-test temp dir.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostVethName } from "../../plugins/bridge/names.js";
import { addrsOf, BridgeLab, type Conf, labPath, linkNames, nsRun } from "./bridge-lab.js";
import { DIST_BIN, type ExeResult, Sandbox, requireBuilt, runExe } from "./helpers.js";

const sb = new Sandbox();
let node = "";
beforeAll(() => {
  requireBuilt();
  node = sb.netns("hlnode").name;
});
afterAll(() => sb.cleanup());

type Json = Record<string, unknown>;
const HOST_LOCAL = join(DIST_BIN, "host-local");

/** One host-local network in a fresh dataDir, its verbs run by the built executable inside the node namespace. */
class Net {
  readonly dataDir: string;
  constructor(
    label: string,
    readonly ranges: Json[][],
    readonly name = "n",
  ) {
    this.dataDir = sb.tmpdir(`hh-${label}`);
  }
  get dir(): string {
    return join(this.dataDir, this.name);
  }
  get meta(): string {
    return join(this.dataDir, ".cni-ts", this.name);
  }
  conf(top: Json = {}): string {
    return JSON.stringify({
      cniVersion: "1.1.0",
      name: this.name,
      type: "bridge",
      ...top,
      ipam: { type: "host-local", dataDir: this.dataDir, ranges: this.ranges },
    });
  }
  run(cmd: string, id = "", ifname = "eth0", o: { top?: Json; env?: Record<string, string> } = {}): ExeResult {
    const env: Record<string, string> = { PATH: labPath(sb), CNI_COMMAND: cmd, CNI_PATH: DIST_BIN, ...o.env };
    if (id !== "") Object.assign(env, { CNI_CONTAINERID: id, CNI_IFNAME: ifname, CNI_NETNS: "/var/run/netns/none" });
    // `ip netns exec NODE env -i ... host-local`: run where bridge would run it.
    const kv = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return runExe("/usr/sbin/ip", { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, this.conf(o.top), [
      "netns",
      "exec",
      node,
      "env",
      "-i",
      ...kv,
      HOST_LOCAL,
    ]);
  }
  add(id: string, o: Parameters<Net["run"]>[3] = {}): string {
    const r = this.run("ADD", id, "eth0", o);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    return (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0] as string;
  }
  /** address -> content of every reservation file that is a regular file. */
  reservations(): Record<string, string> {
    const out: Record<string, string> = {};
    if (!existsSync(this.dir)) return out;
    for (const f of readdirSync(this.dir)) {
      if (f === "lock" || f.startsWith("last_reserved_ip.")) continue;
      const p = join(this.dir, f);
      if (lstatSync(p).isFile()) out[f] = readFileSync(p, "utf8");
    }
    return out;
  }
}

function expectError(r: ExeResult, code: number): void {
  expect(r.status, r.stdout + r.stderr).toBe(1);
  expect(r.json?.code, r.stdout).toBe(code);
  expect(typeof r.json?.msg).toBe("string");
}

function expectOk(r: ExeResult): void {
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

/** Every path under `root` with what it is: a file's content, "<dir>", "-> target" for a link, or its kind. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const p = join(root, r);
      if (e.isSymbolicLink()) out[r] = `-> ${readlinkSync(p)}`;
      else if (e.isDirectory()) {
        out[r] = "<dir>";
        walk(r);
      } else if (e.isFile()) out[r] = readFileSync(p, "utf8");
      else out[r] = "<special>";
    }
  };
  if (existsSync(root)) walk("");
  return out;
}

/** Names that are reservations of `id`/eth0 (the file content is the truth). */
const heldBy = (net: Net, id: string) =>
  Object.entries(net.reservations())
    .filter(([, c]) => c === `${id}\r\neth0`)
    .map(([ip]) => ip);

/** No address appears twice, and no attachment holds two addresses of one range set (all nets here have one set). */
function expectNoDoubles(net: Net): void {
  const owners = Object.values(net.reservations());
  expect(new Set(owners).size, JSON.stringify(net.reservations())).toBe(owners.length);
}

// --- 1. planted links ---------------------------------------------------------------------------------------------

describe("links planted where host-local writes are never written through (issue 16.1)", () => {
  const ROUNDS = 20;
  it(`${ROUNDS} rounds: links at last_reserved_ip.0, the next address, the index, the claim, tmp names and lock`, () => {
    for (let round = 0; round < ROUNDS; round++) {
      const net = new Net(`links${round}`, [[{ subnet: "10.61.0.0/24" }]]);
      const victims = sb.tmpdir(`victims${round}`);
      const victim = join(victims, "victim");
      writeFileSync(victim, `precious ${round}\n`);
      expect(net.add("first")).toBe("10.61.0.2");

      const plant = (path: string) => {
        rmSync(path, { force: true });
        mkdirSync(dirname(path), { recursive: true });
        symlinkSync(victim, path);
      };
      plant(join(net.dir, "last_reserved_ip.0"));
      plant(join(net.dir, "10.61.0.3")); // the address the round robin offers next
      plant(join(net.meta, "attachments", `c${round}@eth0`));
      plant(join(net.meta, "claims", `c${round}@eth0`));
      // The names the earlier design wrote its temporary files under (<pid>.<n>), for the next pids.
      const lastPid = Number(readFileSync("/proc/sys/kernel/ns_last_pid", "utf8"));
      for (let p = lastPid + 1; p <= lastPid + 40; p++)
        for (let k = 1; k <= 4; k++) symlinkSync(victim, join(net.meta, "tmp", `${p}.${k}`));

      // ADD works around every link: the linked address is not handed out, the others are replaced by real files.
      const got = net.add(`c${round}`);
      expect(got).toBe("10.61.0.4");
      for (const f of ["last_reserved_ip.0", got]) expect(lstatSync(join(net.dir, f)).isFile(), f).toBe(true);
      expect(readFileSync(join(net.dir, "last_reserved_ip.0"), "utf8")).toBe(got);
      expect(readFileSync(join(net.dir, got), "utf8")).toBe(`c${round}\r\neth0`);
      expect(lstatSync(join(net.meta, "attachments", `c${round}@eth0`)).isFile()).toBe(true);
      expect(lstatSync(join(net.dir, "10.61.0.3")).isSymbolicLink()).toBe(true);

      // A link at lock: GC refuses (7) rather than lock through it.
      plant(join(net.dir, "lock"));
      expectError(net.run("GC", "", "", { top: { "cni.dev/valid-attachments": [] } }), 7);
      expectOk(net.run("DEL", `c${round}`));
      expectOk(net.run("DEL", "never-added"));
      expect(heldBy(net, `c${round}`)).toEqual([]);

      expect(readFileSync(victim, "utf8")).toBe(`precious ${round}\n`);
      expect(readdirSync(victims)).toEqual(["victim"]);
      expect(net.reservations()).toEqual({ "10.61.0.2": "first\r\neth0" });
    }
  });
});

// --- 2. special files -----------------------------------------------------------------------------------------------

type Kind = "fifo" | "socket" | "directory" | "device" | "link to a fifo";
function makeSpecial(kind: Kind, path: string, scratch: string): void {
  rmSync(path, { force: true });
  const ok = (r: { status: number | null; stderr: string | Buffer }) => expect(r.status, String(r.stderr)).toBe(0);
  if (kind === "fifo") ok(spawnSync("mkfifo", [path]));
  else if (kind === "socket")
    ok(spawnSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path]));
  else if (kind === "directory") mkdirSync(path);
  else if (kind === "device")
    ok(spawnSync("mknod", [path, "c", "1", "3"])); // what /dev/null is
  else {
    const fifo = join(scratch, `fifo-${Math.random().toString(36).slice(2)}`);
    ok(spawnSync("mkfifo", [fifo]));
    symlinkSync(fifo, path);
  }
}

describe("special files in the store never hang host-local and never get an address handed out (issue 16.2)", () => {
  const KINDS: Kind[] = ["fifo", "socket", "directory", "device", "link to a fifo"];
  const ROUNDS = 4;
  const cases = KINDS.flatMap((k) => Array.from({ length: ROUNDS }, (_, i) => [k, i] as [Kind, number]));
  it.each(cases)("%s, round %i: DEL of an unknown attachment, GC, ADD (requested and round robin)", (kind, round) => {
    const net = new Net(`special${round}`, [
      [{ subnet: "10.62.0.0/24", rangeStart: "10.62.0.248", rangeEnd: "10.62.0.252" }],
    ]);
    const scratch = sb.tmpdir(`scratch${round}`);
    expect(net.add("a")).toBe("10.62.0.248");
    expect(net.add("b")).toBe("10.62.0.249");
    makeSpecial(kind, join(net.dir, "10.62.0.250"), scratch);
    makeSpecial(kind, join(net.dir, "last_reserved_ip.0"), scratch);
    makeSpecial(kind, join(net.meta, "attachments", "ghost@eth0"), scratch);

    // Each of these hung forever on a FIFO before; runExe gives up after 60 s (status null).
    expectOk(net.run("DEL", "ghost"));
    expectOk(
      net.run("GC", "", "", {
        top: {
          "cni.dev/valid-attachments": [
            { containerID: "a", ifname: "eth0" },
            { containerID: "b", ifname: "eth0" },
          ],
        },
      }),
    );
    expectOk(net.run("STATUS"));
    // The address in the special file's name is never handed out: not on request, not in turn.
    expectError(net.run("ADD", "c", "eth0", { env: { CNI_ARGS: "IP=10.62.0.250" } }), 102);
    const c = net.add("c");
    expect(["10.62.0.251", "10.62.0.252"]).toContain(c);
    // Replaced by a regular file by the reservation's rename; a directory is never removed (the hint is lost instead).
    expect(lstatSync(join(net.dir, "last_reserved_ip.0")).isFile()).toBe(kind !== "directory");

    // Everyone keeps what they had; nothing was handed out twice; the special file is left where it was.
    expect(net.reservations()).toEqual({ "10.62.0.248": "a\r\neth0", "10.62.0.249": "b\r\neth0", [c]: "c\r\neth0" });
    expect(lstatSync(join(net.dir, "10.62.0.250")).isFile()).toBe(false);
    expectNoDoubles(net);
    expectOk(net.run("DEL", "c"));
    expect(heldBy(net, "c")).toEqual([]);
  });
});

// --- 5. concurrent ADDs of one attachment ---------------------------------------------------------------------------

describe("six ADDs of one attachment at once, bridge + host-local in namespaces (issue 16.5)", () => {
  const ROUNDS = 50;
  it(`${ROUNDS} rounds: one wins; the losers release nothing of the winner's`, { timeout: 900_000 }, async () => {
    const lab = new BridgeLab(sb, "race");
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.63.0.0/24"]) });
    const net = { dir: join(lab.dataDir, lab.network), meta: join(lab.dataDir, ".cni-ts", lab.network) };
    const reservations = () =>
      Object.fromEntries(lab.reservations().map((f) => [f, readFileSync(join(net.dir, f), "utf8")] as const));
    for (let round = 0; round < ROUNDS; round++) {
      const id = `race${round}`;
      const pod = lab.pod(`r${round}`);
      const calls = await Promise.all(
        Array.from({ length: 6 }, () => lab.cniAsync("ADD", conf, { pod, containerID: id })),
      );
      const winners = calls.filter((c) => c.status === 0);
      expect(winners, calls.map((c) => c.stdout + c.stderr).join("\n")).toHaveLength(1);
      for (const c of calls.filter((x) => x.status !== 0)) expect(c.out?.code, c.stdout).toBe(102);
      const addr = (winners[0]!.out!.ips as Array<{ address: string }>)[0]!.address;
      const ip = addr.split("/")[0]!;

      // The winner's pod holds its address; the store lists it as the winner's, in the files and in the index.
      expect(addrsOf(pod.name, "eth0")).toEqual([addr]);
      expect(reservations()[ip]).toBe(`${id}\r\neth0`);
      const entry = JSON.parse(readFileSync(join(net.meta, "attachments", `${id}@eth0`), "utf8")) as {
        state: string;
        ips: string[];
      };
      expect(entry).toMatchObject({ state: "added", ips: [ip] });
      // No address twice, no attachment with two addresses, one veth for the attachment, no claim left.
      const owners = Object.values(reservations());
      expect(new Set(owners).size, JSON.stringify(reservations())).toBe(owners.length);
      expect(linkNames(lab.node.name).filter((l) => l === hostVethName(id, "eth0"))).toHaveLength(1);
      expect(readdirSync(join(net.meta, "claims"))).toEqual([]);
      // Every second round, the pod goes away again; the others stay, so later rounds race next to live pods.
      if (round % 2 === 1) {
        const d = lab.cni("DEL", conf, { pod, containerID: id });
        expect(d.status, d.stdout + d.stderr).toBe(0);
        expect(reservations()[ip]).toBeUndefined();
        spawnSync("ip", ["netns", "del", pod.name]);
      }
    }
    expect(Object.keys(reservations())).toHaveLength(ROUNDS / 2);
  });

  it("host-local's side: a DEL naming another ADD's owner token releases nothing; its own releases exactly that", () => {
    const net = new Net("owner", [[{ subnet: "10.64.0.0/24" }]]);
    const [A, B] = ["a".repeat(32), "b".repeat(32)];
    const ip = net.add("c1", { env: { CNI_TS_IPAM_OWNER: A } });
    expectOk(net.run("DEL", "c1", "eth0", { env: { CNI_TS_IPAM_OWNER: B } }));
    expect(net.reservations()).toEqual({ [ip]: "c1\r\neth0" });
    expectOk(net.run("DEL", "c1", "eth0", { env: { CNI_TS_IPAM_OWNER: A } }));
    expect(net.reservations()).toEqual({});
    expectError(net.run("ADD", "c1", "eth0", { env: { CNI_TS_IPAM_OWNER: "x; rm -rf /" } }), 4);
    expect(net.reservations()).toEqual({});
  });
});

// --- 7. malformed prevResult on CHECK -------------------------------------------------------------------------------

describe("CHECK with a prevResult that does not decode is code 6 (issue 16.7)", () => {
  it("ips not a list, prevResult not an object, an address that is no address: 6; DEL still succeeds and releases", () => {
    const net = new Net("check", [[{ subnet: "10.65.0.0/24" }]]);
    const ip = net.add("c1");
    for (const prevResult of [{ ips: "x" }, "x", { ips: [{ address: "x" }] }]) {
      const r = net.run("CHECK", "c1", "eth0", { top: { prevResult } });
      expectError(r, 6);
      expect(String(r.json?.msg)).toContain("prevResult");
    }
    expectOk(
      net.run("CHECK", "c1", "eth0", { top: { prevResult: { cniVersion: "1.1.0", ips: [{ address: `${ip}/24` }] } } }),
    );
    expectOk(net.run("DEL", "c1", "eth0", { top: { prevResult: { ips: "x" } } }));
    expect(net.reservations()).toEqual({});
  });
});

// --- 9. refused ADDs change nothing ---------------------------------------------------------------------------------

describe("a refused ADD changes nothing, bookkeeping included (issue 16.9)", () => {
  it("bridge + host-local, CNI_ARGS IP= outside every range: 7, no file, no link, on a used and on a fresh store", () => {
    for (const used of [true, false]) {
      const lab = new BridgeLab(sb, used ? "refused" : "fresh");
      const conf: Conf = lab.conf({ ipam: lab.hostLocal(["10.66.0.0/24"]) });
      if (used) lab.add(conf, { pod: lab.pod("a") });
      const before = { data: snapshot(lab.dataDir), links: linkNames(lab.node.name) };
      const pod = lab.pod("b");
      const r = lab.cni("ADD", conf, { pod, args: "IP=10.99.0.5" });
      expect(r.status, r.stdout).toBe(1);
      expect(r.out?.code).toBe(7);
      expect({ data: snapshot(lab.dataDir), links: linkNames(lab.node.name) }).toEqual(before);
      expect(nsRun(pod.name, "ip", ["link", "show", "eth0"], true).status).not.toBe(0);
      if (!used) expect(before.data).toEqual({});
    }
  });

  const refusals: Array<[string, number, (net: Net) => void, (net: Net) => ExeResult]> = [
    [
      "exhausted range (101)",
      101,
      (n) => {
        for (const id of ["x1", "x2"]) n.add(id);
      },
      (n) => n.run("ADD", "x3"),
    ],
    ["a repeated ADD of the attachment (102)", 102, (n) => n.add("x1"), (n) => n.run("ADD", "x1")],
    [
      "a requested address that is taken (102)",
      102,
      (n) => n.add("x1"),
      (n) => n.run("ADD", "x2", "eth0", { env: { CNI_ARGS: "IP=10.67.0.2" } }),
    ],
    [
      "a requested gateway (7)",
      7,
      (n) => n.add("x1"),
      (n) => n.run("ADD", "x2", "eth0", { env: { CNI_ARGS: "IP=10.67.0.1" } }),
    ],
    [
      "a requested address outside every range (7)",
      7,
      (n) => n.add("x1"),
      (n) => n.run("ADD", "x2", "eth0", { env: { CNI_ARGS: "IP=10.99.0.1" } }),
    ],
    [
      "a requested address that is no address (7)",
      7,
      (n) => n.add("x1"),
      (n) => n.run("ADD", "x2", "eth0", { env: { CNI_ARGS: "IP=10.67.0.999" } }),
    ],
    [
      "a malformed owner token (4)",
      4,
      (n) => n.add("x1"),
      (n) => n.run("ADD", "x2", "eth0", { env: { CNI_TS_IPAM_OWNER: "nope" } }),
    ],
    [
      "the second range set taken after the first reserved (102): last_reserved_ip.0 as before",
      102,
      (n) => n.add("x1", { top: { args: { cni: { ips: ["fd67::9"] } } } }),
      (n) => n.run("ADD", "x2", "eth0", { top: { args: { cni: { ips: ["fd67::9"] } } } }),
    ],
    [
      "an ADD of the same attachment in progress (102): the live claim is left as it is",
      102,
      (n) => {
        n.add("x1");
        const start = readFileSync(`/proc/${process.pid}/stat`, "utf8");
        const fields = start.slice(start.lastIndexOf(")") + 2).split(" ");
        writeFileSync(
          join(n.meta, "claims", "x2@eth0"),
          JSON.stringify({ token: "t", pid: process.pid, start: fields[19], time: Date.now() }),
        );
      },
      (n) => n.run("ADD", "x2"),
    ],
  ];
  it.each(refusals)("host-local: %s", (_label, code, setup, refused) => {
    const ranges = _label.startsWith("the second")
      ? [[{ subnet: "10.67.0.0/24" }], [{ subnet: "fd67::/64" }]]
      : [[{ subnet: "10.67.0.0/24", rangeEnd: "10.67.0.3" }]];
    const net = new Net("refusals", ranges);
    setup(net);
    const before = snapshot(net.dataDir);
    expectError(refused(net), code);
    expect(snapshot(net.dataDir)).toEqual(before);
  });
});
