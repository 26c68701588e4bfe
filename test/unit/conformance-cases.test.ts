// The conformance cases and known-differences.json, without root: every case parses against the schema, its
// configs load the way the runtime loads them, the case set covers every verb at every version it exists in, and
// every known-differences entry points at a real case step. Plus the harness's pure matching.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listCases, loadCase, type LoadedCase } from "../../conformance/harness/engine.js";
import { caseTypes, implFromAbout, unmet, type PluginSet } from "../../conformance/harness/features.js";
import { intendedDifference, knownFailure, loadKnown } from "../../conformance/harness/known.js";
import { addressMatches, matchResult, matchRoutes } from "../../conformance/harness/match.js";
import { expectFor, stepLabel, topologyOf, validateCase } from "../../conformance/harness/schema.js";
import { loadConfDir, loadConfFile } from "../../conformance/runner/index.js";
import { ROOT } from "../integration/helpers.js";

const CASES = join(ROOT, "conformance/cases");
const names = listCases(CASES);
const cases: LoadedCase[] = names.map((n) => loadCase(join(CASES, n)));
const ALL = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/** The list version each step runs at (its network file, or the node's default network). */
function stepVersion(c: LoadedCase, network: string | undefined, node?: string): string | undefined {
  const n = topologyOf(c.def).nodes.find((x) => x.name === node) ?? topologyOf(c.def).nodes[0]!;
  const dir = join(c.dir, n.confDir ?? "net.d");
  try {
    const list = network ? loadConfFile(join(dir, network)) : loadConfDir(dir);
    return list.cniVersion || "0.1.0";
  } catch {
    return undefined;
  }
}

describe("conformance cases", () => {
  it("there are cases", () => {
    expect(names.length).toBeGreaterThanOrEqual(20);
  });

  it.each(names)("%s parses against the schema", (name) => {
    const c = cases.find((x) => x.name === name)!;
    expect(validateCase(c.def)).toEqual([]);
    expect(c.def.description.length).toBeGreaterThan(20);
  });

  it.each(names)(
    "%s: every config file is JSON (unless it is a bad-config file) and the default network loads",
    (name) => {
      const c = cases.find((x) => x.name === name)!;
      for (const n of topologyOf(c.def).nodes) {
        const dir = join(c.dir, n.confDir ?? "net.d");
        for (const f of readdirSync(dir)) {
          const text = readFileSync(join(dir, f), "utf8");
          if (f.includes("not-json")) expect(() => JSON.parse(text)).toThrow();
          else expect(() => JSON.parse(text), f).not.toThrow();
        }
        expect(() => loadConfDir(dir)).not.toThrow();
      }
    },
  );

  it.each(names)("%s: a 1.1.0 network declares spec:1.1.0, GC/STATUS steps declare their verb", (name) => {
    const c = cases.find((x) => x.name === name)!;
    const req = new Set([...(c.def.requires ?? [])]);
    for (const s of c.def.steps) {
      const v = stepVersion(c, s.network, s.node);
      const reqs = new Set([...req, ...(s.requires ?? [])]);
      if (v === "1.1.0" && s.verb !== "VERSION") expect(reqs.has("spec:1.1.0"), `${name} step ${s.verb}`).toBe(true);
      if ((s.verb === "GC" || s.verb === "STATUS") && s.via !== "plugin")
        expect(reqs.has(`verb:${s.verb}`) || v !== "1.1.0", `${name} ${s.verb}`).toBe(true);
    }
  });

  it("covers every verb at every version it exists in", () => {
    const seen = new Set<string>();
    for (const c of cases) {
      for (const s of c.def.steps) {
        if (s.verb === "VERSION") {
          seen.add(`VERSION ${s.cniVersion ?? "1.1.0"}`);
          continue;
        }
        const v = s.via === "plugin" && s.cniVersion ? s.cniVersion : stepVersion(c, s.network, s.node);
        if (v) seen.add(`${s.verb} ${v}`);
      }
    }
    const need = [
      ...ALL.map((v) => `VERSION ${v}`),
      ...ALL.flatMap((v) => [`ADD ${v}`, `DEL ${v}`]),
      ...["0.4.0", "1.0.0", "1.1.0"].map((v) => `CHECK ${v}`),
      "GC 1.1.0",
      "STATUS 1.1.0",
    ];
    expect(need.filter((x) => !seen.has(x))).toEqual([]);
  });

  it("covers the typical configs and scenarios of the issue", () => {
    for (const n of [
      "kubenet-style",
      "kube-router-style",
      "flannel-style",
      "kthw-10-bridge",
      "dual-stack",
      "l2-mode",
      "chain-routes",
      "del-netns-gone",
      "gc",
      "exhaustion",
      "status",
      "bad-configs",
      "version",
    ]) {
      expect(names).toContain(n);
    }
    const kthw = readdirSync(join(CASES, "kthw-10-bridge/net.d"));
    expect(kthw).toContain("10-bridge.conf");
  });

  it("the routes chain declares plugin:routes (skipped with the reason where routes is missing or not implemented)", () => {
    const c = cases.find((x) => x.name === "chain-routes")!;
    expect(c.def.requires).toContain("plugin:routes");
    expect(caseTypes([join(c.dir, "net.d")]).sort()).toEqual(["bridge", "host-local", "routes"]);
  });
});

