// Typed errors below the plugin boundary (lib/tool-error.ts) and where they become CNI codes (lib/errors.ts
// asCniError, which skel applies): callers decide on `kind` and `failedLine`, never on message text.
import { describe, expect, it } from "vitest";
import { CniError, asCniError } from "../../lib/errors.js";
import { runOk } from "../../lib/exec.js";
import { batchReason, failedBatchLine } from "../../lib/batch.js";
import { ToolError, classifySpawnErrno, classifyStderr, rejectedOption } from "../../lib/tool-error.js";
import type { NetConf } from "../../lib/types.js";
import { loadBridgeConfig } from "../../plugins/bridge/config.js";
import { hostBatch, sharedLinkCreated, type HostPlan } from "../../plugins/bridge/host.js";

describe("classifyStderr: what iproute2, nsenter, nft and iptables print", () => {
  const cases: Array<[string, string]> = [
    ["RTNETLINK answers: File exists\nCommand failed -:1\n", "exists"],
    ['Cannot find device "veth0123abcd"\nCommand failed -:1\n', "not-found"],
    ['Device "cni0" does not exist.\n', "not-found"],
    ["RTNETLINK answers: No such process\n", "not-found"],
    ['Error: argument "eth9" is wrong: Device does not exist\n', "not-found"],
    ["nsenter: cannot open /var/run/netns/gone: No such file or directory\n", "not-found"],
    ["RTNETLINK answers: No such device\n", "not-found"],
    ["RTNETLINK answers: Device or resource busy\n", "busy"],
    ["Another app is currently holding the xtables lock. Perhaps you want to use the -w option?\n", "busy"],
    ["RTNETLINK answers: Operation not permitted\n", "permission"],
    ["nsenter: reassociate to namespace 'ns/net' failed: Permission denied\n", "permission"],
    ['Error: either "to" is duplicate, or "x" is a garbage.\n', "failed"],
    ["", "failed"],
  ];
  for (const [stderr, kind] of cases)
    it(`${JSON.stringify(stderr.split("\n")[0])} is ${kind}`, () => expect(classifyStderr(stderr)).toBe(kind));

  it("a spawn's errno: ETXTBSY passes (busy), anything else means the tool cannot run", () => {
    expect(classifySpawnErrno("ETXTBSY")).toBe("busy");
    expect(classifySpawnErrno("ENOENT")).toBe("not-started");
    expect(classifySpawnErrno("EACCES")).toBe("not-started");
    expect(classifySpawnErrno(undefined)).toBe("not-started");
  });
});

describe("ToolError", () => {
  it("the message names the command and stderr (or the exit status); kind from stderr unless given", () => {
    const e = new ToolError({
      tool: "ip",
      what: "ip link add name cni0 type bridge",
      status: 2,
      stderr: "RTNETLINK answers: File exists\n",
    });
    expect(e).toMatchObject({
      kind: "exists",
      message: "ip link add name cni0 type bridge: RTNETLINK answers: File exists",
      status: 2,
      failedLine: undefined,
    });
    expect(new ToolError({ tool: "ip", what: "ip x", status: 1, stderr: "" }).message).toBe("ip x: exit 1");
    expect(new ToolError({ tool: "ip", what: "ip x", status: null, stderr: "" }).message).toBe("ip x: killed");
    expect(
      new ToolError({ tool: "nft", what: "nft -f -", status: 1, stderr: "File exists", kind: "failed" }).kind,
    ).toBe("failed");
  });

  it("rejectedOption: the tool refused the option itself, not the job", () => {
    const old = new ToolError({
      tool: "ip",
      what: "ip -N route show",
      status: 255,
      stderr: 'Option "-N" is unknown, try "ip -help".\n',
    });
    expect(rejectedOption(old, "-N")).toBe(true);
    expect(rejectedOption(old, "-d")).toBe(false);
    expect(rejectedOption(new Error('Option "-N" is unknown'), "-N")).toBe(false);
    expect(
      rejectedOption(
        new ToolError({ tool: "ip", what: "ip -N route show", status: 1, stderr: "Cannot open netlink socket" }),
        "-N",
      ),
    ).toBe(false);
  });
});

