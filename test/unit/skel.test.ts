import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { runPlugin, parseCniPath, subcommandOf, type CmdContext, type PluginDefinition } from "../../lib/skel.js";
import { ToolError } from "../../lib/tool-error.js";

// A plugin that records what the skel handed it, so the tests see validation and dispatch, not plugin logic.
function recorder(netns: "required" | "ignored" = "ignored") {
  const calls: Array<{ verb: string; ctx: CmdContext }> = [];
  const plugin: PluginDefinition = {
    name: "rec",
    about: "recorder",
    netns,
    argsKeys: ["IP"],
    add: async (ctx) => {
      calls.push({ verb: "ADD", ctx });
      return { ips: [{ address: "10.1.2.3/24", gateway: "10.1.2.1" }] };
    },
    del: async (ctx) => void calls.push({ verb: "DEL", ctx }),
    check: async (ctx) => void calls.push({ verb: "CHECK", ctx }),
    gc: async (ctx) => void calls.push({ verb: "GC", ctx }),
    status: async (ctx) => void calls.push({ verb: "STATUS", ctx }),
  };
  return { plugin, calls };
}

const ENV = { CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/x", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };
const conf = (o: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ cniVersion: "1.0.0", name: "net1", type: "rec", ...o }));

async function call(
  command: string | undefined,
  env: Record<string, string> = {},
  stdin: Buffer = conf(),
  netns: "required" | "ignored" = "ignored",
) {
  const { plugin, calls } = recorder(netns);
  const outcome = await runPlugin(plugin, {
    env: { ...ENV, ...(command === undefined ? {} : { CNI_COMMAND: command }), ...env },
    stdin,
  });
  const parsed = outcome.stdout ? (JSON.parse(outcome.stdout) as Record<string, unknown>) : undefined;
  return { ...outcome, parsed, calls };
}

describe("required environment per verb", () => {
  const cases: Array<[string, string, string]> = [
    ["ADD", "CNI_CONTAINERID", "required env variables [CNI_CONTAINERID] missing"],
    ["ADD", "CNI_NETNS", "required env variables [CNI_NETNS] missing"],
    ["ADD", "CNI_IFNAME", "required env variables [CNI_IFNAME] missing"],
    ["ADD", "CNI_PATH", "required env variables [CNI_PATH] missing"],
    ["DEL", "CNI_CONTAINERID", "required env variables [CNI_CONTAINERID] missing"],
    ["DEL", "CNI_IFNAME", "required env variables [CNI_IFNAME] missing"],
    ["CHECK", "CNI_NETNS", "required env variables [CNI_NETNS] missing"],
    ["GC", "CNI_PATH", "required env variables [CNI_PATH] missing"],
    ["STATUS", "CNI_PATH", "required env variables [CNI_PATH] missing"],
  ];
  for (const [verb, variable, msg] of cases) {
    it(`${verb} without ${variable} is code 4 naming it`, async () => {
      const r = await call(verb, { [variable]: "" }, conf({ cniVersion: "1.1.0" }));
      expect(r.exitCode).toBe(1);
      expect(r.parsed).toMatchObject({ code: 4, msg });
      expect(r.calls).toHaveLength(0);
    });
  }

  it("DEL without CNI_NETNS is fine (the netns may be gone)", async () => {
    const r = await call("DEL", { CNI_NETNS: "" });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.calls[0]?.ctx.netns).toBe("");
  });

  it("GC and STATUS need no container ID, netns or ifname", async () => {
    for (const verb of ["GC", "STATUS"]) {
      const r = await call(verb, { CNI_CONTAINERID: "", CNI_NETNS: "", CNI_IFNAME: "" }, conf({ cniVersion: "1.1.0" }));
      expect(r.exitCode).toBe(0);
      expect(r.calls.map((c) => c.verb)).toEqual([verb]);
    }
  });

  it("lists every missing variable at once", async () => {
    const r = await call("ADD", { CNI_NETNS: "", CNI_PATH: "" });
    expect(r.parsed).toMatchObject({ code: 4, msg: "required env variables [CNI_NETNS CNI_PATH] missing" });
  });
});

describe("CNI_COMMAND", () => {
  it("unknown command is code 4", async () => {
    const r = await call("FOO");
    expect(r.parsed).toMatchObject({ code: 4, msg: "unknown CNI_COMMAND: FOO" });
  });
  it("lower-case verbs are unknown, as in the reference", async () => {
    expect((await call("add")).parsed).toMatchObject({ code: 4 });
  });
  it("missing command is code 4 naming CNI_COMMAND", async () => {
    const r = await call(undefined);
    expect(r.parsed).toMatchObject({ code: 4, msg: "required env variables [CNI_COMMAND] missing" });
  });
});

