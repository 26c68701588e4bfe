// tuning, run like a runtime runs a conflist: bridge ADD in a node namespace of the run, then the BUILT tuning
// executable in the same node namespace with the bridge's result as prevResult; CHECK; DEL (tuning first, as in
// reverse order). Every effect is read back from the kernel inside the pod (sysctls from /proc/sys in the pod's
// namespace, attributes from `ip -json link`), traffic is checked with ping, and hostile configs must fail with the
// right code and leave the pod exactly as it was (no sysctl written, no backup file). Then the same calls through
// the reference (/usr/lib/cni/tuning, Debian 1.1.1) side by side. Nothing here touches the machine's own namespace.
import { runInNode } from "../../sandbox/plugin.js";
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BridgeLab,
  type CniCall,
  type Conf,
  labPath,
  linkOf,
  nsRun,
  type Ns,
  ping,
  recordingTools,
  REFERENCE_BIN,
  sysctl,
} from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

const SUBNET = "10.71.0.0/24";
const GW = "10.71.0.1";
const NEW_MAC = "c2:11:22:33:44:55";

interface Attrs {
  mac: string;
  mtu: number;
  promisc: boolean;
  allmulti: boolean;
  txqlen: number;
}

/** The pod interface's attributes tuning may change, as the kernel shows them. */
function attrs(pod: Ns, dev = "eth0"): Attrs {
  const l = linkOf(pod.name, dev) as (ReturnType<typeof linkOf> & { txqlen?: number }) | undefined;
  if (!l) throw new Error(`${dev} missing in ${pod.name}`);
  return {
    mac: l.address,
    mtu: l.mtu,
    promisc: l.flags.includes("PROMISC"),
    allmulti: l.flags.includes("ALLMULTI"),
    txqlen: l.txqlen ?? 0,
  };
}

const WATCHED_SYSCTLS = [
  "net.ipv4.conf.eth0.rp_filter",
  "net.ipv4.conf.all.arp_ignore",
  "net.core.somaxconn",
  "net.ipv4.conf.eth0.forwarding",
  "net.ipv4.ip_forward",
];
/** What must be unchanged after a refused ADD: the watched sysctls and the attributes. */
const podState = (pod: Ns) => ({ sysctls: WATCHED_SYSCTLS.map((k) => sysctl(pod.name, k)), attrs: attrs(pod) });

class TuningLab {
  readonly lab: BridgeLab;
  readonly tuningDir: string;

  constructor(
    label: string,
    readonly tuningBin?: string,
  ) {
    this.lab = new BridgeLab(sb, label, undefined, "tunnet");
    this.tuningDir = join(sb.tmpdir(`${label}-tuning`), "data");
  }

  get node(): Ns {
    return this.lab.node;
  }

  /** A pod with eth0 from a real bridge ADD; returns the bridge's result (the prevResult tuning gets). */
  podWithBridge(cniVersion = "1.0.0"): { pod: Ns; prev: Record<string, any>; cid: string } {
    const pod = this.lab.pod();
    const cid = `ctr-${pod.name}`;
    const prev = this.lab.add(this.lab.conf({ isGateway: true, ipam: this.lab.hostLocal([SUBNET]) }, cniVersion), {
      pod,
      containerID: cid,
    });
    return { pod, prev, cid };
  }

  conf(o: Conf, prev: unknown, cniVersion = "1.0.0"): Conf {
    return { cniVersion, name: "tunnet", type: "tuning", dataDir: this.tuningDir, ...o, prevResult: prev };
  }

  /** Run tuning (ours, or the one in `tuningBin`) in the node namespace. */
  call(
    cmd: string,
    conf: Conf,
    pod: Ns | string,
    cid: string,
    o: { ifname?: string; args?: string; path?: string } = {},
  ): CniCall {
    const env: Record<string, string> = {
      PATH: o.path ?? labPath(sb),
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: cid,
      CNI_NETNS: typeof pod === "string" ? pod : pod.path,
      CNI_IFNAME: o.ifname ?? "eth0",
      CNI_PATH: this.lab.bin,
    };
    if (o.args !== undefined) env.CNI_ARGS = o.args;
    const exe = join(this.tuningBin ?? this.lab.bin, "tuning");
    return runInNode(this.node.name, exe, env, JSON.stringify(conf));
  }

