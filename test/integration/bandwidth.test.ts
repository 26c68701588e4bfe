// bandwidth, run like a runtime runs the chain bridge + host-local + bandwidth (prevResult from bridge; DEL in
// reverse), with the BUILT executable inside a node namespace of the run. Traffic is real: a bulk TCP transfer
// between two pods of the node, each way, must run at the configured rate (within 20%). DEL must leave no qdisc and
// no ifb, also after the pod's namespace was deleted first; hostile limits are refused with nothing changed; the
// layout is compared with the reference's (/usr/lib/cni, Debian 1.1.1). Nothing here touches the machine's namespace.
import { runInNode } from "../../sandbox/plugin.js";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeLab, type CniCall, type Conf, labPath, linkNames, nsRun, type Ns, REFERENCE_BIN } from "./bridge-lab.js";
import { DIST_BIN, requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

const SUBNET = "10.68.0.0/24";

/** The node tools (tc among them) and the lab's. */
const bwPath = (): string => labPath(sb);

/** A CNI_PATH of our executable under the names this chain uses. */
function ourBin(): string {
  const dir = join(sb.tmpdir("bwbin"), "bin");
  mkdirSync(dir);
  for (const p of ["bridge", "host-local", "bandwidth"]) symlinkSync(join(DIST_BIN, "cni-ts"), join(dir, p));
  return dir;
}

interface Attachment {
  pod: Ns;
  containerID: string;
  prev: Record<string, any>;
  veth: string;
}

interface QdiscRow {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
  options?: Record<string, unknown>;
}

/** A node with a bridge network, and the bandwidth plugin of `bwBin` chained after our bridge. */
class BwLab {
  readonly lab: BridgeLab;

  constructor(
    label: string,
    readonly bwBin = ourBin(),
  ) {
    this.lab = new BridgeLab(sb, label, ourBin(), "bwnet");
  }

  get node(): Ns {
    return this.lab.node;
  }

  bridgeConf(cniVersion = "1.0.0"): Conf {
    return this.lab.conf({ isGateway: true, ipam: this.lab.hostLocal([SUBNET]) }, cniVersion);
  }

  bwConf(limits: Conf, prevResult?: unknown, cniVersion = "1.0.0"): Conf {
    return { cniVersion, name: this.lab.network, type: "bandwidth", ...limits, ...(prevResult ? { prevResult } : {}) };
  }

  /** Run the bandwidth plugin of `bin` (this lab's unless given) in this node. */
  bw(cmd: string, conf: Conf, netns: string, containerID: string, bin = this.bwBin): CniCall {
    const env = {
      PATH: bwPath(),
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: containerID,
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: bin,
    };
    return runInNode(this.node.name, join(bin, "bandwidth"), env, JSON.stringify(conf));
  }

  /** A pod attached by our bridge; its host veth from the result. */
  attach(label: string, id?: string): Attachment {
    const pod = this.lab.pod(label);
    const containerID = id ?? `ctr-${pod.name}`;
    const prev = this.lab.add(this.bridgeConf(), { pod, containerID });
    return { pod, containerID, prev, veth: (prev.interfaces as Array<{ name: string }>)[1]!.name };
  }

  /** ADD bandwidth for the attachment; must succeed. */
  shape(a: Attachment, limits: Conf): Record<string, any> {
    const r = this.bw("ADD", this.bwConf(limits, a.prev), a.pod.path, a.containerID);
    if (r.status !== 0 || !r.out) throw new Error(`bandwidth ADD failed (${r.status}): ${r.stdout} ${r.stderr}`);
    return r.out;
  }

  qdiscs(): QdiscRow[] {
    return JSON.parse(nsRun(this.node.name, "tc", ["-json", "qdisc", "show"]).stdout || "[]") as QdiscRow[];
  }

  /** Our traces on the node: every qdisc that is not a link's default, and every ifb. */
  shaping(): { qdiscs: string[]; ifbs: string[] } {
    const qdiscs = this.qdiscs()
      .filter((q) => q.kind !== "noqueue" && q.kind !== "pfifo_fast")
      .map((q) => `${q.dev} ${q.kind} ${q.handle}`);
    const ifbs = JSON.parse(
      nsRun(this.node.name, "ip", ["-json", "link", "show", "type", "ifb"]).stdout || "[]",
    ) as Array<{ ifname: string }>;
    return { qdiscs, ifbs: ifbs.map((l) => l.ifname) };
  }

  filters(dev: string): Array<Record<string, any>> {
    return JSON.parse(
      nsRun(this.node.name, "tc", ["-json", "filter", "show", "dev", dev, "ingress"]).stdout || "[]",
    ) as Array<Record<string, any>>;
  }

  /** Everything a refused call must leave as it was. */
  snapshot(): string {
    const tc = nsRun(this.node.name, "tc", ["qdisc", "show"]).stdout;
    return `${linkNames(this.node.name).sort().join(" ")}\n${tc}`;
  }
}

// A bulk TCP transfer: the receiver counts bytes from the first one to the sender's close; the rate is bits/s.
const BULK = String.raw`
import socket, sys, time
if sys.argv[1] == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
    s.settimeout(20); c, _ = s.accept(); c.settimeout(20)
    n = 0; first = None
    while True:
        d = c.recv(1 << 16)
        if not d: break
        if first is None: first = time.monotonic()
        n += len(d)
    print(n, time.monotonic() - first, flush=True)
else:
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=20)
    buf = b"\0" * (1 << 16); end = time.monotonic() + float(sys.argv[4])
    while time.monotonic() < end: s.sendall(buf)
    s.close()
`;

/** Send for `seconds` from `from` to `toIp` (a listener in `to`); the rate the receiver saw, in bits/s. */
async function bulkRate(from: Ns, to: Ns, toIp: string, seconds: number): Promise<number> {
  const port = 5201;
  const recv = spawn("ip", ["netns", "exec", to.name, "python3", "-c", BULK, "recv", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  recv.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((resolve) => recv.on("close", () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!out.includes("ready") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const s = spawnSync(
    "ip",
    ["netns", "exec", from.name, "python3", "-c", BULK, "send", toIp, String(port), String(seconds)],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (s.status !== 0) throw new Error(`sender failed: ${s.stderr}`);
  await done;
  const [bytes, secs] = out.split("\n")[1]!.trim().split(" ").map(Number);
  return (bytes! * 8) / secs!;
}

const podIp = (a: Attachment) => String(a.prev.ips[0].address).split("/")[0]!;

describe("bandwidth: traffic", () => {
  it("limits a bulk transfer to the configured rate in both directions (within 20%)", async () => {
    const l = new BwLab("bwrate");
    const a = l.attach("a");
    const b = l.attach("b");
    const ingressRate = 8_000_000; // to the pod
    const egressRate = 4_000_000; // from the pod
    const result = l.shape(a, { ingressRate, ingressBurst: 256_000, egressRate, egressBurst: 256_000 });
    expect(result.interfaces.map((i: { name: string }) => i.name)).toEqual([
      ...a.prev.interfaces.map((i: { name: string }) => i.name),
      expect.stringMatching(/^bwp[0-9a-f]{12}$/),
    ]);
    const into = await bulkRate(b.pod, a.pod, podIp(a), 3);
    const outOf = await bulkRate(a.pod, b.pod, podIp(b), 3);
    console.info(
      `bandwidth: into the pod ${Math.round(into)} bit/s (limit ${ingressRate}), out of it ${Math.round(outOf)} bit/s (limit ${egressRate})`,
    );
    expect(Math.abs(into - ingressRate) / ingressRate, `b -> a at ${Math.round(into)} bit/s`).toBeLessThan(0.2);
    expect(Math.abs(outOf - egressRate) / egressRate, `a -> b at ${Math.round(outOf)} bit/s`).toBeLessThan(0.2);
    // The unshaped pod is not limited: b's traffic to a third pod runs far above both rates.
    const c = l.attach("c");
    const free = await bulkRate(b.pod, c.pod, podIp(c), 1);
    console.info(`bandwidth: unshaped ${Math.round(free)} bit/s`);
    expect(free).toBeGreaterThan(5 * ingressRate);
  }, 90_000);
});

describe("bandwidth: layout, CHECK, DEL", () => {
  const limits = { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 16_000_000, egressBurst: 160_000 };

  it("lays out tbf on the veth, ingress + u32 redirect to the ifb, tbf on the ifb; CHECK passes, then sees a removed tbf (103)", () => {
    const l = new BwLab("bwlay");
    const a = l.attach("a");
    const out = l.shape(a, limits);
    const ifb = out.interfaces[3].name as string;
    const rows = l.qdiscs().filter((q) => q.kind !== "noqueue");
    expect(rows).toEqual([
      expect.objectContaining({
        kind: "tbf",
        handle: "1:",
        dev: a.veth,
        root: true,
        options: { rate: 1_000_000, burst: 10_000, lat: 25_000 },
      }),
      expect.objectContaining({ kind: "ingress", handle: "ffff:", dev: a.veth }),
      expect.objectContaining({
        kind: "tbf",
        handle: "1:",
        dev: ifb,
        root: true,
        options: { rate: 2_000_000, burst: 20_000, lat: 25_000 },
      }),
    ]);
    const redirect = l.filters(a.veth).find((f) => f.options?.actions);
    expect(redirect).toMatchObject({
      protocol: "all",
      pref: 1,
      kind: "u32",
      options: {
        flowid: "1:1",
        actions: [{ kind: "mirred", mirred_action: "redirect", direction: "egress", to_dev: ifb }],
      },
    });
    const conf = l.bwConf(limits, out);
    expect(l.bw("CHECK", conf, a.pod.path, a.containerID).status).toBe(0);
    nsRun(l.node.name, "tc", ["qdisc", "del", "dev", a.veth, "root"]);
    const broken = l.bw("CHECK", conf, a.pod.path, a.containerID);
    expect(broken.out).toMatchObject({ code: 103, msg: expect.stringContaining(a.veth) });
  });

  it("DEL removes the ifb; after the main plugin's DEL no qdisc or ifb of ours is left", () => {
    const l = new BwLab("bwdel");
    const a = l.attach("a");
    const out = l.shape(a, limits);
    const conf = l.bwConf(limits, out);
    expect(l.bw("DEL", conf, a.pod.path, a.containerID).status).toBe(0);
    expect(l.shaping().ifbs).toEqual([]);
    expect(
      l.lab.cni("DEL", l.lab.withPrev(l.bridgeConf(), out), { pod: a.pod, containerID: a.containerID }).status,
    ).toBe(0);
    expect(l.shaping()).toEqual({ qdiscs: [], ifbs: [] });
    expect(l.bw("DEL", conf, a.pod.path, a.containerID).status).toBe(0); // again: nothing left, no error
  });

  it("DEL cleans up with the pod's namespace deleted first (CNI_NETNS gone, and empty)", () => {
    const l = new BwLab("bwgone");
    for (const netns of ["path", ""]) {
      const a = l.attach(`g${netns === "" ? "e" : "p"}`);
      const out = l.shape(a, limits);
      l.lab.dropPod(a.pod, a.containerID);
      expect(l.shaping().ifbs).toEqual([out.interfaces[3].name]);
      const r = l.bw("DEL", l.bwConf(limits, out), netns === "" ? "" : a.pod.path, a.containerID);
      expect(r.status, r.stdout).toBe(0);
      expect(
        l.lab.cni("DEL", l.lab.withPrev(l.bridgeConf(), out), {
          pod: netns === "" ? "" : a.pod.path,
          containerID: a.containerID,
        }).status,
      ).toBe(0);
      expect(l.shaping()).toEqual({ qdiscs: [], ifbs: [] });
    }
  });

  it("a failing ADD undoes what it made: an ingress qdisc already on the veth stops egress, the ingress tbf and the ifb go", () => {
    const l = new BwLab("bwundo");
    const a = l.attach("a");
    nsRun(l.node.name, "tc", ["qdisc", "add", "dev", a.veth, "handle", "ffff:", "ingress"]);
    const before = l.snapshot();
    const r = l.bw("ADD", l.bwConf(limits, a.prev), a.pod.path, a.containerID);
    expect(r.out).toMatchObject({ code: 100, msg: expect.stringContaining("ingress") });
    expect(l.snapshot()).toBe(before);
    // A second ADD of a shaped attachment is refused the same way and leaves the first one's layout.
    const b = l.attach("b");
    l.shape(b, limits);
    const shaped = l.snapshot();
    expect(l.bw("ADD", l.bwConf(limits, b.prev), b.pod.path, b.containerID).out).toMatchObject({ code: 100 });
    expect(l.snapshot()).toBe(shaped);
  });

  it("refuses hostile limits with code 7 and changes nothing", () => {
    const l = new BwLab("bwbad");
    const a = l.attach("a");
    const before = l.snapshot();
    const bad: Array<[Conf, RegExp]> = [
      [{ ingressRate: "8000000", ingressBurst: 80_000 }, /ingressRate must be a non-negative integer/],
      [{ egressRate: -1, egressBurst: 80_000 }, /egressRate must be a non-negative integer/],
      [{ egressRate: 8_000_000, egressBurst: 1.5 }, /egressBurst must be a non-negative integer/],
      [{ ingressRate: 8_000_000, ingressBurst: [80_000] }, /ingressBurst/],
      [{ runtimeConfig: { bandwidth: "fast" } }, /runtimeConfig.bandwidth must be an object/],
      [{ runtimeConfig: { bandwidth: { IngressRate: true, IngressBurst: 8 } } }, /runtimeConfig.bandwidth.ingressRate/],
      [{ ingressBurst: 80_000 }, /if burst is set, rate must also be set/],
      [{ egressRate: 8_000_000 }, /if rate is set, burst must also be set/],
      [{ ingressRate: 8_000_000, ingressBurst: 34_359_738_360 }, /burst cannot be more than 4GB/],
      [{ ingressRate: 7, ingressBurst: 80_000 }, /rate must be at least 8 bit\/s/],
      [{ egressRate: 2 ** 53, egressBurst: 80_000 }, /rate is too high/],
      [{ egressRate: 8_000_000, egressBurst: 34_359_738_352 }, /burst is too large/],
      [{ ingressRate: 80_000_000_000, ingressBurst: 8 }, /burst is too small/],
    ];
    for (const [limits, msg] of bad) {
      const r = l.bw("ADD", l.bwConf(limits, a.prev), a.pod.path, a.containerID);
      expect(r.status, JSON.stringify(limits)).toBe(1);
      expect(r.out, JSON.stringify(limits)).toMatchObject({ code: 7 });
      expect(`${r.out?.msg} ${r.out?.details ?? ""}`, JSON.stringify(limits)).toMatch(msg);
      expect(l.snapshot(), JSON.stringify(limits)).toBe(before);
    }
    // Without prevResult (not chained) and before 0.3.0: refused before anything is read from the kernel.
    expect(l.bw("ADD", l.bwConf(limits), a.pod.path, a.containerID).out).toMatchObject({
      code: 7,
      msg: "must be called as chained plugin",
    });
    expect(l.bw("ADD", l.bwConf(limits, a.prev, "0.2.0"), a.pod.path, a.containerID).out).toMatchObject({ code: 1 });
    expect(l.snapshot()).toBe(before);
  });

  it("passes prevResult through unchanged when no limit is set, at every version", () => {
    const l = new BwLab("bwzero");
    for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      const pod = l.lab.pod(`z${v.replace(/\./g, "")}`);
      const prev = l.lab.add(l.bridgeConf(v), { pod, containerID: `ctr-${pod.name}` });
      const r = l.bw("ADD", l.bwConf({ ingressRate: 0, ingressBurst: 0 }, prev, v), pod.path, `ctr-${pod.name}`);
      expect(r.out, v).toEqual(prev);
    }
    expect(l.shaping()).toEqual({ qdiscs: [], ifbs: [] });
  });
});

describe("bandwidth: the same as the reference", () => {
  it("makes the reference's qdiscs, filter target and ifb name; each CHECK passes on the other's layout", () => {
    const limits = {
      runtimeConfig: {
        bandwidth: { IngressRate: 8_000_000, IngressBurst: 80_000, EgressRate: 7_777_777, EgressBurst: 33_333 },
      },
    };
    const ours = new BwLab("bwours");
    const ref = new BwLab("bwref", REFERENCE_BIN);
    const view = (l: BwLab, a: Attachment, out: Record<string, any>) => {
      const ifb = out.interfaces[3].name as string;
      const name = (dev: string) => (dev === a.veth ? "VETH" : dev === ifb ? "IFB" : dev);
      const qdiscs = l
        .qdiscs()
        .filter((q) => q.kind !== "noqueue")
        .map((q) => ({ ...q, dev: name(q.dev) }));
      const redirects = l
        .filters(a.veth)
        .flatMap((f) =>
          (f.options?.actions ?? [])
            .filter((x: any) => x.control_action?.type === "stolen")
            .map((x: any) => `${f.kind} ${f.pref} ${f.options.flowid} ${x.kind} ${x.mirred_action} ${name(x.to_dev)}`),
        );
      return { ifb, qdiscs, redirects };
    };
    const id = `ctr-${sb.id}-same`;
    const results = [ours, ref].map((l) => {
      const a = l.attach("a", id);
      const out = l.shape(a, limits);
      return { l, a, out, view: view(l, a, out) };
    });
    const [o, r] = results as [(typeof results)[0], (typeof results)[0]];
    expect(o.view.qdiscs).toEqual(r.view.qdiscs);
    expect(o.view.redirects).toEqual(r.view.redirects);
    expect(o.view.ifb).toBe(r.view.ifb);
    expect(o.out.interfaces.map((i: { name: string }) => i.name).slice(3)).toEqual(
      r.out.interfaces.map((i: { name: string }) => i.name).slice(3),
    );
    // Our CHECK on the reference's layout, the reference's CHECK on ours (each in the other's node, with its result).
    for (const [owner, checker] of [
      [r, o],
      [o, r],
    ] as const) {
      const call = owner.l.bw(
        "CHECK",
        owner.l.bwConf(limits, owner.out),
        owner.a.pod.path,
        owner.a.containerID,
        checker.l.bwBin,
      );
      expect(call.status, `${checker.l.bwBin} CHECK: ${call.stdout}`).toBe(0);
    }
    // DEL of either removes the other's ifb (the same name, from the same identity).
    for (const [owner, deleter] of [
      [r, o],
      [o, r],
    ] as const) {
      expect(
        owner.l.bw("DEL", owner.l.bwConf(limits, owner.out), owner.a.pod.path, owner.a.containerID, deleter.l.bwBin)
          .status,
      ).toBe(0);
      expect(owner.l.shaping().ifbs).toEqual([]);
    }
  });
});
