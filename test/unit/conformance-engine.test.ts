// The conformance engine's pure pieces, without root or a kernel: naming and planning steps, the action's request
// and bookkeeping, the answer and link expectations, ping/connect targets, the differential snapshot's
// normalization, and the known-differences judgement of an outcome.
import { describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import {
  directCall,
  errorObservation,
  execArgs,
  notImplemented,
  recordAttachment,
  validAttachments,
} from "../../conformance/harness/action.js";
import { checkAnswer } from "../../conformance/harness/check-answer.js";
import {
  connectTarget,
  gonePods,
  linkMac,
  matchNsLinks,
  pingAddress,
  vethOf,
  type VethRefs,
} from "../../conformance/harness/check-kernel.js";
import type { Attachment, CaseEnv, NodeEnv, PodEnv } from "../../conformance/harness/context.js";
import type { KLink, KRoute } from "../../conformance/harness/kernel.js";
import type { KnownDifferences } from "../../conformance/harness/known.js";
import { judgeStep, notRunOutcomes, stepTitle, type StepRecord } from "../../conformance/harness/outcome.js";
import type { StepDef } from "../../conformance/harness/schema.js";
import { normalizeLinks, normalizeRoutes } from "../../conformance/harness/snapshot.js";
import { planStep } from "../../conformance/harness/step.js";
import { OUTSIDE4, OUTSIDE6 } from "../../conformance/harness/topology.js";
import { PluginError, type NetworkConfigList } from "../../conformance/runner/index.js";

type J = Record<string, unknown>;

function node(name: string, underlay = false): NodeEnv {
  return {
    def: { name },
    ns: `run-c0-n${name}`,
    path: `/var/run/netns/run-c0-n${name}`,
    confDir: `/t/${name}/net.d`,
    dataDir: `/t/${name}/data`,
    cacheDir: `/t/${name}/cache`,
    wrapper: [],
    runtime: undefined as never,
    ...(underlay ? { underlay4: "198.51.100.10", underlay6: "2001:db8:100::a" } : {}),
  };
}

function pod(name: string, n: NodeEnv): PodEnv {
  return {
    name,
    node: n,
    ns: `run-c0-p${name}`,
    path: `/var/run/netns/run-c0-p${name}`,
    containerID: `run-c0-${name}`,
    deleted: false,
  };
}

const RESULT_A: J = {
  cniVersion: "1.0.0",
  interfaces: [
    { name: "cni0", mac: "0a:00:00:00:00:01" },
    { name: "veth1234", mac: "0A:00:00:00:00:02" },
    { name: "eth0", mac: "0a:00:00:00:00:03", sandbox: "/var/run/netns/run-c0-pa" },
  ],
  ips: [
    { address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 2 },
    { address: "fd00::2/64", gateway: "fd00::1", interface: 2 },
  ],
};

/** Two nodes (n1 first), pods a and b on n1, c on n2; a has an eth0 attachment. */
function env(opts: { outside?: boolean } = {}): CaseEnv {
  const n1 = node("n1", true);
  const n2 = node("n2");
  const pods = new Map([
    ["a", pod("a", n1)],
    ["b", pod("b", n1)],
    ["c", pod("c", n2)],
  ]);
  const attachments = new Map<string, Attachment>([
    ["a/eth0", { pod: pods.get("a")!, ifname: "eth0", network: "net", result: RESULT_A, hostVeth: "veth1234" }],
  ]);
  return {
    tmp: "/t",
    created: [],
    nodes: new Map([
      ["n1", n1],
      ["n2", n2],
    ]),
    pods,
    attachments,
    ...(opts.outside ? { outsidePath: "/var/run/netns/run-c0-ext" } : {}),
  };
}

function list(plugins: J[], cniVersion = "1.0.0"): NetworkConfigList {
  return {
    name: "net",
    cniVersion,
    disableCheck: false,
    disableGC: false,
    loadOnlyInlinedPlugins: false,
    plugins,
    bytes: Buffer.from("{}"),
  };
}

function link(name: string, extra: Partial<KLink> = {}): KLink {
  return { name, kind: "veth", up: true, mtu: 1500, mac: "0a:00:00:00:00:02", promisc: false, addresses: [], ...extra };
}

describe("stepTitle", () => {
  it("names the verb and what it acts on", () => {
    expect(stepTitle({ verb: "ADD", pod: "a" })).toBe("ADD a");
    expect(stepTitle({ verb: "CHECK", pod: "a", ifname: "net1", network: "b.conflist", via: "plugin" })).toBe(
      "CHECK a net1 [b.conflist] (direct)",
    );
    expect(stepTitle({ verb: "DEL", pod: "a", ifname: "eth0" })).toBe("DEL a");
    expect(stepTitle({ verb: "VERSION", plugin: "bridge" })).toBe("VERSION bridge@1.1.0");
    expect(stepTitle({ verb: "VERSION", plugin: "bridge", cniVersion: "0.3.1" })).toBe("VERSION bridge@0.3.1");
    expect(stepTitle({ verb: "EXEC", pod: "a", ip: ["link", "set", "$veth", "down"] })).toBe(
      "EXEC a ip link set $veth down",
    );
    expect(stepTitle({ verb: "AGE", seconds: 90 })).toBe("AGE 90 s");
    expect(stepTitle({ verb: "GC" })).toBe("GC");
  });
});

describe("notRunOutcomes", () => {
  it("gives every step from `from` on the same status and reason, labelled by name or 1-based number", () => {
    const steps: StepDef[] = [
      { verb: "ADD", pod: "a", name: "add-a" },
      { verb: "CHECK", pod: "a" },
      { verb: "DEL", pod: "a", name: "del-a" },
    ];
    expect(notRunOutcomes("c", steps, 1, "SKIP", "needs x")).toEqual([
      { case: "c", step: "2", title: "CHECK a", status: "SKIP", reasons: ["needs x"], ms: 0 },
      { case: "c", step: "del-a", title: "DEL a", status: "SKIP", reasons: ["needs x"], ms: 0 },
    ]);
    expect(notRunOutcomes("c", steps, 0, "FAIL", "sandbox setup failed: x").map((o) => [o.step, o.status])).toEqual([
      ["add-a", "FAIL"],
      ["2", "FAIL"],
      ["del-a", "FAIL"],
    ]);
  });
});

describe("judgeStep", () => {
  const none: KnownDifferences = { failures: [], intended: [] };
  const rec = (reasons: string[]): StepRecord => ({ observation: { ok: true }, reasons, pings: [], connects: [] });

  it("passes without reasons and fails with them; knownBug only on a failure; empty pings/connects left out", () => {
    const pass = judgeStep("c", "1", "ADD a", rec([]), 5, "bug", none, "cni-ts");
    expect(pass).toEqual({
      case: "c",
      step: "1",
      title: "ADD a",
      status: "PASS",
      reasons: [],
      ms: 5,
      observation: { ok: true },
    });
    const fail = judgeStep(
      "c",
      "1",
      "ADD a",
      { ...rec(["x"]), pings: [{ from: "a", to: "b", address: "10.1.0.3", ok: false }] },
      5,
      "bug",
      none,
      "cni-ts",
    );
    expect(fail.status).toBe("FAIL");
    expect(fail.knownBug).toBe("bug");
    expect(fail.pings).toHaveLength(1);
    expect(fail).not.toHaveProperty("connects");
  });

  it("a documented failure of this implementation is XFAIL, only when its text matches", () => {
    const known: KnownDifferences = {
      failures: [{ impl: "reference", case: "c*", step: "2", match: "mtu", reason: "ref bug" }],
      intended: [],
    };
    const x = judgeStep(
      "case",
      "2",
      "CHECK a",
      rec(["pod a eth0: mtu 1460, expected 1500"]),
      1,
      undefined,
      known,
      "reference",
    );
    expect(x.status).toBe("XFAIL");
    expect(x.known?.reason).toBe("ref bug");
    expect(Object.keys(x)).toEqual(["case", "step", "title", "status", "reasons", "ms", "observation", "known"]);
    expect(judgeStep("case", "2", "CHECK a", rec(["other"]), 1, undefined, known, "reference").status).toBe("FAIL");
    expect(judgeStep("case", "2", "CHECK a", rec(["mtu"]), 1, undefined, known, "cni-ts").status).toBe("FAIL");
  });

  it("a listed failure that passed fails, so the list stays exact", () => {
    const known: KnownDifferences = {
      failures: [{ impl: "cni-ts", case: "c", step: "*", reason: "old" }],
      intended: [],
    };
    const o = judgeStep("c", "3", "DEL a", rec([]), 1, undefined, known, "cni-ts");
    expect(o.status).toBe("FAIL");
    expect(o.reasons).toEqual([
      `known-differences.json lists this step as failing for cni-ts ("old"), but it passed: remove the entry`,
    ]);
  });
});

describe("checkAnswer", () => {
  it("success against an expected success, and the error in words otherwise", () => {
    expect(checkAnswer({}, { ok: true }, "eth0", "")).toEqual([]);
    expect(checkAnswer({}, { ok: false, code: 7, msg: "bad", plugin: "bridge" }, "eth0", "")).toEqual([
      "expected success, got error code 7: bad",
    ]);
    expect(checkAnswer({}, { ok: false, msg: "no such plugin", runtimeError: true }, "eth0", "")).toEqual([
      "expected success, got runtime error: no such plugin",
    ]);
    expect(checkAnswer({ ok: false, code: 4 }, { ok: true }, "eth0", "")).toEqual([
      "expected failure code 4, got success",
    ]);
  });

  it("an expected failure: code, message regex and who refused", () => {
    const obs = { ok: false, code: 7, msg: "invalid mtu; details", plugin: "bridge" };
    expect(checkAnswer({ ok: false, code: 7, msg: "invalid mtu", runtimeError: false }, obs, "eth0", "")).toEqual([]);
    expect(checkAnswer({ ok: false, code: 4, msg: "^x", runtimeError: true }, obs, "eth0", "")).toEqual([
      "expected code 4, got 7: invalid mtu; details",
      "expected message /^x/, got: invalid mtu; details",
      "expected the runtime to refuse before any plugin ran, but plugin bridge failed: invalid mtu; details",
    ]);
    expect(
      checkAnswer({ ok: false, runtimeError: false }, { ok: false, msg: "m", runtimeError: true }, "eth0", ""),
    ).toEqual(["expected a plugin error, got a runtime error: m"]);
  });

  it("the result and the VERSION answer", () => {
    expect(checkAnswer({ result: { cniVersion: "1.0.0" } }, { ok: true }, "eth0", "")).toEqual([
      "expected a result, got none",
    ]);
    expect(
      checkAnswer(
        { result: { cniVersion: "1.0.0", interfaces: 3, sandbox: true } },
        { ok: true, result: RESULT_A },
        "eth0",
        "/var/run/netns/run-c0-pa",
      ),
    ).toEqual([]);
    expect(
      checkAnswer({ result: { sandbox: true } }, { ok: true, result: RESULT_A }, "eth0", "/elsewhere"),
    ).toHaveLength(1);
    expect(checkAnswer({ version: { cniVersion: "1.0.0" } }, { ok: true }, "eth0", "")).toEqual([
      "expected a VERSION answer, got none",
    ]);
    const v = { ok: true, version: { cniVersion: "1.1.0", supportedVersions: ["0.4.0", "1.0.0"] } };
    expect(
      checkAnswer({ version: { cniVersion: "1.0.0", supports: ["1.1.0"], lacks: ["0.4.0"] } }, v, "eth0", ""),
    ).toEqual([
      "VERSION cniVersion: expected 1.0.0, got 1.1.0",
      "VERSION supportedVersions lacks 1.1.0: 0.4.0, 1.0.0",
      "VERSION supportedVersions has 0.4.0",
    ]);
  });
});

describe("planStep", () => {
  it("the pod's node, else the step's node, else the first; eth0 by default; the attachment key", () => {
    const e = env();
    const p = planStep({ verb: "ADD", pod: "c", name: "add-c" }, 2, e, "cni-ts");
    expect([p.label, p.title, p.node.def.name, p.ifname, p.key, p.pod?.name, p.index]).toEqual([
      "add-c",
      "ADD c",
      "n2",
      "eth0",
      "c/eth0",
      "c",
      2,
    ]);
    const gc = planStep({ verb: "GC", node: "n2" }, 4, e, "cni-ts");
    expect([gc.label, gc.node.def.name, gc.key, gc.pod]).toEqual(["5", "n2", "", undefined]);
    expect(planStep({ verb: "STATUS" }, 0, e, "cni-ts").node.def.name).toBe("n1");
    expect(planStep({ verb: "ADD", pod: "a", ifname: "net1" }, 0, e, "cni-ts").key).toBe("a/net1");
  });

  it("the expectation with the implementation's overrides merged", () => {
    const s: StepDef = { verb: "ADD", pod: "a", expect: { ok: true, code: 1, byImpl: { reference: { ok: false } } } };
    expect(planStep(s, 0, env(), "reference").expect).toEqual({ ok: false, code: 1 });
    expect(planStep(s, 0, env(), "cni-ts").expect).toEqual({ ok: true, code: 1 });
  });
});

describe("the action's pieces", () => {
  it("errorObservation: the plugin's error, the runtime's, the first plugin error of several, anything else", () => {
    const pe = new PluginError({ plugin: "bridge", verb: "ADD", code: 11, msg: "busy", details: "try again", raw: "" });
    expect(errorObservation(pe)).toEqual({ ok: false, code: 11, msg: "busy; try again", plugin: "bridge" });
    expect(errorObservation(new CniError(4, "bad config", "field x"))).toEqual({
      ok: false,
      code: 4,
      msg: "bad config; field x",
      runtimeError: true,
    });
    const agg = new AggregateError([new Error("cache"), new Error("wrapped", { cause: pe })], "GC failed");
    expect(errorObservation(agg)).toEqual({ ok: false, msg: "GC failed", code: 11, plugin: "bridge" });
    expect(errorObservation(new AggregateError([new Error("x")], "all runtime"))).toEqual({
      ok: false,
      msg: "all runtime",
      runtimeError: true,
    });
    expect(errorObservation("boom")).toEqual({ ok: false, msg: "boom", runtimeError: true });
  });

  it("execArgs replaces $veth with the host veth, or keeps it when none is known", () => {
    expect(execArgs(["link", "set", "$veth", "down"], "veth1")).toEqual(["link", "set", "veth1", "down"]);
    expect(execArgs(["link", "set", "$veth", "down"], undefined)).toEqual(["link", "set", "$veth", "down"]);
  });

  it("validAttachments: pod names are their eth0", () => {
    expect(validAttachments(["a", { pod: "c", ifname: "net1" }, { pod: "b" }], env().pods)).toEqual([
      { containerID: "run-c0-a", ifname: "eth0" },
      { containerID: "run-c0-c", ifname: "net1" },
      { containerID: "run-c0-b", ifname: "eth0" },
    ]);
  });

  it("directCall builds libcni's request for the chosen plugin", () => {
    const e = env();
    const l = list([
      { type: "bridge", bridge: "cni0", capabilities: { portMappings: true } },
      { type: "portmap", capabilities: { portMappings: true } },
    ]);
    const a = e.attachments.get("a/eth0");
    const del = directCall(
      { verb: "DEL", pod: "a", via: "plugin", plugin: "portmap", capabilityArgs: { portMappings: [{ hostPort: 80 }] } },
      l,
      e.pods.get("a"),
      "eth0",
      a,
      e.pods,
    );
    expect(del.type).toBe("portmap");
    expect(del.verb).toBe("DEL");
    const body = JSON.parse(del.stdin.toString()) as J;
    expect(body).toMatchObject({
      type: "portmap",
      name: "net",
      cniVersion: "1.0.0",
      prevResult: RESULT_A,
      runtimeConfig: { portMappings: [{ hostPort: 80 }] },
    });
    expect(del.params).toEqual({
      containerID: "run-c0-a",
      netns: "/var/run/netns/run-c0-pa",
      ifname: "eth0",
      args: [],
    });

    const check = directCall(
      { verb: "CHECK", pod: "a", via: "plugin", cniVersion: "0.3.1", netns: "" },
      l,
      e.pods.get("a"),
      "eth0",
      undefined,
      e.pods,
    );
    expect(check.type).toBe("bridge");
    expect(JSON.parse(check.stdin.toString())).not.toHaveProperty("prevResult");
    expect(JSON.parse(check.stdin.toString()).cniVersion).toBe("0.3.1");
    expect(check.params.netns).toBe("");

    const gc = directCall({ verb: "GC", via: "plugin", valid: ["a"] }, l, undefined, "eth0", undefined, e.pods);
    const gcBody = JSON.parse(gc.stdin.toString()) as J;
    expect(gcBody["cni.dev/valid-attachments"]).toEqual([{ containerID: "run-c0-a", ifname: "eth0" }]);
    expect(gcBody["cni.dev/attachments"]).toEqual([{ containerID: "run-c0-a", ifname: "eth0" }]);
    expect(gcBody).not.toHaveProperty("runtimeConfig");
    expect(gc.params).toEqual({});
    expect(
      directCall({ verb: "STATUS", pod: "a", via: "plugin" }, l, e.pods.get("a"), "eth0", a, e.pods).params,
    ).toEqual({});
  });

  it("recordAttachment: an ADD's result and host veth; a failed second ADD keeps the first's; nothing else changes", () => {
    const e = env();
    const l = list([{ type: "bridge" }]);
    const result = { interfaces: [{ name: "cni0" }, { name: "veth9" }, { name: "eth0", sandbox: "/x" }] };
    recordAttachment(e.attachments, planStep({ verb: "ADD", pod: "b" }, 0, e, "cni-ts"), l, { ok: true, result });
    expect(e.attachments.get("b/eth0")).toMatchObject({ ifname: "eth0", network: "net", result, hostVeth: "veth9" });
    recordAttachment(e.attachments, planStep({ verb: "ADD", pod: "b" }, 1, e, "cni-ts"), l, { ok: false, code: 11 });
    expect(e.attachments.get("b/eth0")).toMatchObject({ result, hostVeth: "veth9" });
    recordAttachment(e.attachments, planStep({ verb: "ADD", pod: "c" }, 2, e, "cni-ts"), l, { ok: false });
    expect(e.attachments.get("c/eth0")).toEqual({ pod: e.pods.get("c"), ifname: "eth0", network: "net" });
    recordAttachment(e.attachments, planStep({ verb: "ADD", pod: "b", ifname: "net1" }, 3, e, "cni-ts"), undefined, {
      ok: true,
      result,
    });
    recordAttachment(e.attachments, planStep({ verb: "DEL", pod: "b", ifname: "net1" }, 4, e, "cni-ts"), l, {
      ok: true,
    });
    expect(e.attachments.has("b/net1")).toBe(false);
  });

  it("notImplemented: only a required plugin saying so", () => {
    const obs = { ok: false, plugin: "portmap", msg: "CHECK not implemented in this build" };
    expect(notImplemented(obs, ["plugin:portmap"], "/d")).toBe(
      "plugin portmap in /d: CHECK not implemented in this build",
    );
    expect(notImplemented(obs, [], "/d")).toBeUndefined();
    expect(notImplemented({ ...obs, msg: "failed" }, ["plugin:portmap"], "/d")).toBeUndefined();
    expect(notImplemented({ ok: true }, ["plugin:portmap"], "/d")).toBeUndefined();
  });
});

describe("kernel expectations: names and targets", () => {
  const refs = (stepPod: string | undefined, ifname = "eth0"): VethRefs => ({
    stepPod,
    ifname,
    attachments: env().attachments,
  });

  it("vethOf resolves $veth and $veth(pod) from the ADD results", () => {
    expect(vethOf("cni0", refs("a"))).toBe("cni0");
    expect(vethOf("$veth", refs("a"))).toBe("veth1234");
    expect(vethOf("$veth", refs("a", "net1"))).toBeUndefined();
    expect(vethOf("$veth(a)", refs("b", "net1"))).toBe("veth1234");
    expect(vethOf("$veth(b)", refs("a"))).toBeUndefined();
  });

  it("linkMac: the namespace's own attachment first, else the named pod's eth0", () => {
    const a = env().attachments.get("a/eth0");
    expect(linkMac("eth0", "eth0", a, refs("a"))).toBe("0a:00:00:00:00:03");
    expect(linkMac("$veth(a)", "veth1234", undefined, refs("b"))).toBe("0a:00:00:00:00:02");
    expect(linkMac("cni0", "cni0", undefined, refs("a"))).toBeUndefined();
  });

  it("matchNsLinks: links, absent, addresses, veth count, in that order", () => {
    const ls = [
      link("lo", { kind: "loopback" }),
      link("uplink0"),
      link("cni0", { kind: "bridge", addresses: ["10.1.0.1/24"], mac: "0a:00:00:00:00:01" }),
      link("veth1234"),
    ];
    expect(
      matchNsLinks(
        {
          links: [
            { name: "$veth", master: undefined, macFromResult: true },
            { name: "cni0", kind: "bridge" },
          ],
          absent: ["$veth(b)", "eth9"],
          addresses: ["in 10.1.0.0/24"],
          veths: 1,
        },
        ls,
        "node n1",
        undefined,
        refs("a"),
      ),
    ).toEqual([]);
    expect(
      matchNsLinks(
        {
          links: [{ name: "$veth", up: false }, { name: "$veth(b)" }],
          absent: ["$veth"],
          addresses: ["10.9.0.1/24"],
          veths: 2,
        },
        ls,
        "node n1",
        undefined,
        refs("a"),
      ),
    ).toEqual([
      "node n1 veth1234: up, expected down",
      "node n1: $veth(b) unknown (no ADD result with a host veth)",
      "node n1: link veth1234 present, expected absent",
      "node n1: no address 10.9.0.1/24",
      "node n1: 1 veth links, expected 2 (uplink0, veth1234)",
    ]);
  });

  it("pingAddress: a pod's address of the family, the gateway, outside, the node, a literal", () => {
    const e = env({ outside: true });
    expect(pingAddress({ from: "b", to: "a" }, e)).toBe("10.1.0.2");
    expect(pingAddress({ from: "b", to: "a", family: 6 }, e)).toBe("fd00::2");
    expect(pingAddress({ from: "a", to: "b" }, e)).toBeUndefined();
    expect(pingAddress({ from: "a", to: "gateway", family: 6 }, e)).toBe("fd00::1");
    expect(pingAddress({ from: "a", to: "outside" }, e)).toBe(OUTSIDE4);
    expect(pingAddress({ from: "a", to: "outside", family: 6 }, e)).toBe(OUTSIDE6);
    expect(pingAddress({ from: "a", to: "outside" }, env())).toBeUndefined();
    expect(pingAddress({ from: "a", to: "node" }, e)).toBe("198.51.100.10");
    expect(pingAddress({ from: "c", to: "node" }, e)).toBeUndefined();
    expect(pingAddress({ from: "a", to: "192.0.2.1" }, e)).toBe("192.0.2.1");
    expect(pingAddress({ from: "a", to: "nowhere" }, e)).toBeUndefined();
  });

  it("connectTarget: the listener, the client's namespace, the host, or why it cannot run", () => {
    const e = env({ outside: true });
    expect(connectTarget({ listen: "a", port: 80, from: "outside", to: "node:8080", proto: "tcp" }, e)).toEqual({
      what: "connect tcp outside -> node:8080 (listener in a:80)",
      listenPath: "/var/run/netns/run-c0-pa",
      fromPath: "/var/run/netns/run-c0-ext",
      host: "198.51.100.10",
      port: "8080",
    });
    expect(connectTarget({ listen: "a", port: 80, from: "b", to: "[fd00::2]:80", proto: "udp" }, e)).toMatchObject({
      fromPath: "/var/run/netns/run-c0-pb",
      host: "fd00::2",
      port: "80",
    });
    expect(
      connectTarget({ listen: "a", port: 80, from: "node", to: "node:80", proto: "tcp", family: 6 }, e),
    ).toMatchObject({ fromPath: "/var/run/netns/run-c0-nn1", host: "2001:db8:100::a" });
    expect(connectTarget({ listen: "a", port: 80, from: "outside", to: "node:80", proto: "tcp" }, env()).error).toBe(
      "connect tcp outside -> node:80 (listener in a:80): no namespace for outside (outside needs topology.outside)",
    );
    expect(connectTarget({ listen: "c", port: 80, from: "a", to: "node:80", proto: "tcp" }, e).error).toBe(
      "connect tcp a -> node:80 (listener in c:80): the node has no underlay address (needs topology.outside or two nodes)",
    );
    e.pods.get("a")!.deleted = true;
    expect(connectTarget({ listen: "a", port: 80, from: "b", to: "node:80", proto: "tcp" }, e).error).toBe(
      "connect tcp b -> node:80 (listener in a:80): the namespace of a was deleted",
    );
  });

  it("gonePods: goneFor, else the step's pod, none without gone", () => {
    expect(gonePods({}, "a")).toEqual([]);
    expect(gonePods({ gone: { veth: true } }, "a")).toEqual(["a"]);
    expect(gonePods({ gone: { veth: true } }, undefined)).toEqual([]);
    expect(gonePods({ gone: { veth: true }, goneFor: ["b", "c"] }, "a")).toEqual(["b", "c"]);
  });
});

describe("differential snapshot normalization", () => {
  it("links by name, veths grouped, lo and uplink0 left out", () => {
    const ls = [
      link("lo", { kind: "loopback" }),
      link("uplink0"),
      link("cni0", { kind: "bridge", addresses: ["fd00::1/64", "10.1.0.1/24"], promisc: true }),
      link("vethb", { master: "cni0", hairpin: true, up: false }),
      link("vetha", { master: "cni0" }),
    ];
    expect(normalizeLinks(ls)).toEqual({
      cni0: "bridge up mtu 1500 promisc addr 10.1.0.1/24,fd00::1/64",
      "veth*": "veth down mtu 1500 master cni0 hairpin | veth up mtu 1500 master cni0",
    });
    expect(normalizeLinks([link("lo")])).toEqual({});
  });

  it("routes sorted, veth devices as veth*", () => {
    const rs: KRoute[] = [
      { dst: "10.1.0.2/32", dev: "veth12", table: 254, family: 4 },
      { dst: "0.0.0.0/0", gw: "10.1.0.1", dev: "eth0", table: 254, family: 4, metric: 100 },
    ];
    expect(normalizeRoutes(rs)).toBe("0.0.0.0/0 via 10.1.0.1 dev eth0 metric 100 | 10.1.0.2/32 dev veth*");
    expect(normalizeRoutes([])).toBe("");
  });
});