  backups(): string[] {
    return existsSync(this.tuningDir) ? readdirSync(this.tuningDir).sort() : [];
  }
}

const FULL: Conf = {
  sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "2", "net/ipv4/conf/all/arp_ignore": "1", "net.core.somaxconn": "512" },
  mac: NEW_MAC,
  mtu: 1400,
  promisc: true,
  allmulti: true,
  txQLen: 500,
};

describe("tuning ADD, CHECK, DEL against the kernel", () => {
  let t: TuningLab;
  beforeAll(() => {
    t = new TuningLab("tun");
  });

  it("sets sysctls in the pod only, and mac/mtu/promisc/allmulti/txqlen; CHECK passes; traffic flows; DEL restores the attributes", () => {
    const { pod, prev, cid } = t.podWithBridge();
    const before = attrs(pod);
    const nodeSomaxconn = sysctl(t.node.name, "net.core.somaxconn");
    const conf = t.conf(FULL, prev);

    const add = t.call("ADD", conf, pod, cid);
    expect(add.status, add.stdout + add.stderr).toBe(0);
    const eth0 = (add.out!.interfaces as Array<Record<string, unknown>>).find((i) => i.name === "eth0");
    expect(eth0).toMatchObject({ mac: NEW_MAC, sandbox: pod.path });
    expect(add.out!.ips).toEqual(prev.ips);

    expect(attrs(pod)).toEqual({ mac: NEW_MAC, mtu: 1400, promisc: true, allmulti: true, txqlen: 500 });
    expect(sysctl(pod.name, "net.ipv4.conf.eth0.rp_filter")).toBe("2");
    expect(sysctl(pod.name, "net.ipv4.conf.all.arp_ignore")).toBe("1");
    expect(sysctl(pod.name, "net.core.somaxconn")).toBe("512");
    expect(sysctl(t.node.name, "net.core.somaxconn")).toBe(nodeSomaxconn);

    // The reference's backup: the old values of exactly what changed, Go's MarshalIndent layout.
    expect(t.backups()).toEqual([`${cid}_eth0.json`]);
    expect(readFileSync(join(t.tuningDir, `${cid}_eth0.json`), "utf8")).toBe(
      `{\n "mac": "${before.mac}",\n "promisc": ${before.promisc},\n "mtu": ${before.mtu},\n "allmulti": ${before.allmulti},\n "txQLen": ${before.txqlen}\n}`,
    );

    expect(t.call("CHECK", { ...conf, prevResult: add.out }, pod, cid).status).toBe(0);
    expect(ping(pod, GW, 3)).toBe(true);

    // CHECK notices each attribute and sysctl drifting.
    for (const [cmd, fix] of [
      [
        ["link", "set", "eth0", "mtu", "1500"],
        ["link", "set", "eth0", "mtu", "1400"],
      ],
      [
        ["link", "set", "eth0", "promisc", "off"],
        ["link", "set", "eth0", "promisc", "on"],
      ],
      [
        ["link", "set", "eth0", "allmulticast", "off"],
        ["link", "set", "eth0", "allmulticast", "on"],
      ],
      [
        ["link", "set", "eth0", "txqueuelen", "1000"],
        ["link", "set", "eth0", "txqueuelen", "500"],
      ],
    ]) {
      nsRun(pod.name, "ip", cmd!);
      const c = t.call("CHECK", conf, pod, cid);
      expect([c.status, c.out?.code], cmd!.join(" ")).toEqual([1, 103]);
      nsRun(pod.name, "ip", fix!);
    }
    nsRun(pod.name, "sh", ["-c", "echo 0 > /proc/sys/net/core/somaxconn"]);
    expect(t.call("CHECK", conf, pod, cid).out).toMatchObject({
      code: 103,
      msg: expect.stringMatching(/somaxconn is 512, current value is 0/),
    });
    nsRun(pod.name, "sh", ["-c", "echo 512 > /proc/sys/net/core/somaxconn"]);
    expect(t.call("CHECK", conf, pod, cid).status).toBe(0);

    const del = t.call("DEL", conf, pod, cid);
    expect(del.status, del.stdout + del.stderr).toBe(0);
    expect(attrs(pod)).toEqual(before);
    expect(t.backups()).toEqual([]);
    // Sysctls are not restored (the reference's behaviour).
    expect(sysctl(pod.name, "net.core.somaxconn")).toBe("512");
    expect(ping(pod, GW, 3)).toBe(true);
    // DEL again, and DEL with the namespace gone: nothing to do, success.
    expect(t.call("DEL", conf, pod, cid).status).toBe(0);
    expect(t.call("DEL", conf, "", cid).status).toBe(0);
    expect(
      t.lab.cni("DEL", t.lab.conf({ isGateway: true, ipam: t.lab.hostLocal([SUBNET]) }), { pod, containerID: cid })
        .status,
    ).toBe(0);
  });

  it("reads CNI_ARGS MAC, the mac capability and args.cni (which wins) as the reference does", () => {
    const { pod, prev, cid } = t.podWithBridge();
    const args = t.call("ADD", t.conf({ mac: "02:00:00:00:00:01" }, prev), pod, cid, {
      args: "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
    });
    expect(args.status, args.stdout).toBe(0);
    expect(attrs(pod).mac).toBe("02:00:00:00:00:02");
    const cap = t.call("ADD", t.conf({ runtimeConfig: { mac: "02:00:00:00:00:03" } }, prev), pod, cid, {
      args: "MAC=02:00:00:00:00:02",
    });
    expect(cap.status, cap.stdout).toBe(0);
    expect(attrs(pod).mac).toBe("02:00:00:00:00:03");
    const a = t.call(
      "ADD",
      t.conf(
        {
          runtimeConfig: { mac: "02:00:00:00:00:03" },
          args: { cni: { mac: "02:00:00:00:00:04", mtu: 1300, sysctl: { "net.core.somaxconn": "77" } } },
        },
        prev,
      ),
      pod,
      cid,
    );
    expect(a.status, a.stdout).toBe(0);
    expect(attrs(pod)).toMatchObject({ mac: "02:00:00:00:00:04", mtu: 1300 });
    expect(sysctl(pod.name, "net.core.somaxconn")).toBe("77");
    expect(t.call("DEL", t.conf({}, prev), pod, cid).status).toBe(0);
  });

  it("DEL with the interface already gone drops the backup; with a backup it cannot use, too", () => {
    const { pod, prev, cid } = t.podWithBridge();
    expect(t.call("ADD", t.conf({ mtu: 1400 }, prev), pod, cid).status).toBe(0);
    expect(t.backups()).toEqual([`${cid}_eth0.json`]);
    nsRun(pod.name, "ip", ["link", "del", "eth0"]);
    expect(t.call("DEL", t.conf({}, prev), pod, cid).status).toBe(0);
    expect(t.backups()).toEqual([]);
    writeFileSync(join(t.tuningDir, `${cid}_eth0.json`), '{"mac": "02:00:00:00:00:01 down"}');
    const rec = recordingTools(sb);
    expect(t.call("DEL", t.conf({}, prev), pod, cid, { path: rec.path }).status).toBe(0);
    expect(rec.calls()).toEqual([]);
    expect(t.backups()).toEqual([]);
  });

  it("writes sysctls the kernel will not read back first (an unset stable_secret, the write-only route.flush)", () => {
    const { pod, prev, cid } = t.podWithBridge();
    const secret = "2001:db8:1:2:3:4:5:6";
    const r = t.call(
      "ADD",
      t.conf(
        {
          sysctl: {
            "net.ipv6.conf.IFNAME.stable_secret": secret,
            "net.ipv4.route.flush": "1",
            "net.core.somaxconn": "300",
          },
        },
        prev,
      ),
      pod,
      cid,
    );
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // The kernel shows it in its own spelling.
    expect(sysctl(pod.name, "net.ipv6.conf.eth0.stable_secret")).toBe("2001:0db8:0001:0002:0003:0004:0005:0006");
    expect(sysctl(pod.name, "net.core.somaxconn")).toBe("300");
  });

  it("starts one process chain per ADD (nsenter, then sh only when there are sysctls), none when there is nothing to do", () => {
    const { pod, prev, cid } = t.podWithBridge();
    const count = (o: Conf, cmd = "ADD") => {
      const rec = recordingTools(sb);
      const r = t.call(cmd, t.conf(o, prev), pod, cid, { path: rec.path });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      return rec.calls();
    };
    expect(count(FULL)).toEqual(["nsenter", "sh", "ip"]);
    expect(count(FULL, "CHECK")).toEqual(["nsenter", "sh", "ip"]);
    expect(count({ mtu: 1450 })).toEqual(["nsenter", "ip"]);
    // (FULL turned promisc on; a CHECK without promisc: true insists it is off, as the reference's does.)
    expect(count({ mtu: 1450, promisc: true }, "CHECK")).toEqual(["nsenter", "ip"]);
    expect(count({ sysctl: { "net.core.somaxconn": "600" } })).toEqual(["nsenter", "sh"]);
    expect(count({})).toEqual([]);
    expect(count({}, "DEL")).toEqual(["nsenter", "ip"]);
    expect(count({}, "DEL")).toEqual([]);
  });
});

