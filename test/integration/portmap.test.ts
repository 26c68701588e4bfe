// portmap, run like a runtime runs a conflist (bridge, then portmap with the bridge's result as prevResult; CHECK;
// DEL in reverse), with the BUILT executables inside a node namespace of the run, for both backends. Traffic is
// real: a python3 listener (TCP and UDP, IPv4 and IPv6) in the pod, clients in an "outside" namespace wired to the
// node, on the node's own loopback, and in the pod itself (hairpin). Then the same chain through the reference
// (/usr/lib/cni, Debian 1.1.1, iptables only) side by side; every difference is asserted and listed in
// docs/portmap.md. Nothing here touches the machine's own namespace.
import { runInNode } from "../../sandbox/plugin.js";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dnatChainName, nftOwner } from "../../plugins/portmap/identity.js";
import {
  binDir,
  BridgeLab,
  type CniCall,
  type Conf,
  iptNat,
  labPath,
  nftRuleset,
  nsRun,
  type Ns,
  recordingTools,
  REFERENCE_BIN,
  sysctl,
  wire,
} from "./bridge-lab.js";
import { requireBuilt, ROOT, Sandbox, sh } from "./helpers.js";
import { answer, POD_PORT, serve, stop, stopAll, talk } from "./traffic.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => {
  stopAll();
  sb.cleanup();
});

type Backend = "iptables" | "nftables";

const NODE4 = "192.0.2.1";
const NODE4_OTHER = "192.0.2.5";
const NODE6 = "2001:db8:1::1";
const OUT4 = "192.0.2.2";
const OUT6 = "2001:db8:1::2";
const SUBNET4 = "10.66.0.0/24";
const SUBNET6 = "fd66::/64";
const GW4 = "10.66.0.1";
const GW6 = "fd66::1";

/** A node namespace with its bridge lab, an outside namespace on `ext0`, and a second node address for hostIP tests. */
class PortmapLab {
  readonly lab: BridgeLab;
  readonly outside: Ns;

  constructor(label: string, bin?: string, network = "pmnet") {
    this.lab = new BridgeLab(sb, label, bin, network);
    this.outside = sb.netns(`${this.lab.label}-out`);
    wire(this.lab.node, this.outside, "ext0", `${NODE4}/24`, `${NODE6}/64`, `${OUT4}/24`, `${OUT6}/64`);
    nsRun(this.lab.node.name, "ip", ["addr", "add", `${NODE4_OTHER}/24`, "dev", "ext0"]);
  }

  get node(): Ns {
    return this.lab.node;
  }

  bridgeConf(cniVersion = "1.0.0"): Conf {
    const ipam = {
      type: "host-local",
      dataDir: this.lab.dataDir,
      ranges: [[{ subnet: SUBNET4 }], [{ subnet: SUBNET6 }]],
    };
    return this.lab.conf({ isDefaultGateway: true, hairpinMode: true, ipam }, cniVersion);
  }

  pmConf(
    backend: Backend | undefined,
    portMappings: unknown[] | undefined,
    extra: Conf = {},
    cniVersion = "1.0.0",
  ): Conf {
    return {
      cniVersion,
      name: this.lab.network,
      type: "portmap",
      ...(backend ? { backend } : {}),
      ...(portMappings ? { runtimeConfig: { portMappings } } : {}),
      ...extra,
    };
  }

  /** Run this lab's portmap (or the one in `exeDir`) in the node namespace. */
  pm(
    cmd: string,
    conf: Conf,
    pod: Ns | string,
    containerID: string,
    exeDir = this.lab.bin,
    path = labPath(sb),
  ): CniCall {
    const netns = typeof pod === "string" ? pod : pod.path;
    const env = {
      PATH: path,
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: containerID,
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: exeDir,
    };
    return runInNode(this.node.name, join(exeDir, "portmap"), env, JSON.stringify(conf));
  }