describe("container ID and ifname", () => {
  for (const bad of ["a/b", "a b", "-abc", ".abc", "a\nb", "x".repeat(256)]) {
    it(`container ID ${JSON.stringify(bad.slice(0, 12))} is code 4`, async () => {
      const r = await call("ADD", { CNI_CONTAINERID: bad });
      expect(r.parsed?.code).toBe(4);
      expect(r.calls).toHaveLength(0);
    });
  }
  const ifnames: Array<[string, string]> = [
    ["a".repeat(16), "interface name is too long"],
    [".", "interface name is . or .."],
    ["..", "interface name is . or .."],
    ["a/b", "interface name contains / or : or whitespace characters"],
    ["a:b", "interface name contains / or : or whitespace characters"],
    ["a b", "interface name contains / or : or whitespace characters"],
    ["a\tb", "interface name contains / or : or whitespace characters"],
    ["-eth0", "invalid characters in interface name"],
    ["eth#0", "invalid characters in interface name"],
  ];
  for (const [bad, msg] of ifnames) {
    it(`ifname ${JSON.stringify(bad)} is code 4: ${msg}`, async () => {
      const r = await call("ADD", { CNI_IFNAME: bad });
      expect(r.parsed).toMatchObject({ code: 4, msg });
    });
  }
  it("accepts a 15-byte ifname and typical IDs", async () => {
    const r = await call("ADD", { CNI_IFNAME: "a".repeat(15), CNI_CONTAINERID: "cnitool-0123456789abcdef0123" });
    expect(r.exitCode).toBe(0);
  });
});

describe("config parsing and versions", () => {
  it("stdin not JSON is code 6", async () => {
    const r = await call("ADD", {}, Buffer.from("{not json"));
    expect(r.parsed?.code).toBe(6);
  });
  it("empty stdin is code 6", async () => {
    const r = await call("ADD", {}, Buffer.alloc(0));
    expect(r.parsed).toMatchObject({ code: 6 });
  });
  it("JSON that is not an object is code 6", async () => {
    expect((await call("ADD", {}, Buffer.from("[1,2]"))).parsed?.code).toBe(6);
  });
  it("unsupported cniVersion is code 1 with the supported list", async () => {
    const r = await call("ADD", {}, conf({ cniVersion: "9.9.9" }));
    expect(r.parsed).toMatchObject({ code: 1, msg: "incompatible CNI versions" });
    expect(String(r.parsed?.details)).toContain('config is "9.9.9"');
  });
  it("missing name is code 7, bad names are code 7", async () => {
    expect((await call("ADD", {}, conf({ name: undefined }))).parsed).toMatchObject({
      code: 7,
      msg: "missing network name",
    });
    for (const name of ["../x", "a/b", "..", "a b", ".hidden", "n".repeat(256)]) {
      expect((await call("ADD", {}, conf({ name }))).parsed?.code).toBe(7);
    }
  });
  it("a config without cniVersion is 0.1.0 and the result says so", async () => {
    const r = await call("ADD", {}, Buffer.from(JSON.stringify({ name: "n", type: "rec" })));
    expect(r.exitCode).toBe(0);
    expect(r.parsed).toEqual({ cniVersion: "0.1.0", ip4: { ip: "10.1.2.3/24", gateway: "10.1.2.1" }, dns: {} });
  });
  it("ADD prints the result in exactly the config's version", async () => {
    const r = await call("ADD", {}, conf({ cniVersion: "0.4.0" }));
    expect(r.parsed).toEqual({
      cniVersion: "0.4.0",
      ips: [{ version: "4", address: "10.1.2.3/24", gateway: "10.1.2.1" }],
      dns: {},
    });
  });
  it("CHECK below 0.4.0 and GC/STATUS below 1.1.0 are code 1", async () => {
    expect((await call("CHECK", {}, conf({ cniVersion: "0.3.1" }))).parsed).toMatchObject({
      code: 1,
      msg: "config version does not allow CHECK",
    });
    expect((await call("GC", {}, conf({ cniVersion: "1.0.0" }))).parsed).toMatchObject({ code: 1 });
    expect((await call("STATUS", {}, conf({ cniVersion: "1.0.0" }))).parsed).toMatchObject({ code: 1 });
  });
  it("CHECK success prints nothing", async () => {
    const r = await call("CHECK");
    expect(r).toMatchObject({ exitCode: 0, stdout: "" });
  });
  it("error objects carry the config's cniVersion", async () => {
    const r = await call("ADD", { CNI_IFNAME: "" }, conf({ cniVersion: "0.4.0" }));
    // The env is validated before stdin is read, so the version is not known yet: the newest is used.
    expect(r.parsed).toEqual({ cniVersion: "1.1.0", code: 4, msg: "required env variables [CNI_IFNAME] missing" });
    const failing = recorder();
    failing.plugin.add = async () => {
      throw new CniError(7, "bad key", "ipam.subnet");
    };
    const r2 = await runPlugin(failing.plugin, {
      env: { ...ENV, CNI_COMMAND: "ADD" },
      stdin: conf({ cniVersion: "0.4.0" }),
    });
    expect(JSON.parse(r2.stdout)).toEqual({ cniVersion: "0.4.0", code: 7, msg: "bad key", details: "ipam.subnet" });
  });
  it("a plain exception from a plugin becomes code 999, not a crash", async () => {
    const failing = recorder();
    failing.plugin.del = async () => {
      throw new TypeError("boom");
    };
    const r = await runPlugin(failing.plugin, { env: { ...ENV, CNI_COMMAND: "DEL" }, stdin: conf() });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 999, msg: "boom" });
  });
});