describe("tuning refuses hostile input with the right code and changes nothing", () => {
  let t: TuningLab;
  let pod: Ns;
  let prev: Record<string, any>;
  let cid: string;
  beforeAll(() => {
    t = new TuningLab("tunbad");
    ({ pod, prev, cid } = t.podWithBridge());
  });

  const cases: Array<[string, Conf, number, { ifname?: string; args?: string }?]> = [
    ["sysctl key outside net.", { sysctl: { "kernel.panic": "1" } }, 7],
    ["sysctl key with ..", { sysctl: { "net/../kernel/panic": "1" } }, 7],
    ["sysctl key with .. in the dot form", { sysctl: { "net.ipv4..conf.all.forwarding": "1" } }, 7],
    [
      "sysctl key escaping through IFNAME parts",
      { sysctl: { "net/ipv4/conf/IFNAME/../../../../kernel/panic": "1" } },
      7,
    ],
    ["sysctl key with a slash-led absolute path", { sysctl: { "/proc/sys/kernel/panic": "1" } }, 7],
    ["sysctl key with a control character", { sysctl: { "net.core.somaxconn\n": "1" } }, 7],
    ["sysctl key with shell syntax", { sysctl: { "net.core.$(touch /tmp/x)": "1" } }, 7],
    ["sysctl value of the wrong type", { sysctl: { "net.core.somaxconn": 5 }, mtu: 1400 }, 7],
    ["sysctl value with a newline", { sysctl: { "net.core.somaxconn": "5\n6" } }, 7],
    ["sysctl map of the wrong type", { sysctl: ["net.core.somaxconn=5"] }, 7],
    [
      "a sysctl the pod does not have",
      { sysctl: { "net.core.somaxconn": "5", "net.ipv4.conf.IFNAME.no_such_thing": "1" }, mac: NEW_MAC },
      7,
    ],
    ["mtu of the wrong type", { mtu: "1400" }, 7],
    ["mtu out of range", { mtu: 70000, sysctl: { "net.core.somaxconn": "5" } }, 7],
    ["mtu negative", { mtu: -1 }, 7],
    ["txQLen negative", { txQLen: -1 }, 7],
    ["txQLen too large", { txQLen: 2 ** 32 }, 7],
    ["promisc of the wrong type", { promisc: "yes" }, 7],
    ["allmulti of the wrong type", { allmulti: 1 }, 7],
    ["mac of the wrong type", { mac: 1 }, 7],
    ["mac malformed", { mac: "c2:11:22:33:44", sysctl: { "net.core.somaxconn": "5" } }, 7],
    ["mac multicast", { mac: "01:00:5e:00:00:01" }, 7],
    ["args.cni of the wrong type", { args: { cni: "mtu=1" } }, 7],
    ["dataDir relative", { dataDir: "tuning", mtu: 1400 }, 7],
    ["CNI_ARGS MAC malformed", { mtu: 1400 }, 4, { args: "MAC=nope" }],
    ["an unknown CNI_ARGS key", { mtu: 1400 }, 4, { args: "FOO=1" }],
    // Refused by the kernel after earlier changes: they are undone.
    [
      "a value the kernel refuses, after a sysctl was written",
      { sysctl: { "net.core.somaxconn": "5", "net.ipv4.conf.IFNAME.forwarding": "abc" }, mac: NEW_MAC },
      100,
    ],
    [
      "an interface that does not exist, after the sysctls were written",
      { sysctl: { "net.core.somaxconn": "5", "net.ipv4.ip_forward": "1" }, mtu: 1400 },
      100,
      { ifname: "eth9" },
    ],
  ];

  it.each(cases)("%s", (_name, o, code, opts) => {
    const before = podState(pod);
    const r = t.call("ADD", t.conf(o, prev), pod, cid, opts);
    expect([r.status, r.out?.code], r.stdout).toEqual([1, code]);
    expect(podState(pod)).toEqual(before);
    expect(t.backups()).toEqual([]);
  });

  it("a node without cat: a clear error (999) before anything is written", () => {
    const dir = sb.tmpdir("nocat");
    for (const tool of ["ip", "nsenter", "sh"]) {
      const real = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map((d) => join(d, tool)).find((f) => existsSync(f))!;
      symlinkSync(real, join(dir, tool));
    }
    const before = podState(pod);
    const r = t.call("ADD", t.conf({ sysctl: { "net.core.somaxconn": "5" }, mtu: 1400 }, prev), pod, cid, {
      path: dir,
    });
    expect([r.status, r.out?.code], r.stdout).toEqual([1, 999]);
    expect(r.out?.msg).toMatch(/needs cat/);
    expect(podState(pod)).toEqual(before);
    expect(t.backups()).toEqual([]);
  });

  it("an MTU the device refuses after the MAC and a sysctl changed: all undone (the kernel applies a MAC first)", () => {
    // A macvlan's MTU may not exceed its lower device's (1500 here): the kernel refuses 1600 with EINVAL after it
    // has already taken the new MAC from the same request.
    nsRun(pod.name, "ip", ["link", "add", "link", "eth0", "name", "mv0", "type", "macvlan"]);
    try {
      const before = { ...podState(pod), mv0: attrs(pod, "mv0") };
      const r = t.call(
        "ADD",
        t.conf({ sysctl: { "net.core.somaxconn": "5" }, mac: NEW_MAC, mtu: 1600, allmulti: true }, prev),
        pod,
        cid,
        { ifname: "mv0" },
      );
      expect([r.status, r.out?.code], r.stdout).toEqual([1, 100]);
      expect(r.out?.msg).toMatch(/mtu/i);
      expect({ ...podState(pod), mv0: attrs(pod, "mv0") }).toEqual(before);
      expect(t.backups()).toEqual([]);
    } finally {
      nsRun(pod.name, "ip", ["link", "del", "mv0"]);
    }
  });
});

