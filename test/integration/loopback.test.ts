// The built `loopback` executable, run inside a node namespace of the run (never the machine's own), against pod
// namespaces beside it; and the same calls through the reference /usr/lib/cni/loopback (Debian 1.1.1) side by
// side, every difference asserted and listed in docs/loopback.md.
import { runInNode } from "../../sandbox/plugin.js";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binDir, labPath, linkOf, nsRun, REFERENCE_BIN, type Ns } from "./bridge-lab.js";
import { requireBuilt, ROOT, Sandbox } from "./helpers.js";

const sb = new Sandbox();
let bin = "";
let node: Ns;
beforeAll(() => {
  requireBuilt();
  bin = binDir(sb, "lo-bin");
  node = sb.netns("lonode");
});
afterAll(() => sb.cleanup());

const HAVE_REFERENCE = existsSync(join(REFERENCE_BIN, "loopback"));
const VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const OLD = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

interface Call {
  status: number | null;
  out: Record<string, any> | undefined;
  stdout: string;
  stderr: string;
}

/** Run a loopback executable (ours unless `exe`) in the node namespace with a clean environment. */
function lo(
  cmd: string,
  netns: string,
  conf: Record<string, unknown>,
  o: { exe?: string; ifname?: string } = {},
): Call {
  const env = {
    PATH: labPath(sb),
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: "lo-ctr",
    CNI_NETNS: netns,
    CNI_IFNAME: o.ifname ?? "lo",
    CNI_PATH: bin,
  };
  return runInNode(node.name, o.exe ?? join(bin, "loopback"), env, JSON.stringify(conf));
}

const conf = (cniVersion: string, extra: Record<string, unknown> = {}) => ({
  cniVersion,
  name: "lonet",
  type: "loopback",
  ...extra,
});
const pod = (label: string): Ns => {
  const p = sb.netns(label);
  nsRun(p.name, "ip", ["link", "set", "lo", "down"]);
  return p;
};
const isUp = (p: Ns) => linkOf(p.name, "lo")!.flags.includes("UP");