describe("VERSION", () => {
  it("echoes the input's cniVersion and lists all seven", async () => {
    for (const v of ["0.1.0", "0.4.0", "1.1.0"]) {
      const r = await call("VERSION", {}, Buffer.from(JSON.stringify({ cniVersion: v })));
      expect(r.parsed).toEqual({
        cniVersion: v,
        supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
      });
    }
  });
  it("garbage or empty stdin still answers, with 1.1.0", async () => {
    for (const stdin of ["", "garbage", "{}"]) {
      const r = await call("VERSION", {}, Buffer.from(stdin));
      expect(r.exitCode).toBe(0);
      expect(r.parsed?.cniVersion).toBe("1.1.0");
    }
  });
  it("needs no other variable", async () => {
    const { plugin } = recorder();
    const r = await runPlugin(plugin, { env: { CNI_COMMAND: "VERSION" }, stdin: Buffer.from("{}") });
    expect(r.exitCode).toBe(0);
  });
});

describe("a plugin's firstVersion", () => {
  const { plugin, calls } = recorder();
  const from030: PluginDefinition = { ...plugin, firstVersion: "0.3.0" };
  it("VERSION lists only the versions from it on", async () => {
    const r = await runPlugin(from030, { env: { CNI_COMMAND: "VERSION" }, stdin: Buffer.from("{}") });
    expect(JSON.parse(r.stdout).supportedVersions).toEqual(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
  });
  it("an older config is code 1 on every verb, before the plugin runs; the first version itself is served", async () => {
    for (const verb of ["ADD", "DEL"]) {
      const r = await runPlugin(from030, { env: { ...ENV, CNI_COMMAND: verb }, stdin: conf({ cniVersion: "0.2.0" }) });
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 1, msg: "incompatible CNI versions" });
    }
    expect(calls).toEqual([]);
    const ok = await runPlugin(from030, { env: { ...ENV, CNI_COMMAND: "ADD" }, stdin: conf({ cniVersion: "0.3.0" }) });
    expect(ok.exitCode).toBe(0);
    expect(calls.map((c) => c.verb)).toEqual(["ADD"]);
  });
});

describe("CNI_ARGS and CNI_PATH through the skel", () => {
  it("passes known pairs, rejects unknown keys without IgnoreUnknown (code 4)", async () => {
    const ok = await call("ADD", { CNI_ARGS: "IP=10.1.2.9" });
    expect(ok.calls[0]?.ctx.args.get("IP")).toBe("10.1.2.9");
    const bad = await call("ADD", { CNI_ARGS: "ip=10.1.2.9" });
    expect(bad.parsed).toMatchObject({ code: 4, msg: "CNI_ARGS: unknown args [ip]" });
    const ignored = await call("ADD", { CNI_ARGS: "IgnoreUnknown=1;ip=x;K8S_POD_NAME=p" });
    expect(ignored.exitCode).toBe(0);
  });
  it("Kubernetes' keys are always accepted", async () => {
    const r = await call("ADD", {
      CNI_ARGS: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
    });
    expect(r.exitCode).toBe(0);
  });
  it("relative CNI_PATH entries are code 4, empty entries are dropped", async () => {
    expect((await call("ADD", { CNI_PATH: "bin:/opt/cni/bin" })).parsed).toMatchObject({ code: 4 });
    expect(parseCniPath(":/opt/cni/bin::/usr/lib/cni:")).toEqual(["/opt/cni/bin", "/usr/lib/cni"]);
  });
});