describe("known-differences.json", () => {
  const known = loadKnown(join(ROOT, "conformance/known-differences.json"));

  it("every failure entry names an existing case step and has a reason", () => {
    for (const f of known.failures) {
      const c = cases.find((x) => x.name === f.case);
      expect(c, f.case).toBeDefined();
      const labels = c!.def.steps.map((s, i) => stepLabel(s, i));
      expect(labels, `${f.case} ${f.step}`).toContain(f.step);
      expect(f.reason.length).toBeGreaterThan(10);
    }
  });

  it("every intended difference names an existing case (or *)", () => {
    for (const d of known.intended) {
      if (d.case !== "*") expect(names, d.case).toContain(d.case);
      expect(d.reason.length).toBeGreaterThan(10);
    }
  });

  it("matching: by implementation, case, step and the failure text", () => {
    expect(
      knownFailure(
        known,
        "reference",
        "l2-mode",
        "check-l2",
        "expected success, got error code 999: no plugin name provided",
      ),
    ).toBeDefined();
    expect(knownFailure(known, "reference", "l2-mode", "check-l2", "some other failure")).toBeUndefined();
    expect(knownFailure(known, "cni-ts", "l2-mode", "check-l2", "no plugin name provided")).toBeUndefined();
    expect(intendedDifference(known, "exhaustion", "add-exhausted", "error.code", "101", "999")).toBeDefined();
    expect(intendedDifference(known, "exhaustion", "add-exhausted", "error.code", "101", "7")).toBeUndefined();
  });
});