describe("loopback (cni-ts)", () => {
  it("ADD brings lo up and answers interface lo with the sandbox and both loopback addresses (1.0.0)", () => {
    const p = pod("add");
    expect(isUp(p)).toBe(false);
    const r = lo("ADD", p.path, conf("1.0.0"));
    expect(r.status).toBe(0);
    expect(isUp(p)).toBe(true);
    expect(r.out).toEqual({
      cniVersion: "1.0.0",
      interfaces: [{ mac: "00:00:00:00:00:00", name: "lo", sandbox: p.path }],
      ips: [
        { address: "127.0.0.1/8", interface: 0 },
        { address: "::1/128", interface: 0 },
      ],
    });
  });

  it("answers at every version; CNI_IFNAME is ignored (lo is always the interface)", () => {
    for (const v of VERSIONS) {
      const p = pod(`v${v.replace(/\./g, "")}`);
      const r = lo("ADD", p.path, conf(v), { ifname: "eth0" });
      expect([r.status, r.out?.cniVersion], v).toEqual([0, v]);
      expect(isUp(p)).toBe(true);
      if (v === "0.1.0" || v === "0.2.0")
        expect(r.out).toEqual({ cniVersion: v, ip4: { ip: "127.0.0.1/8" }, ip6: { ip: "::1/128" }, dns: {} });
      else expect(r.out!.interfaces).toEqual([{ name: "lo", mac: "00:00:00:00:00:00", sandbox: p.path }]);
    }
  });

  it("reports only 127.0.0.1/8 when IPv6 is off in the pod", () => {
    const p = pod("nov6");
    nsRun(p.name, "sh", ["-c", "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6"]);
    const r = lo("ADD", p.path, conf("1.0.0"));
    expect(r.out!.ips).toEqual([{ address: "127.0.0.1/8", interface: 0 }]);
  });

  it("passes a prevResult through unchanged when chained", () => {
    const p = pod("chained");
    const prev = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: p.path }],
      ips: [{ address: "10.9.0.5/24", interface: 0 }],
    };
    const r = lo("ADD", p.path, conf("1.0.0", { prevResult: prev }));
    expect(r.out).toEqual(prev);
    expect(isUp(p)).toBe(true);
  });

  it("CHECK: success with no output while lo is up; code 103 once it is down", () => {
    const p = pod("check");
    expect(lo("ADD", p.path, conf("1.0.0")).status).toBe(0);
    expect(lo("CHECK", p.path, conf("1.0.0"))).toMatchObject({ status: 0, stdout: "" });
    nsRun(p.name, "ip", ["link", "set", "lo", "down"]);
    expect(lo("CHECK", p.path, conf("1.0.0")).out).toMatchObject({ code: 103, msg: "loopback interface is down" });
    expect(lo("CHECK", "/var/run/netns/does-not-exist-lo", conf("1.0.0")).out?.code).toBe(3);
  });

  it("DEL sets lo down, repeats, and succeeds with the namespace gone, empty CNI_NETNS, or an unmounted namespace file", () => {
    const p = pod("del");
    lo("ADD", p.path, conf("1.0.0"));
    expect(lo("DEL", p.path, conf("1.0.0"))).toMatchObject({ status: 0, stdout: "" });
    expect(isUp(p)).toBe(false);
    expect(lo("DEL", p.path, conf("1.0.0")).status).toBe(0);
    expect(lo("DEL", "", conf("1.0.0")).status).toBe(0);
    const placeholder = join(sb.tmpdir("lo-unmounted"), "netns");
    writeFileSync(placeholder, "");
    expect(lo("DEL", placeholder, conf("1.0.0")).status).toBe(0);
    const gone = sb.netns("delgone");
    spawnSync("ip", ["netns", "del", gone.name]);
    expect(lo("DEL", gone.path, conf("1.0.0")).status).toBe(0);
  });

  it("refuses the plugin's own namespace (code 8) and leaves the node's lo up", () => {
    for (const cmd of ["ADD", "DEL"]) expect(lo(cmd, "/proc/self/ns/net", conf("1.0.0")).out?.code, cmd).toBe(8);
    expect(isUp(node)).toBe(true);
    expect(lo("ADD", "/var/run/netns/does-not-exist-lo", conf("1.0.0")).out?.code).toBe(3);
  });

  it("VERSION at every version; GC and STATUS succeed", () => {
    for (const v of VERSIONS) {
      const r = lo("VERSION", "", conf(v));
      expect(JSON.parse(r.stdout)).toEqual({ cniVersion: v, supportedVersions: VERSIONS });
    }
    for (const cmd of ["GC", "STATUS"])
      expect(lo(cmd, "", conf("1.1.0", { "cni.dev/valid-attachments": [] })), cmd).toMatchObject({
        status: 0,
        stdout: "",
      });
  });
});

/** The differences asserted below, as the rows of docs/loopback.md name them (each marked [diff] there). */
const INTENDED_DIFFERENCES = [
  "Result at 0.1.0 and 0.2.0",
  "`version` in ips at 0.3.x/0.4.0",
  "`dns` in the result",
  "Non-loopback addresses on lo",
  "DEL on an unmounted namespace file",
  "Error codes",
  "Version 1.1.0, GC, STATUS",
];