describe("runOk and run raise ToolErrors", () => {
  it("a non-zero exit: kind from stderr, status, the command in the message", async () => {
    const e = await runOk("sh", ["-c", "echo 'RTNETLINK answers: File exists' >&2; exit 2"], {
      what: "adding x",
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ToolError);
    expect(e).toMatchObject({
      tool: "sh",
      kind: "exists",
      status: 2,
      message: "adding x: RTNETLINK answers: File exists",
      errno: undefined,
    });
  });
  it("a program that cannot be started: not-started with its errno", async () => {
    const e = await runOk("/nonexistent/cni-ts-test-tool", []).catch((x: unknown) => x);
    expect(e).toMatchObject({
      name: "ToolError",
      kind: "not-started",
      errno: "ENOENT",
      status: null,
      message: "cannot execute /nonexistent/cni-ts-test-tool: ENOENT",
    });
  });
});

describe("asCniError: the plugin boundary", () => {
  const tool = (o: Partial<ConstructorParameters<typeof ToolError>[0]> = {}) =>
    new ToolError({
      tool: "ip",
      what: "ip link del dev veth1",
      status: 1,
      stderr: "RTNETLINK answers: Operation not permitted",
      ...o,
    });

  it("a CniError (ours, or a delegate's answer) passes unchanged", () => {
    const c = new CniError(101, "no addresses left", "range 10.0.0.0/30");
    expect(asCniError(c)).toBe(c);
  });
  it("a tool's failure is 100 (kernel operation failed), naming the command and stderr", () => {
    expect(asCniError(tool()).toJSON("1.0.0")).toEqual({
      cniVersion: "1.0.0",
      code: 100,
      msg: "ip link del dev veth1: RTNETLINK answers: Operation not permitted",
    });
    for (const kind of ["not-found", "exists", "busy", "permission", "failed"] as const)
      expect(asCniError(tool({ kind })).code).toBe(100);
  });
  it("a deadline is 11 (try again later), stderr so far as details", () => {
    const e = tool({ kind: "timeout", status: null, stderr: "partial\n", reason: "no answer within 200 ms, killed" });
    expect(asCniError(e)).toMatchObject({
      code: 11,
      message: "ip link del dev veth1: no answer within 200 ms, killed",
      details: "partial",
    });
  });
  it("a tool that could not be started is 999, as the reference answers an exec failure", () => {
    const e = new ToolError({
      tool: "/opt/cni/bin/dhcp",
      what: "cannot execute /opt/cni/bin/dhcp",
      status: null,
      stderr: "",
      kind: "not-started",
      reason: "EACCES",
      errno: "EACCES",
    });
    expect(asCniError(e)).toMatchObject({ code: 999, message: "cannot execute /opt/cni/bin/dhcp: EACCES" });
  });
  it("anything else is the fallback code (999 unless given)", () => {
    expect(asCniError(new Error("boom"))).toMatchObject({ code: 999, message: "boom" });
    expect(asCniError("text", 5)).toMatchObject({ code: 5, message: "text" });
  });
});

describe("ip -batch failures name their line", () => {
  const lines = ["link set dev lo up", "link add name cni0 type bridge", "addr add 10.0.0.1/24 dev cni0"];
  it("the line iproute2 counts (1-based) in Command failed -:N", () => {
    expect(failedBatchLine("RTNETLINK answers: File exists\nCommand failed -:2\n", lines)).toBe(
      "link add name cni0 type bridge",
    );
    expect(failedBatchLine("RTNETLINK answers: File exists\n", lines)).toBeUndefined();
    expect(failedBatchLine("Command failed -:9\n", lines)).toBeUndefined();
  });
  it("the reason without the bookkeeping", () => {
    expect(batchReason("RTNETLINK answers: File exists\nCommand failed -:2\n")).toBe("RTNETLINK answers: File exists");
  });
});

describe("bridge ADD: which shared link a failed node batch line was creating", () => {
  const load = (o: Record<string, unknown> = {}) =>
    loadBridgeConfig({ cniVersion: "1.0.0", name: "net1", type: "bridge", ...o } as NetConf, new Map());
  const plan: HostPlan = {
    hostVeth: "veth0123abcd",
    hostAlias: "a",
    hostMac: "02:00:00:00:00:01",
    podIfname: "eth0",
    podMac: "02:00:00:00:00:02",
    netns: "/run/netns/p",
    bridgeMac: "02:00:00:00:00:03",
    gateways: [],
    vlanGwMac: "02:00:00:00:00:04",
    vlanGwPortMac: "02:00:00:00:00:05",
  };
  const linkAdds = (conf: ReturnType<typeof load>, state: Parameters<typeof hostBatch>[1]) =>
    hostBatch(conf, state, plan)
      .text()
      .split("\n")
      .filter((l) => l.startsWith("link add "));

  it("the bridge's own line, with or without mtu and vlan_filtering; the pod's veth is not shared", () => {
    for (const conf of [load(), load({ mtu: 1400 }), load({ vlan: 100 })]) {
      const [bridge, veth] = linkAdds(conf, { exists: false, addrs: [] });
      expect(sharedLinkCreated(bridge, conf)).toBe("bridge");
      expect(sharedLinkCreated(veth, conf)).toBeUndefined();
    }
  });
  it("the VLAN gateway pair's line", () => {
    const conf = load({ vlan: 100, isGateway: true });
    const [pair, veth] = linkAdds(conf, { exists: true, addrs: [], vlanGw: { exists: false, addrs: [] } });
    expect(sharedLinkCreated(pair, conf)).toBe("vlan-gateway");
    expect(sharedLinkCreated(veth, conf)).toBeUndefined();
  });
  it("another bridge's line, other commands, no line at all", () => {
    const conf = load();
    expect(sharedLinkCreated("link add name cni1 address 02:00:00:00:00:03 type bridge", conf)).toBeUndefined();
    expect(sharedLinkCreated("link set dev cni0 up", conf)).toBeUndefined();
    expect(sharedLinkCreated(undefined, conf)).toBeUndefined();
  });
});