describe("CNI_NETNS for plugins that enter it", () => {
  it("our own namespace is code 8 (acting there would change the node)", async () => {
    const r = await call("ADD", { CNI_NETNS: "/proc/self/ns/net" }, conf(), "required");
    expect(r.parsed).toMatchObject({ code: 8 });
    const d = await call("DEL", { CNI_NETNS: "/proc/self/ns/net" }, conf(), "required");
    expect(d.parsed).toMatchObject({ code: 8 });
  });
  it("a regular file is code 4, a missing path is code 3 for ADD and fine for DEL, relative is code 4", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cni-ts-unit-"));
    const file = join(dir, "netns");
    writeFileSync(file, "");
    expect((await call("ADD", { CNI_NETNS: file }, conf(), "required")).parsed).toMatchObject({ code: 4 });
    expect((await call("ADD", { CNI_NETNS: join(dir, "gone") }, conf(), "required")).parsed).toMatchObject({ code: 3 });
    expect((await call("DEL", { CNI_NETNS: join(dir, "gone") }, conf(), "required")).exitCode).toBe(0);
    expect((await call("ADD", { CNI_NETNS: "netns/x" }, conf(), "required")).parsed).toMatchObject({ code: 4 });
  });
});

describe("GC attachments", () => {
  it("takes cni.dev/valid-attachments, or cni.dev/attachments", async () => {
    const list = [{ containerID: "c1", ifname: "eth0" }];
    for (const key of ["cni.dev/valid-attachments", "cni.dev/attachments"]) {
      const { plugin } = recorder();
      let seen: unknown;
      plugin.gc = async (ctx) => {
        seen = ctx.validAttachments;
      };
      await runPlugin(plugin, {
        env: { CNI_COMMAND: "GC", CNI_PATH: "/x" },
        stdin: conf({ cniVersion: "1.1.0", [key]: list }),
      });
      expect(seen).toEqual(list);
    }
  });
  it("a malformed list is code 7", async () => {
    const r = await call("GC", {}, conf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: 1 }] }));
    expect(r.parsed).toMatchObject({ code: 7 });
  });
});