const HAVE_REFERENCE = existsSync(join(REFERENCE_BIN, "tuning"));

describe.skipIf(!HAVE_REFERENCE)("tuning: cni-ts vs the reference 1.1.1, side by side", () => {
  // The reference 1.1.1 has no txQLen (newer references do): it is left out of the shared config.
  const SHARED: Conf = { ...FULL, txQLen: undefined };
  let ours: TuningLab;
  let ref: TuningLab;
  beforeAll(() => {
    ours = new TuningLab("tdo");
    ref = new TuningLab("tdr", REFERENCE_BIN);
  });

  function run(t: TuningLab) {
    const { pod, prev, cid } = t.podWithBridge();
    const before = attrs(pod);
    const add = t.call("ADD", t.conf(SHARED, prev), pod, cid);
    const after = {
      attrs: attrs(pod),
      sysctls: WATCHED_SYSCTLS.map((k) => sysctl(pod.name, k)),
      backup: JSON.parse(readFileSync(join(t.tuningDir, `${cid}_eth0.json`), "utf8")),
    };
    const del = t.call("DEL", t.conf(SHARED, prev), pod, cid);
    return { before, add, after, del, restored: attrs(pod), backups: t.backups(), pod, prev, cid };
  }

  it("ADD leaves the same kernel state and result, writes the same backup; DEL restores the same", () => {
    const o = run(ours);
    const r = run(ref);
    expect([o.add.status, r.add.status]).toEqual([0, 0]);
    const eth0 = (x: CniCall) =>
      (x.out!.interfaces as Array<Record<string, unknown>>).find((i) => i.name === "eth0")!.mac;
    expect(eth0(o.add)).toBe(eth0(r.add));
    expect(o.after.attrs).toEqual({ ...r.after.attrs, txqlen: o.after.attrs.txqlen });
    expect(o.after.sysctls).toEqual(r.after.sysctls);
    // Same keys, each the value before the ADD.
    expect(Object.keys(o.after.backup)).toEqual(Object.keys(r.after.backup));
    expect(o.after.backup).toEqual({ mac: o.before.mac, promisc: false, mtu: o.before.mtu, allmulti: false });
    expect(r.after.backup).toEqual({ mac: r.before.mac, promisc: false, mtu: r.before.mtu, allmulti: false });
    expect([o.del.status, r.del.status]).toEqual([0, 0]);
    expect(o.restored).toEqual(o.before);
    expect(r.restored).toEqual(r.before);
    expect([o.backups, r.backups]).toEqual([[], []]);
  });

  it("a backup written by either is restored by the other (a node can switch implementations with pods running)", () => {
    for (const [adder, deleter] of [
      [ref, ours],
      [ours, ref],
    ] as const) {
      const { pod, prev, cid } = adder.podWithBridge();
      const before = attrs(pod);
      // Both labs must use one dataDir for the hand-over: the adder's.
      const conf = adder.conf(SHARED, prev);
      expect(adder.call("ADD", conf, pod, cid).status).toBe(0);
      expect(attrs(pod).mac).toBe(NEW_MAC);
      const del = new TuningLab("tdx", deleter.tuningBin).call("DEL", conf, pod, cid);
      expect(del.status, del.stdout).toBe(0);
      expect(attrs(pod)).toEqual(before);
      expect(adder.backups()).toEqual([]);
    }
  });

  it("differs on purpose: CHECK with an IFNAME sysctl passes here (1.1.1 forgets to replace IFNAME in CHECK); hostile keys are code 7, not 999", () => {
    const conf = (t: TuningLab, prev: unknown) => t.conf({ sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "2" } }, prev);
    const o = ours.podWithBridge();
    const r = ref.podWithBridge();
    expect(ours.call("ADD", conf(ours, o.prev), o.pod, o.cid).status).toBe(0);
    expect(ref.call("ADD", conf(ref, r.prev), r.pod, r.cid).status).toBe(0);
    expect(ours.call("CHECK", conf(ours, o.prev), o.pod, o.cid).status).toBe(0);
    expect(ref.call("CHECK", conf(ref, r.prev), r.pod, r.cid).out).toMatchObject({
      code: 999,
      msg: expect.stringMatching(/IFNAME/),
    });
    const bad = { sysctl: { "net/../kernel/panic": "1" } };
    expect(ours.call("ADD", ours.conf(bad, o.prev), o.pod, o.cid).out).toMatchObject({ code: 7 });
    // The reference turns every dot into a slash first, so `..` becomes empty parts that filepath.Join drops: it tries
    // /proc/sys/net/kernel/panic, which happens not to exist. Ours refuses the key before anything runs.
    expect(ref.call("ADD", ref.conf(bad, r.prev), r.pod, r.cid).out).toMatchObject({
      code: 999,
      msg: expect.stringMatching(/net\/kernel\/panic: no such file/),
    });
    expect(ref.call("ADD", ref.conf({ sysctl: { "kernel.panic": "1" } }, r.prev), r.pod, r.cid).out).toMatchObject({
      code: 999,
      msg: expect.stringMatching(/invalid net sysctl key/),
    });
  });
});