  /** The same as pm, as a separate process that runs concurrently with others. */
  pmAsync(cmd: string, conf: Conf, pod: Ns, containerID: string): Promise<CniCall> {
    const env = {
      PATH: labPath(sb),
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: containerID,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: this.lab.bin,
    };
    return new Promise((resolve, reject) => {
      const child = spawn("ip", [
        "netns",
        "exec",
        this.node.name,
        "env",
        "-i",
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        join(this.lab.bin, "portmap"),
      ]);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (status) =>
        resolve({
          status,
          stdout,
          stderr,
          out: stdout.trim() === "" ? undefined : (JSON.parse(stdout) as Record<string, any>),
          ms: 0,
        }),
      );
      child.stdin.end(JSON.stringify(conf));
    });
  }

  /** ADD bridge, then ADD portmap with the bridge's result: the final result, as a runtime caches it. */
  up(pod: Ns, containerID: string, pmConf: Conf): Record<string, any> {
    const br = this.lab.add(this.bridgeConf(pmConf.cniVersion as string), { pod, containerID });
    const r = this.pm("ADD", { ...pmConf, prevResult: br }, pod, containerID);
    if (r.status !== 0 || !r.out) throw new Error(`portmap ADD failed (${r.status}): ${r.stdout} ${r.stderr}`);
    return r.out;
  }

  /** CHECK both plugins with the cached result. */
  check(pod: Ns, containerID: string, pmConf: Conf, result: Record<string, any>): [CniCall, CniCall] {
    return [
      this.lab.cni(
        "CHECK",
        { ...this.bridgeConf(pmConf.cniVersion as string), prevResult: result },
        { pod, containerID },
      ),
      this.pm("CHECK", { ...pmConf, prevResult: result }, pod, containerID),
    ];
  }

  /** DEL in reverse order, each with the cached result. */
  down(pod: Ns | string, containerID: string, pmConf: Conf, result?: Record<string, any>): void {
    const prev = result ? { prevResult: result } : {};
    const p = this.pm("DEL", { ...pmConf, ...prev }, pod, containerID);
    expect([p.status, p.stdout], p.stderr).toEqual([0, ""]);
    const b = this.lab.cni("DEL", { ...this.bridgeConf(pmConf.cniVersion as string), ...prev }, { pod, containerID });
    expect(b.status, b.stdout).toBe(0);
  }

  /** The node's firewall state: nft ruleset and iptables-save of nat, both families. */
  rules(): string {
    return `${nftRuleset(this.node.name)}\n${iptNat(this.node.name)}`;
  }
}

const MAPPINGS = [
  { hostPort: 8080, containerPort: POD_PORT, protocol: "tcp" },
  { hostPort: 8080, containerPort: POD_PORT, protocol: "udp" },
  { hostPort: 9090, containerPort: POD_PORT, protocol: "tcp", hostIP: NODE4 },
];