describe("schema validation rejects broken cases", () => {
  const ok = { description: "a valid minimal case", topology: { pods: ["a"] }, steps: [{ verb: "ADD", pod: "a" }] };
  it("accepts a minimal case", () => expect(validateCase(ok)).toEqual([]));
  it("accepts connect checks", () => {
    const connect = [
      { listen: "a", port: 80, from: "outside", to: "node:8080", proto: "tcp" },
      { listen: "a", port: 80, from: "node", to: "127.0.0.1:8080", proto: "udp", ok: false },
      { listen: "a", port: 80, from: "a", to: "node:8080", proto: "tcp", family: 6 },
      { listen: "a", port: 80, from: "outside", to: "[2001:db8:100::a]:8080", proto: "udp" },
    ];
    expect(
      validateCase({
        ...ok,
        requires: ["tool:python3", "plugin:portmap"],
        steps: [{ verb: "ASSERT", expect: { connect } }],
      }),
    ).toEqual([]);
  });
  it.each([
    ["unknown key", { ...ok, extra: 1 }, "case.extra: unknown key"],
    ["unknown verb", { ...ok, steps: [{ verb: "FOO" }] }, "verb"],
    ["undeclared pod", { ...ok, steps: [{ verb: "ADD", pod: "zz" }] }, "unknown pod zz"],
    ["ADD without pod", { ...ok, steps: [{ verb: "ADD" }] }, "ADD needs a pod"],
    ["bad requirement", { ...ok, requires: ["spec:2.0.0"] }, "unknown requirement"],
    [
      "bad address pattern",
      { ...ok, steps: [{ verb: "ADD", pod: "a", expect: { result: { ips: [{ address: "10.0.0.1" }] } } }] },
      "address",
    ],
    ["bad regex", { ...ok, steps: [{ verb: "ADD", pod: "a", expect: { ok: false, msg: "(" } }] }, "bad regex"],
    [
      "ping from unknown pod",
      { ...ok, steps: [{ verb: "ASSERT", expect: { ping: [{ from: "x", to: "a" }] } }] },
      "unknown pod x",
    ],
    [
      "connect from unknown pod",
      {
        ...ok,
        steps: [
          {
            verb: "ASSERT",
            expect: { connect: [{ listen: "a", port: 80, from: "x", to: "node:8080", proto: "tcp" }] },
          },
        ],
      },
      '"outside" or "node": x',
    ],
    [
      "connect listener unknown",
      {
        ...ok,
        steps: [
          {
            verb: "ASSERT",
            expect: { connect: [{ listen: "x", port: 80, from: "outside", to: "node:8080", proto: "tcp" }] },
          },
        ],
      },
      "unknown pod x",
    ],
    [
      "connect bad target",
      {
        ...ok,
        steps: [
          { verb: "ASSERT", expect: { connect: [{ listen: "a", port: 80, from: "node", to: "node", proto: "tcp" }] } },
        ],
      },
      "node:PORT",
    ],
    [
      "connect bad port",
      {
        ...ok,
        steps: [
          {
            verb: "ASSERT",
            expect: { connect: [{ listen: "a", port: 0, from: "node", to: "127.0.0.1:99999", proto: "sctp" }] },
          },
        ],
      },
      "must be a port",
    ],
    [
      "connect bad proto",
      {
        ...ok,
        steps: [
          {
            verb: "ASSERT",
            expect: { connect: [{ listen: "a", port: 80, from: "node", to: "[::1]:8080", proto: "sctp" }] },
          },
        ],
      },
      'must be "tcp" or "udp"',
    ],
    [
      "connect unknown key",
      {
        ...ok,
        steps: [
          {
            verb: "ASSERT",
            expect: {
              connect: [{ listen: "a", port: 80, from: "node", to: "[::1]:8080", proto: "tcp", expect: true }],
            },
          },
        ],
      },
      "connect[0].expect: unknown key",
    ],
    ["bad tool", { ...ok, requires: ["tool:python2"] }, "unknown requirement"],
    ["valid outside GC", { ...ok, steps: [{ verb: "ADD", pod: "a", valid: ["a"] }] }, "only for GC"],
    ["VERSION without plugin", { ...ok, steps: [{ verb: "VERSION" }] }, "VERSION needs a plugin"],
    [
      "unknown key in byImpl",
      { ...ok, steps: [{ verb: "ADD", pod: "a", expect: { byImpl: { reference: { codes: 1 } } } }] },
      "unknown key",
    ],
  ])("%s", (_, raw, text) => {
    const errs = validateCase(raw);
    expect(errs.join("\n")).toContain(text);
  });
  it("network must name a file of the case", () => {
    expect(
      validateCase(
        { ...ok, steps: [{ verb: "ADD", pod: "a", network: "x.conflist" }] },
        { node: ["10-a.conflist"] },
      ).join(),
    ).toContain("no file x.conflist");
  });
});

describe("per-implementation expectations and requirements", () => {
  it("byImpl replaces top-level keys for that implementation only", () => {
    const e = { ok: false, code: 7, msg: "x", byImpl: { reference: { ok: false, code: 999 } } };
    expect(expectFor(e, "cni-ts")).toEqual({ ok: false, code: 7, msg: "x" });
    expect(expectFor(e, "reference")).toEqual({ ok: false, code: 999, msg: "x" });
  });
  const set = (versions: Record<string, string[]>, impl = "reference"): PluginSet => ({
    dir: "/p",
    impl,
    about: "",
    versions,
  });
  const machine = { nft: true, iptables: true, python3: true, ipv6: true };
  const ref = set({ bridge: ALL.slice(0, 6), "host-local": ALL.slice(0, 6) });
  it("a 1.1.0 case is skipped against a 1.0.0 plugin set, with the reason", () => {
    expect(unmet(["spec:1.1.0"], ["bridge", "host-local"], ref, machine)).toMatch(
      /needs spec:1.1.0: bridge speaks 0.1.0…1.0.0/,
    );
    expect(unmet(["verb:GC"], ["bridge"], ref, machine)).toMatch(/GC exists from spec 1.1.0/);
    expect(unmet(["spec:1.0.0"], ["bridge", "host-local"], ref, machine)).toBeUndefined();
  });
  it("plugin:X needs the plugin in the directory; tools and IPv6 come from the machine", () => {
    expect(unmet(["plugin:routes"], ["routes"], ref, machine)).toMatch(/no working routes/);
    expect(unmet(["tool:nft"], [], ref, { ...machine, nft: false })).toMatch(/nft is not installed/);
    expect(unmet(["ipv6"], [], ref, { ...machine, ipv6: false })).toMatch(/IPv6/);
    expect(unmet(["tool:python3"], [], ref, { ...machine, python3: false })).toMatch(
      /needs tool:python3: python3 is not installed/,
    );
    expect(unmet(["tool:python3", "plugin:portmap"], ["bridge", "portmap"], ref, machine)).toMatch(
      /no working portmap/,
    );
  });
  it("the implementation is read from the about text", () => {
    expect(implFromAbout("CNI bridge plugin version unknown\nCNI protocol versions supported: 0.1.0")).toBe(
      "reference",
    );
    expect(implFromAbout("CNI bridge plugin (cni-ts): a Linux bridge\ncni-ts version 0.1.0")).toBe("cni-ts");
    expect(implFromAbout("something else")).toBe("unknown");
  });
});