describe.skipIf(!HAVE_REFERENCE)("loopback: cni-ts vs the reference 1.1.1, same calls side by side", () => {
  const ref = join(REFERENCE_BIN, "loopback");
  const strip = (o: Record<string, any> | undefined, p: Ns) =>
    JSON.parse(JSON.stringify(o).replaceAll(p.path, "SANDBOX")) as Record<string, any>;

  it("docs/loopback.md has a [diff] row for every difference asserted here", () => {
    const rows = readFileSync(join(ROOT, "docs/loopback.md"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("| ") && l.includes("**[diff]**"));
    for (const d of INTENDED_DIFFERENCES)
      expect(
        rows.some((r) => r.startsWith(`| ${d}`)),
        d,
      ).toBe(true);
    expect(rows).toHaveLength(INTENDED_DIFFERENCES.length);
  });

  it("ADD: same lo state, same interface and addresses; layout differences only below 1.0.0 and in dns", () => {
    for (const v of OLD) {
      const [pr, po] = [pod(`dr${v.replace(/\./g, "")}`), pod(`do${v.replace(/\./g, "")}`)];
      const r = strip(lo("ADD", pr.path, conf(v), { exe: ref }).out, pr);
      const o = strip(lo("ADD", po.path, conf(v)).out, po);
      expect([isUp(pr), isUp(po)], v).toEqual([true, true]);
      // The reference labels a 1.0.0-layout result with the config's version, whatever that is.
      expect(r, v).toEqual({
        cniVersion: v,
        interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: "SANDBOX" }],
        ips: [
          { interface: 0, address: "127.0.0.1/8" },
          { interface: 0, address: "::1/128" },
        ],
        dns: {},
      });
      if (v === "1.0.0") expect(o).toEqual({ ...r, dns: undefined });
      else if (v.startsWith("0.3") || v === "0.4.0")
        expect(o).toEqual({
          ...r,
          ips: r.ips.map((ip: { address: string }) => ({ ...ip, version: ip.address.includes(":") ? "6" : "4" })),
        });
      else expect(o).toEqual({ cniVersion: v, ip4: { ip: "127.0.0.1/8" }, ip6: { ip: "::1/128" }, dns: {} });
    }
  });

  it("chained: both pass the prevResult through", () => {
    for (const [v, prev] of [
      ["0.4.0", { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.2/24" }], dns: {} }],
      ["0.2.0", { cniVersion: "0.2.0", ip4: { ip: "10.1.0.2/24" }, dns: {} }],
    ] as const) {
      const p = pod(`dprev${v.replace(/\./g, "")}`);
      expect(lo("ADD", p.path, conf(v, { prevResult: prev }), { exe: ref }).out).toEqual(prev);
      expect(lo("ADD", p.path, conf(v, { prevResult: prev })).out).toEqual(prev);
    }
  });

  it("CHECK and DEL: same outcome and message; codes 999 vs 103; an unmounted namespace file fails only the reference's DEL", () => {
    const p = pod("dcheck");
    lo("ADD", p.path, conf("1.0.0"));
    for (const exe of [ref, undefined]) expect(lo("CHECK", p.path, conf("1.0.0"), { exe }).status).toBe(0);
    nsRun(p.name, "ip", ["link", "set", "lo", "down"]);
    expect(lo("CHECK", p.path, conf("1.0.0"), { exe: ref }).out).toMatchObject({
      code: 999,
      msg: "loopback interface is down",
    });
    expect(lo("CHECK", p.path, conf("1.0.0")).out).toMatchObject({ code: 103, msg: "loopback interface is down" });
    nsRun(p.name, "ip", ["link", "set", "lo", "up"]);
    for (const exe of [ref, undefined]) {
      expect(lo("DEL", p.path, conf("1.0.0"), { exe }).status).toBe(0);
      expect(isUp(p)).toBe(false);
      nsRun(p.name, "ip", ["link", "set", "lo", "up"]);
      expect(lo("DEL", "", conf("1.0.0"), { exe }).status).toBe(0);
    }
    const placeholder = join(sb.tmpdir("lo-unmounted-diff"), "netns");
    writeFileSync(placeholder, "");
    expect(lo("DEL", placeholder, conf("1.0.0"), { exe: ref }).out?.code).toBe(999);
    expect(lo("DEL", placeholder, conf("1.0.0")).status).toBe(0);
  });

  it("a non-loopback address on lo: the reference fails ADD, cni-ts reports the loopback addresses only", () => {
    const [pr, po] = [pod("dextra-r"), pod("dextra-o")];
    for (const p of [pr, po]) nsRun(p.name, "ip", ["addr", "add", "10.9.9.9/32", "dev", "lo"]);
    expect(lo("ADD", pr.path, conf("1.0.0"), { exe: ref }).out).toMatchObject({
      code: 999,
      msg: 'loopback interface found with non-loopback address "10.9.9.9"',
    });
    const o = lo("ADD", po.path, conf("1.0.0"));
    expect(o.out!.ips).toEqual([
      { address: "127.0.0.1/8", interface: 0 },
      { address: "::1/128", interface: 0 },
    ]);
  });

  it("1.1.0: the reference refuses the version (and so GC and STATUS); cni-ts serves it", () => {
    const p = pod("d110");
    expect(lo("ADD", p.path, conf("1.1.0"), { exe: ref }).out?.code).toBe(1);
    expect(lo("ADD", p.path, conf("1.1.0")).status).toBe(0);
    expect(lo("GC", "", conf("1.1.0"), { exe: ref }).status).not.toBe(0);
    expect(lo("GC", "", conf("1.1.0")).status).toBe(0);
  });
});