// The reference skel checks the environment, then decodes stdin (6), the name (7), cniVersion (6 for a wrong type,
// 1 unsupported) and the verb's version gate (1) before the plugin looks at anything: CNI_ARGS and CNI_NETNS come
// after (cni pkg/skel/skel.go pluginMain, checkVersionAndCall, validateConfig).
describe("the reference's order of checks", () => {
  const gone = { CNI_NETNS: "/nonexistent/cni-ts-netns" };
  it("ADD with truncated JSON and a missing netns is code 6, not 3", async () => {
    const r = await call("ADD", gone, Buffer.from('{"cniVersion":"1.0.0","name":"n'), "required");
    expect(r.parsed).toMatchObject({ code: 6 });
  });
  it("ADD with cniVersion 9.9.9 and a missing netns is code 1, not 3", async () => {
    const r = await call("ADD", gone, conf({ cniVersion: "9.9.9" }), "required");
    expect(r.parsed).toMatchObject({ code: 1, msg: "incompatible CNI versions" });
  });
  it("CHECK at 0.3.1 with a missing netns is code 1, not 3", async () => {
    const r = await call("CHECK", gone, conf({ cniVersion: "0.3.1" }), "required");
    expect(r.parsed).toMatchObject({ code: 1, msg: "config version does not allow CHECK" });
  });
  it("the missing netns itself is still code 3 once the config is good", async () => {
    const r = await call("ADD", gone, conf(), "required");
    expect(r.parsed).toMatchObject({ code: 3 });
  });
  it("bad JSON wins over an unknown CNI_ARGS key, and a bad version over it too", async () => {
    expect((await call("ADD", { CNI_ARGS: "FOO=1" }, Buffer.from("{"))).parsed).toMatchObject({ code: 6 });
    expect((await call("ADD", { CNI_ARGS: "FOO=1" }, conf({ cniVersion: "9.9.9" }))).parsed).toMatchObject({ code: 1 });
    expect((await call("ADD", { CNI_ARGS: "FOO=1" }, conf())).parsed).toMatchObject({ code: 4 });
  });
  it("a name or cniVersion of the wrong type is a decoding failure (6); the name is checked before the version", async () => {
    expect((await call("ADD", {}, conf({ name: 5 }))).parsed).toMatchObject({ code: 6 });
    expect((await call("ADD", {}, conf({ cniVersion: 1 }))).parsed).toMatchObject({ code: 6 });
    expect((await call("ADD", {}, conf({ name: undefined, cniVersion: "9.9.9" }))).parsed).toMatchObject({
      code: 7,
      msg: "missing network name",
    });
  });
  it("the environment still comes first: a missing variable is code 4 whatever stdin holds", async () => {
    expect((await call("ADD", { CNI_IFNAME: "" }, Buffer.from("{"))).parsed).toMatchObject({ code: 4 });
  });
  it("cniVersion and name match case-insensitively, as Go reads them", async () => {
    const r = await call("ADD", {}, Buffer.from('{"CNIVersion":"0.4.0","Name":"net1","type":"rec"}'));
    expect(r.exitCode).toBe(0);
    expect(r.parsed).toMatchObject({ cniVersion: "0.4.0" });
    expect(r.calls[0]?.ctx.config.name).toBe("net1");
  });
  it("GC's valid attachments match case-insensitively too", async () => {
    const stdin = Buffer.from(
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "net1",
        type: "rec",
        "CNI.DEV/Valid-Attachments": [{ ContainerID: "c9", IfName: "eth1" }],
      }),
    );
    const r = await call("GC", {}, stdin);
    expect(r.exitCode).toBe(0);
    expect((r.calls[0]!.ctx as { validAttachments?: unknown }).validAttachments).toEqual([
      { containerID: "c9", ifname: "eth1" },
    ]);
  });
});

describe("the boundary: a tool's failure reaching skel", () => {
  const failing = (e: unknown): PluginDefinition => ({ ...recorder().plugin, add: async () => Promise.reject(e) });
  const add = async (e: unknown) =>
    JSON.parse((await runPlugin(failing(e), { env: { ...ENV, CNI_COMMAND: "ADD" }, stdin: conf() })).stdout) as Record<
      string,
      unknown
    >;

  it("is 100 naming the command and its stderr", async () => {
    const e = new ToolError({
      tool: "ip",
      what: "ip link add name cni0 type bridge",
      status: 2,
      stderr: "RTNETLINK answers: Operation not permitted\n",
    });
    expect(await add(e)).toEqual({
      cniVersion: "1.0.0",
      code: 100,
      msg: "ip link add name cni0 type bridge: RTNETLINK answers: Operation not permitted",
    });
  });
  it("is 11 when the tool hit its deadline", async () => {
    const e = new ToolError({
      tool: "nft",
      what: "nft -f -",
      status: null,
      stderr: "",
      kind: "timeout",
      reason: "no answer within 10000 ms, killed",
    });
    expect(await add(e)).toMatchObject({ code: 11, msg: "nft -f -: no answer within 10000 ms, killed" });
  });
  it("a CniError (a delegate's answer) keeps its code and text; anything else is 999", async () => {
    expect(await add(new CniError(101, "no IP addresses available in range set", "10.0.0.0/30"))).toMatchObject({
      code: 101,
      msg: "no IP addresses available in range set",
      details: "10.0.0.0/30",
    });
    expect(await add(new Error("boom"))).toMatchObject({ code: 999, msg: "boom" });
  });
});

describe("subcommands", () => {
  const sync = async (argv: readonly string[]) => argv.length;
  const plugin: PluginDefinition = { ...recorder().plugin, subcommands: { sync } };

  it("the first argument names one; the rest is its argv", () => {
    expect(subcommandOf(plugin, ["sync", "--node", "a"])).toBe(sync);
  });
  it("no argument, an unknown one, an inherited property name, or a plugin without any: none", () => {
    expect(subcommandOf(plugin, [])).toBeUndefined();
    expect(subcommandOf(plugin, ["--help"])).toBeUndefined();
    expect(subcommandOf(plugin, ["toString"])).toBeUndefined();
    expect(subcommandOf(recorder().plugin, ["sync"])).toBeUndefined();
  });
});