describe("matching", () => {
  it("address patterns", () => {
    expect(addressMatches("10.1.0.2/24", "10.1.0.2/24")).toBe(true);
    expect(addressMatches("in 10.1.0.0/24", "10.1.0.77/24")).toBe(true);
    expect(addressMatches("in 10.1.0.0/24", "10.1.1.7/24")).toBe(false);
    expect(addressMatches("in 10.1.0.0/24", "10.1.0.7/16")).toBe(false);
    expect(addressMatches("in fd00:28::/64", "fd00:28::0:5/64")).toBe(true);
    expect(addressMatches("fd00:28:0::1/64", "fd00:28::1/64")).toBe(true);
  });
  const result = {
    cniVersion: "1.0.0",
    interfaces: [
      { name: "cni0", mac: "aa" },
      { name: "veth1234", mac: "bb" },
      { name: "eth0", mac: "cc", sandbox: "/var/run/netns/p" },
    ],
    ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 2 }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  };
  it("a result that matches", () => {
    expect(
      matchResult(
        {
          cniVersion: "1.0.0",
          interfaces: ["^cni0$", "^veth", "^eth0$"],
          ips: [{ address: "in 10.1.0.0/24", gateway: "10.1.0.1", interface: 2, version: "none" }],
          routes: [{ dst: "0.0.0.0/0" }],
          sandbox: true,
        },
        result,
        "eth0",
        "/var/run/netns/p",
      ),
    ).toEqual([]);
  });
  it("a result that does not, with every difference named", () => {
    const errs = matchResult(
      {
        cniVersion: "1.1.0",
        interfaces: 2,
        ips: [{ address: "10.1.0.3/24", version: "4" }],
        routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.254" }],
        lacks: ["routes"],
        json: { dns: {} },
      },
      result,
      "eth0",
      "/x",
    );
    expect(errs.join("\n")).toMatch(/cniVersion/);
    expect(errs.join("\n")).toMatch(/interfaces: expected 2, got 3/);
    expect(errs.join("\n")).toMatch(/ips\[0\].address/);
    expect(errs.join("\n")).toMatch(/ips\[0\].version/);
    expect(errs.join("\n")).toMatch(/result.routes/);
    expect(errs.join("\n")).toMatch(/key routes present/);
    expect(errs.join("\n")).toMatch(/result.dns: missing/);
  });
  it("kernel routes, default of either family, absent routes", () => {
    const got = [
      { dst: "0.0.0.0/0", gw: "10.1.0.1", dev: "eth0", table: 254, family: 4 as const },
      { dst: "::/0", gw: "fd00::1", dev: "eth0", table: 254, family: 6 as const },
      { dst: "192.0.2.0/24", gw: "10.1.0.1", dev: "eth0", table: 254, family: 4 as const, mtu: 1400, metric: 100 },
    ];
    expect(
      matchRoutes(
        [
          { dst: "default", gw: "10.1.0.1" },
          { dst: "default", gw: "fd00::1" },
          { dst: "192.0.2.0/24", mtu: 1400, metric: 100 },
        ],
        [{ dst: "203.0.113.0/24" }],
        got,
        "pod",
      ),
    ).toEqual([]);
    expect(matchRoutes([{ dst: "192.0.2.0/24", mtu: 1500 }], [{ dst: "default" }], got, "pod")).toHaveLength(2);
  });
});