describe.each(["iptables", "nftables"] as const)("portmap, %s backend", (backend) => {
  let pl: PortmapLab;
  let before = "";
  let n = 0;
  const cid = () => `pm-${backend}-${++n}`;

  beforeAll(() => {
    pl = new PortmapLab(backend === "iptables" ? "pmi" : "pmn");
    // A first pod up and down leaves the shared structure (CNI-HOSTPORT-* chains, or our table with its constant
    // rules) that every later DEL must return to exactly.
    const warm = pl.lab.pod("warm");
    const c = pl.pmConf(backend, [MAPPINGS[0]]);
    pl.down(warm, "pm-warm", c, pl.up(warm, "pm-warm", c));
    before = pl.rules();
  });

  it("ADD, CHECK, traffic from outside, from the node's loopback and from the pod itself (TCP, UDP, IPv4, IPv6), DEL back to before", async () => {
    const pod = pl.lab.pod("main");
    const id = cid();
    const conf = pl.pmConf(backend, MAPPINGS);
    const result = pl.up(pod, id, conf);
    const server = await serve(pod);
    try {
      const [bc, pc] = pl.check(pod, id, conf, result);
      expect([bc.status, bc.stdout]).toEqual([0, ""]);
      expect([pc.status, pc.stdout], pc.stdout).toEqual([0, ""]);
      expect(pl.rules()).not.toBe(before);
      for (const proto of ["tcp", "udp"] as const) {
        // From another namespace: the pod sees the client's own address.
        expect(talk(pl.outside, NODE4, 8080, proto), `outside v4 ${proto}`).toBe(answer(proto, OUT4));
        expect(talk(pl.outside, NODE6, 8080, proto), `outside v6 ${proto}`).toBe(answer(proto, OUT6));
        // From the node itself to 127.0.0.1: masqueraded to the bridge's address (route_localnet on cni0).
        expect(talk(pl.node, "127.0.0.1", 8080, proto), `loopback ${proto}`).toBe(answer(proto, GW4));
        // From the pod to a node address: hairpin, masqueraded so the answer comes back through the node.
        expect(talk(pod, NODE4, 8080, proto), `hairpin v4 ${proto}`).toBe(answer(proto, GW4));
        expect(talk(pod, NODE6, 8080, proto), `hairpin v6 ${proto}`).toBe(answer(proto, GW6));
      }
      // hostIP: only that address forwards.
      expect(talk(pl.outside, NODE4, 9090, "tcp")).toBe(answer("tcp", OUT4));
      expect(talk(pl.outside, NODE4_OTHER, 9090, "tcp")).toBeUndefined();
      expect(talk(pl.outside, NODE4_OTHER, 8080, "tcp")).toBe(answer("tcp", OUT4));
      expect(sysctl(pl.node.name, "net.ipv4.conf.cni0.route_localnet")).toBe("1");

      pl.down(pod, id, conf, result);
      expect(pl.rules()).toBe(before);
      expect(talk(pl.outside, NODE4, 8080, "tcp")).toBeUndefined();
      expect(talk(pl.outside, NODE6, 8080, "udp")).toBeUndefined();
    } finally {
      stop(server);
    }
  });

  it("DEL without prevResult, without portMappings, after the pod's namespace is gone: all rules of the attachment go", () => {
    const pod = pl.lab.pod("gone");
    const id = cid();
    const conf = pl.pmConf(backend, MAPPINGS);
    pl.up(pod, id, conf);
    expect(pl.rules()).not.toBe(before);
    sh("ip", ["netns", "del", pod.name]);
    pl.down(pod.path, id, pl.pmConf(backend, undefined));
    expect(pl.rules()).toBe(before);
    // And once more: DEL is idempotent.
    expect(pl.pm("DEL", conf, "", id).status).toBe(0);
  });

  it("a pod that maps no port: DEL, with the namespace and again without, starts no process", () => {
    const tools = recordingTools(sb);
    const path = tools.path;
    const pod = pl.lab.pod("nomap");
    const id = cid();
    const conf = pl.pmConf(backend, []);
    const br = pl.lab.add(pl.bridgeConf(), { pod, containerID: id });
    const add = pl.pm("ADD", { ...conf, prevResult: br }, pod, id, undefined, path);
    expect([add.status, add.out], add.stderr).toEqual([0, br]);
    for (const [netns, prev] of [
      [pod.path, { prevResult: br }],
      ["", {}],
    ] as const) {
      const d = pl.pm("DEL", { ...conf, ...prev }, netns, id, undefined, path);
      expect([d.status, d.stdout], d.stderr).toEqual([0, ""]);
    }
    expect(tools.calls()).toEqual([]);
    expect(pl.rules()).toBe(before);
    // The control: with a mapping, the same wrappers are called (ADD, and a DEL without portMappings).
    const mapped = pl.pmConf(backend, [MAPPINGS[0]]);
    const add2 = pl.pm("ADD", { ...mapped, prevResult: br }, pod, id, undefined, path);
    expect(add2.status, add2.stdout).toBe(0);
    const del2 = pl.pm("DEL", conf, "", id, undefined, path);
    expect(del2.status, del2.stdout).toBe(0);
    expect(tools.calls()).not.toEqual([]);
    expect(pl.rules()).toBe(before);
    expect(pl.lab.cni("DEL", { ...pl.bridgeConf(), prevResult: br }, { pod, containerID: id }).status).toBe(0);
  });

  it("DEL removes exactly its own attachment's rules", () => {
    const [a, b] = [pl.lab.pod("own-a"), pl.lab.pod("own-b")];
    const [ida, idb] = [cid(), cid()];
    const ca = pl.pmConf(backend, [MAPPINGS[0]]);
    const cb = pl.pmConf(backend, [{ hostPort: 8081, containerPort: POD_PORT, protocol: "tcp" }]);
    const ra = pl.up(a, ida, ca);
    const onlyA = pl.rules();
    const rb = pl.up(b, idb, cb);
    pl.down(b, idb, cb, rb);
    expect(pl.rules()).toBe(onlyA);
    pl.down(a, ida, ca, ra);
    expect(pl.rules()).toBe(before);
  });

  it("a hostPort another attachment holds is code 102, also between any address and a specific one; a repeated ADD is fine", () => {
    const [a, b] = [pl.lab.pod("cf-a"), pl.lab.pod("cf-b")];
    const [ida, idb] = [cid(), cid()];
    const ca = pl.pmConf(backend, MAPPINGS);
    const ra = pl.up(a, ida, ca);
    const held = pl.rules();
    const brB = pl.lab.add(pl.bridgeConf(), { pod: b, containerID: idb });
    for (const m of [
      { hostPort: 8080, containerPort: 1, protocol: "tcp" },
      { hostPort: 8080, containerPort: 1, protocol: "udp", hostIP: NODE4 },
      { hostPort: 9090, containerPort: 1, protocol: "tcp" },
      { hostPort: 9090, containerPort: 1, protocol: "tcp", hostIP: NODE4 },
    ]) {
      const r = pl.pm("ADD", { ...pl.pmConf(backend, [m]), prevResult: brB }, b, idb);
      expect(r.out, JSON.stringify(m)).toMatchObject({ code: 102 });
      expect(r.out!.msg).toContain(`hostPort ${m.hostPort}/${m.protocol}`);
    }
    expect(pl.rules()).toBe(held);
    // Another port, or the same port on another address: fine.
    const cb = pl.pmConf(backend, [{ hostPort: 9090, containerPort: 1, protocol: "tcp", hostIP: NODE4_OTHER }]);
    expect(pl.pm("ADD", { ...cb, prevResult: brB }, b, idb).status).toBe(0);
    // The same attachment again: no conflict with itself, same rules.
    const afterB = pl.rules();
    expect(pl.pm("ADD", { ...ca, prevResult: ra }, a, ida).status).toBe(0);
    expect(pl.rules()).toBe(afterB);
    pl.down(b, idb, cb, brB);
    pl.down(a, ida, ca, ra);
    expect(pl.rules()).toBe(before);
  });

  it("CHECK names what is missing (code 103), and a repeated ADD repairs it", () => {
    const pod = pl.lab.pod("chk");
    const id = cid();
    const conf = pl.pmConf(backend, [MAPPINGS[0]]);
    const result = pl.up(pod, id, conf);
    if (backend === "nftables")
      nsRun(pl.node.name, "nft", ["delete", "element", "inet", "cni_ts_portmap", "dnat4", "{ tcp . 8080 }"]);
    else nsRun(pl.node.name, "iptables", ["-t", "nat", "-F", dnatChainName("pmnet", id)]);
    const c = pl.pm("CHECK", { ...conf, prevResult: result }, pod, id);
    expect(c.out?.code).toBe(103);
    expect(c.out?.msg).toContain(backend === "nftables" ? "dnat4" : dnatChainName("pmnet", id));
    expect(pl.pm("CHECK", conf, pod, id).out).toMatchObject({ code: 7, msg: "Required prevResult missing" });
    expect(pl.pm("ADD", { ...conf, prevResult: result }, pod, id).status).toBe(0);
    expect(pl.pm("CHECK", { ...conf, prevResult: result }, pod, id)).toMatchObject({ status: 0, stdout: "" });
    pl.down(pod, id, conf, result);
    expect(pl.rules()).toBe(before);
  });

  it("GC keeps the valid attachments' rules and removes the others'", async () => {
    const [a, b] = [pl.lab.pod("gc-a"), pl.lab.pod("gc-b")];
    const [ida, idb] = [cid(), cid()];
    const ca = pl.pmConf(backend, [MAPPINGS[0]]);
    const cb = pl.pmConf(backend, [{ hostPort: 8081, containerPort: POD_PORT, protocol: "tcp" }]);
    const ra = pl.up(a, ida, ca);
    const onlyA = pl.rules();
    const rb = pl.up(b, idb, cb);
    const gc = (valid: Array<{ containerID: string; ifname: string }>) =>
      pl.pm("GC", pl.pmConf(undefined, undefined, { "cni.dev/valid-attachments": valid }, "1.1.0"), "", "");
    expect(gc([{ containerID: ida, ifname: "eth0" }])).toMatchObject({ status: 0, stdout: "" });
    expect(pl.rules()).toBe(onlyA);
    const server = await serve(a);
    try {
      expect(talk(pl.outside, NODE4, 8080, "tcp")).toBe(answer("tcp", OUT4));
    } finally {
      stop(server);
    }
    // Another network's GC leaves ours alone.
    expect(
      pl.pm(
        "GC",
        { ...pl.pmConf(undefined, undefined, { "cni.dev/valid-attachments": [] }, "1.1.0"), name: "othernet" },
        "",
        "",
      ).status,
    ).toBe(0);
    expect(pl.rules()).toBe(onlyA);
    expect(gc([]).status).toBe(0);
    expect(pl.rules()).toBe(before);
    for (const [p, id, c, r] of [
      [a, ida, ca, ra],
      [b, idb, cb, rb],
    ] as const)
      pl.down(p, id, c, r);
  });

  it("masqAll: outside clients are masqueraded too; snat false: no masquerade, so no loopback and no hairpin", async () => {
    for (const [extra, outsideFrom, loopback] of [
      [{ masqAll: true }, GW4, answer("tcp", GW4)],
      [{ snat: false }, OUT4, undefined],
    ] as const) {
      const pod = pl.lab.pod(`masq${Object.keys(extra)[0]}`);
      const id = cid();
      const conf = pl.pmConf(backend, [MAPPINGS[0]], extra);
      const result = pl.up(pod, id, conf);
      const server = await serve(pod);
      try {
        expect(pl.check(pod, id, conf, result)[1]).toMatchObject({ status: 0, stdout: "" });
        expect(talk(pl.outside, NODE4, 8080, "tcp"), JSON.stringify(extra)).toBe(answer("tcp", outsideFrom));
        expect(talk(pl.node, "127.0.0.1", 8080, "tcp"), JSON.stringify(extra)).toBe(loopback);
      } finally {
        stop(server);
        pl.down(pod, id, conf, result);
      }
    }
    expect(pl.rules()).toBe(before);
  });

  it("conditionsV4 restrict the IPv4 mappings (the outside may, the pod's own subnet may not); IPv6 is unrestricted", async () => {
    const pod = pl.lab.pod("cond");
    const id = cid();
    const conditionsV4 = backend === "iptables" ? ["-s", "192.0.2.0/24"] : ["ip saddr 192.0.2.0/24"];
    const conf = pl.pmConf(backend, [MAPPINGS[0]], { conditionsV4 });
    const result = pl.up(pod, id, conf);
    const server = await serve(pod);
    try {
      expect(pl.check(pod, id, conf, result)[1]).toMatchObject({ status: 0, stdout: "" });
      expect(talk(pl.outside, NODE4, 8080, "tcp")).toBe(answer("tcp", OUT4));
      expect(talk(pod, NODE4, 8080, "tcp")).toBeUndefined();
      expect(talk(pod, NODE6, 8080, "tcp")).toBe(answer("tcp", GW6));
    } finally {
      stop(server);
    }
    pl.down(pod, id, conf, result);
    expect(pl.rules()).toBe(before);
  });

  it("first ADDs racing on a fresh node: all succeed and all CHECK (shared chains are created without emptying each other)", async () => {
    const fresh = new PortmapLab(backend === "iptables" ? "pmri" : "pmrn");
    const pods = [0, 1, 2, 3, 4, 5].map((i) => {
      const pod = fresh.lab.pod(`race${i}`);
      const id = `race-${i}`;
      const conf = fresh.pmConf(backend, [
        { hostPort: 7100 + i, containerPort: POD_PORT, protocol: i % 2 ? "udp" : "tcp" },
      ]);
      return { pod, id, conf, br: fresh.lab.add(fresh.bridgeConf(), { pod, containerID: id }) };
    });
    const adds = await Promise.all(pods.map((p) => fresh.pmAsync("ADD", { ...p.conf, prevResult: p.br }, p.pod, p.id)));
    for (const a of adds) expect([a.status, a.out?.msg], a.stderr).toEqual([0, undefined]);
    for (const p of pods)
      expect(fresh.pm("CHECK", { ...p.conf, prevResult: p.br }, p.pod, p.id), p.id).toMatchObject({
        status: 0,
        stdout: "",
      });
    for (const p of pods) fresh.down(p.pod, p.id, p.conf, p.br);
    expect(fresh.rules()).not.toMatch(/CNI-DN-|comment "[0-9a-f]{16}-/);
  });

  it.runIf(backend === "nftables")(
    "a pod adds map and set elements, never a rule: the rule count stays the same",
    () => {
      const ruleCount = () =>
        (
          JSON.parse(nsRun(pl.node.name, "nft", ["-j", "list", "table", "inet", "cni_ts_portmap"]).stdout) as {
            nftables: object[];
          }
        ).nftables.filter((o) => "rule" in o).length;
      const elements = () =>
        (
          nsRun(pl.node.name, "nft", ["list", "table", "inet", "cni_ts_portmap"]).stdout.match(
            /comment "[0-9a-f]{16}-[0-9a-f]{16}"/g,
          ) ?? []
        ).length;
      const base = ruleCount();
      const pods = [0, 1, 2].map((i) => ({
        pod: pl.lab.pod(`cost${i}`),
        id: cid(),
        conf: pl.pmConf(backend, [{ hostPort: 7000 + i, containerPort: POD_PORT, protocol: "tcp" }]),
      }));
      const results = pods.map((p) => pl.up(p.pod, p.id, p.conf));
      expect(ruleCount()).toBe(base);
      // Per pod: IPv4 one dnat element and two masquerade elements (pod subnet, loopback); IPv6 one of each.
      expect(elements()).toBe(3 * 5);
      expect(nsRun(pl.node.name, "nft", ["list", "table", "inet", "cni_ts_portmap"]).stdout).toContain(
        nftOwner("pmnet", pods[0]!.id, "eth0"),
      );
      pods.forEach((p, i) => {
        pl.down(p.pod, p.id, p.conf, results[i]);
      });
      expect(pl.rules()).toBe(before);
    },
  );
});

describe("portmap protocol details", () => {
  let pl: PortmapLab;
  beforeAll(() => {
    pl = new PortmapLab("pmp");
  });

  it("passes prevResult through at every version; without portMappings it changes nothing", () => {
    for (const v of ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      const pod = pl.lab.pod(`pv${v.replace(/\./g, "")}`);
      const id = `pv-${v}`;
      const br = pl.lab.add(pl.bridgeConf(v), { pod, containerID: id });
      const before = pl.rules();
      const r = pl.pm("ADD", { ...pl.pmConf("nftables", undefined, {}, v), prevResult: br }, pod, id);
      expect(r.out, v).toEqual(br);
      expect(pl.rules()).toBe(before);
      expect(pl.lab.cni("DEL", { ...pl.bridgeConf(v), prevResult: br }, { pod, containerID: id }).status).toBe(0);
    }
  });

  it("refuses bad mappings and a missing prevResult with code 7; STATUS answers", () => {
    const pod = pl.lab.pod("bad");
    const br = pl.lab.add(pl.bridgeConf(), { pod, containerID: "bad" });
    for (const m of [
      { hostPort: 70000, containerPort: 80, protocol: "tcp" },
      { hostPort: 80, containerPort: 80, protocol: "icmp" },
      { hostPort: 80, containerPort: 80, protocol: "tcp", hostIP: "x" },
    ]) {
      expect(
        pl.pm("ADD", { ...pl.pmConf("iptables", [m]), prevResult: br }, pod, "bad").out?.code,
        JSON.stringify(m),
      ).toBe(7);
    }
    expect(pl.pm("ADD", pl.pmConf("iptables", [MAPPINGS[0]]), pod, "bad").out).toMatchObject({
      code: 7,
      msg: "must be called as chained plugin",
    });
    expect(
      pl.pm(
        "ADD",
        { ...pl.pmConf("nftables", [MAPPINGS[0]], { conditionsV4: ["-s", "10.0.0.0/8"] }), prevResult: br },
        pod,
        "bad",
      ).out?.code,
    ).toBe(7);
    expect(pl.pm("STATUS", pl.pmConf("nftables", undefined, {}, "1.1.0"), "", "")).toMatchObject({
      status: 0,
      stdout: "",
    });
    expect(pl.lab.cni("DEL", { ...pl.bridgeConf(), prevResult: br }, { pod, containerID: "bad" }).status).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Side by side with the reference.

/** The differences the next block asserts, as the rows of docs/portmap.md name them (each marked [diff] there). */
const INTENDED_DIFFERENCES = [
  "`dns` in the result",
  "CHECK",
  "A hostPort another attachment holds",
  "DEL without `portMappings`",
  "Invalid ports",
  "Error codes",
  "Version 1.1.0, GC, STATUS",
];

const HAVE_REFERENCE = ["bridge", "host-local", "portmap"].every((p) => existsSync(join(REFERENCE_BIN, p)));

describe.skipIf(!HAVE_REFERENCE)("portmap: cni-ts vs the reference 1.1.1 (iptables), same chain side by side", () => {
  const CID = "pmdiff0000000000000000000000000000000000000000000000000000000001";
  const CID2 = "pmdiff0000000000000000000000000000000000000000000000000000000002";
  const ours = () => new PortmapLab("pdo", undefined, "pmdiff");
  const reference = () => new PortmapLab("pdr", REFERENCE_BIN, "pmdiff");

  it("docs/portmap.md has a [diff] row for every difference asserted here", () => {
    const rows = readFileSync(join(ROOT, "docs/portmap.md"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("| ") && l.includes("**[diff]**"));
    for (const d of INTENDED_DIFFERENCES)
      expect(
        rows.some((r) => r.startsWith(`| ${d}`)),
        d,
      ).toBe(true);
    expect(rows).toHaveLength(INTENDED_DIFFERENCES.length);
  });

  it("the same nat table, byte for byte, in both families; each plugin's DEL removes the other's rules", () => {
    const [r, o] = [reference(), ours()];
    const conf = (pl: PortmapLab) => pl.pmConf(undefined, MAPPINGS);
    const res = [r, o].map((pl) => {
      const pod = pl.lab.pod("a");
      const br = pl.lab.add(pl.bridgeConf(), { pod, containerID: CID });
      const add = pl.pm("ADD", { ...conf(pl), prevResult: br }, pod, CID);
      expect(add.status, add.stdout).toBe(0);
      return { pl, pod, br, add };
    });
    const [ref, our] = res as [(typeof res)[0], (typeof res)[0]];
    expect(iptNat(our.pl.node.name)).toBe(iptNat(ref.pl.node.name));
    expect(sysctl(our.pl.node.name, "net.ipv4.conf.cni0.route_localnet")).toBe(
      sysctl(ref.pl.node.name, "net.ipv4.conf.cni0.route_localnet"),
    );
    // Both pass the bridge's result through (the reference adds its `"dns": {}`).
    expect(ref.add.out).toEqual({ ...ref.br, dns: {} });
    expect(our.add.out).toEqual(our.br);

    // Cross-DEL: our executable in the reference's node, the reference's in ours.
    for (const [side, exe] of [
      [ref, binDir(sb, "pd-ours")],
      [our, REFERENCE_BIN],
    ] as const) {
      const d = side.pl.pm("DEL", { ...conf(side.pl), prevResult: side.add.out }, side.pod, CID, exe);
      expect(d.status, d.stdout).toBe(0);
      expect(iptNat(side.pl.node.name)).not.toContain("CNI-DN-");
    }
    expect(iptNat(our.pl.node.name)).toBe(iptNat(ref.pl.node.name));
  });

  it("CHECK: the reference fails on its own rules (it checks IPv4 rules in ip6tables); cni-ts passes", () => {
    const out = [reference(), ours()].map((pl) => {
      const pod = pl.lab.pod("chk");
      const conf = pl.pmConf(undefined, [MAPPINGS[0]]);
      const result = pl.up(pod, CID, conf);
      return pl.pm("CHECK", { ...conf, prevResult: result }, pod, CID);
    });
    expect(out[0]!.out).toMatchObject({ code: 999 });
    expect(out[0]!.out!.msg).toContain("could not check ipv6 dnat");
    expect([out[1]!.status, out[1]!.stdout]).toEqual([0, ""]);
  });

  it("a second attachment on a held hostPort: the reference adds a second DNAT (last write wins), cni-ts refuses with 102", () => {
    const out = [reference(), ours()].map((pl) => {
      const conf = pl.pmConf(undefined, [MAPPINGS[0]]);
      pl.up(pl.lab.pod("h1"), CID, conf);
      const b = pl.lab.pod("h2");
      const br = pl.lab.add(pl.bridgeConf(), { pod: b, containerID: CID2 });
      const r = pl.pm("ADD", { ...conf, prevResult: br }, b, CID2);
      return { code: r.out?.code, dnats: (iptNat(pl.node.name).match(/-j DNAT/g) ?? []).length };
    });
    // Counted over both families' nat tables: two DNATs per family in the reference's, one in ours.
    expect(out).toEqual([
      { code: undefined, dnats: 4 },
      { code: 102, dnats: 2 },
    ]);
  });

  it("DEL without portMappings (and without prevResult): the reference leaves the chain, cni-ts removes it", () => {
    const left = [reference(), ours()].map((pl) => {
      const pod = pl.lab.pod("nomap");
      pl.up(pod, CID, pl.pmConf(undefined, MAPPINGS));
      expect(pl.pm("DEL", pl.pmConf(undefined, undefined), pod, CID).status).toBe(0);
      return iptNat(pl.node.name).includes("CNI-DN-");
    });
    expect(left).toEqual([true, false]);
  });

  it("an invalid port: the reference fails in iptables (999), cni-ts before touching anything (7)", () => {
    const out = [reference(), ours()].map((pl) => {
      const pod = pl.lab.pod("badport");
      const br = pl.lab.add(pl.bridgeConf(), { pod, containerID: CID });
      const r = pl.pm(
        "ADD",
        { ...pl.pmConf(undefined, [{ hostPort: 70000, containerPort: 80, protocol: "tcp" }]), prevResult: br },
        pod,
        CID,
      );
      return r.out?.code;
    });
    expect(out).toEqual([999, 7]);
  });

  it("no prevResult: both refuse with the same message (999 vs 7); 1.1.0 GC: refused by the reference, served by cni-ts", () => {
    const out = [reference(), ours()].map((pl) => {
      const pod = pl.lab.pod("noprev");
      const add = pl.pm("ADD", pl.pmConf(undefined, [MAPPINGS[0]]), pod, CID);
      const gc = pl.pm("GC", pl.pmConf(undefined, undefined, { "cni.dev/valid-attachments": [] }, "1.1.0"), "", "");
      return { add: [add.out?.code, add.out?.msg], gc: gc.status };
    });
    expect(out[0]).toEqual({ add: [999, "must be called as chained plugin"], gc: 1 });
    expect(out[1]).toEqual({ add: [7, "must be called as chained plugin"], gc: 0 });
  });
});
