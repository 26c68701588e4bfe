// The runner's verbs against small shell-script plugins that record every invocation (stdin and environment)
// and answer from per-test response files. No root needed.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { cachePath } from "../../conformance/runner/cache.js";
import { loadConfList, type NetworkConfigList } from "../../conformance/runner/conf.js";
import { PluginError } from "../../conformance/runner/errors.js";
import { findInPath } from "../../conformance/runner/exec.js";
import { CniRuntime, type RuntimeConf } from "../../conformance/runner/runtime.js";

const root = mkdtempSync(join(tmpdir(), "cni-ts-runner-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// One recording plugin, installed under several names. It logs NNN-<name>-<VERB>.{stdin,env} into $LOG and answers
// with $LOG/resp/<name>.<VERB> (plus .stderr, .rc, .sleep); without a response ADD prints {} and VERSION a 1.1.0 answer.
const PLUGIN = `#!/bin/sh
me=$(basename "$0")
seq=$(cat "$LOG/seq" 2>/dev/null || echo 0); seq=$((seq+1)); echo "$seq" > "$LOG/seq"
p="$LOG/$(printf %03d "$seq")-$me-$CNI_COMMAND"
cat > "$p.stdin"
env > "$p.env"
r="$LOG/resp/$me.$CNI_COMMAND"
if [ -f "$r.sleep" ]; then sleep "$(cat "$r.sleep")" & echo $! > "$LOG/child.pid"; wait $!; fi
[ -f "$r.stderr" ] && cat "$r.stderr" >&2
if [ -f "$r" ]; then cat "$r"
elif [ "$CNI_COMMAND" = ADD ]; then echo '{}'
elif [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}'
fi
[ -f "$r.rc" ] && exit "$(cat "$r.rc")"
exit 0
`;

const bin1 = join(root, "bin1");
const bin2 = join(root, "bin2");
function install(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), PLUGIN);
  chmodSync(join(dir, name), 0o755);
}
for (const name of ["alpha", "beta", "legacy"]) install(bin1, name);
for (const name of ["gamma", "alpha", "dironly"]) install(bin2, name);
mkdirSync(join(bin1, "dironly"));
symlinkSync(join(bin2, "gamma"), join(bin1, "linked"));
const cniPath = [bin1, bin2];

interface Call {
  plugin: string;
  verb: string;
  stdin: string;
  config: Record<string, any>;
  env: Record<string, string>;
}

let seq = 0;
/** A fresh log, response set and cache, and a runtime wired to them. */
function setup(opts: { timeoutMs?: number } = {}) {
  const dir = join(root, `t${seq++}`);
  const log = join(dir, "log");
  mkdirSync(join(log, "resp"), { recursive: true });
  const cacheDir = join(dir, "cache");
  const cni = new CniRuntime({ cniPath, cacheDir, env: { LOG: log }, ...opts });
  const respond = (
    plugin: string,
    verb: string,
    body: unknown,
    extra: { rc?: number; stderr?: string; sleep?: number } = {},
  ) => {
    const base = join(log, "resp", `${plugin}.${verb}`);
    writeFileSync(base, typeof body === "string" ? body : JSON.stringify(body));
    for (const ext of [".rc", ".stderr", ".sleep"]) rmSync(`${base}${ext}`, { force: true });
    if (extra.rc !== undefined) writeFileSync(`${base}.rc`, String(extra.rc));
    if (extra.stderr !== undefined) writeFileSync(`${base}.stderr`, extra.stderr);
    if (extra.sleep !== undefined) writeFileSync(`${base}.sleep`, String(extra.sleep));
  };
  const calls = (): Call[] =>
    readdirSync(log)
      .filter((f) => f.endsWith(".stdin"))
      .sort()
      .map((f) => {
        const [, plugin, verb] = /^\d+-(.+)-([A-Z]*)\.stdin$/.exec(f)!;
        const stdin = readFileSync(join(log, f), "utf8");
        const env: Record<string, string> = {};
        for (const line of readFileSync(join(log, f.replace(/\.stdin$/, ".env")), "utf8").split("\n")) {
          const i = line.indexOf("=");
          if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
        }
        let config: Record<string, any> = {};
        try {
          config = JSON.parse(stdin);
        } catch {
          // not JSON: the test looks at stdin itself
        }
        return { plugin: plugin!, verb: verb!, stdin, config, env };
      });
  const clear = () => {
    for (const f of readdirSync(log)) if (f !== "resp") rmSync(join(log, f));
  };
  return { cni, cacheDir, log, respond, calls, clear };
}

function list(plugins: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): NetworkConfigList {
  return loadConfList(
    Buffer.from(JSON.stringify({ cniVersion: "1.1.0", name: "net1", plugins, ...extra })),
    "net1.conflist",
  );
}

const rt = (containerID = "c1", ifname = "eth0"): RuntimeConf => ({
  containerID,
  netns: `/var/run/netns/${containerID}`,
  ifname,
});

const RESULT_A = { cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }] };
const RESULT_B = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "eth0", sandbox: "/var/run/netns/c1" }],
  ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 }],
};

/** Running or sleeping; a zombie (killed, not yet reaped by whoever inherited it) counts as gone. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function caught(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("plugin lookup", () => {
  it("takes the first CNI_PATH directory holding a regular file; follows symlinks; skips directories", () => {
    expect(findInPath("alpha", cniPath)).toBe(join(bin1, "alpha"));
    expect(findInPath("gamma", cniPath)).toBe(join(bin2, "gamma"));
    expect(findInPath("linked", cniPath)).toBe(join(bin1, "linked"));
    expect(findInPath("dironly", cniPath)).toBe(join(bin2, "dironly"));
  });
  it("uses libcni's messages", () => {
    expect(() => findInPath("nope", cniPath)).toThrow(`failed to find plugin "nope" in path [${bin1} ${bin2}]`);
    expect(() => findInPath("", cniPath)).toThrow("no plugin name provided");
    expect(() => findInPath("../bin2/gamma", cniPath)).toThrow("invalid plugin name: ../bin2/gamma");
  });
  it("an ADD naming a missing plugin fails wrapped with the plugin and verb, writing no cache", async () => {
    const t = setup();
    const err = await caught(t.cni.addNetworkList(list([{ type: "alpha" }, { type: "nope", name: "n2" }]), rt()));
    expect(err.message).toBe(
      `plugin type="nope" name="n2" failed (add): failed to find plugin "nope" in path [${bin1} ${bin2}]`,
    );
    expect(existsSync(cachePath(t.cacheDir, "net1", "c1", "eth0"))).toBe(false);
  });
});

describe("ADD", () => {
  it("chains prevResult, injects name/cniVersion/runtimeConfig, passes the CNI_* environment", async () => {
    const t = setup();
    t.respond("alpha", "ADD", RESULT_A);
    t.respond("beta", "ADD", RESULT_B);
    const l = list([
      { type: "alpha", capabilities: { portMappings: true, bandwidth: false } },
      { type: "beta", capabilities: { mac: true }, runtimeConfig: { static: 1 } },
    ]);
    const conf: RuntimeConf = {
      ...rt(),
      args: [
        ["IgnoreUnknown", "1"],
        ["K8S_POD_NAME", "p"],
      ],
      capabilityArgs: {
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
        bandwidth: { ingressRate: 1 },
      },
    };
    const result = await t.cni.addNetworkList(l, conf);
    expect(result).toEqual(RESULT_B);

    const [a, b, ...rest] = t.calls();
    expect(rest).toEqual([]);
    expect([a!.plugin, a!.verb, b!.plugin, b!.verb]).toEqual(["alpha", "ADD", "beta", "ADD"]);
    expect(a!.config).toEqual({
      type: "alpha",
      name: "net1",
      cniVersion: "1.1.0",
      capabilities: { portMappings: true, bandwidth: false },
      runtimeConfig: { portMappings: conf.capabilityArgs!.portMappings },
    });
    expect(b!.config.prevResult).toEqual(RESULT_A);
    expect(b!.config.runtimeConfig).toEqual({ static: 1 });
    expect(a!.env).toMatchObject({
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/var/run/netns/c1",
      CNI_IFNAME: "eth0",
      CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p",
      CNI_PATH: `${bin1}:${bin2}`,
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    });
    expect(a!.env).not.toHaveProperty("NODE_OPTIONS");
    expect(a!.env).not.toHaveProperty("HOME");
  });

  it("writes the cniCacheV1 file (dir 0700, file 0600) only after every plugin succeeded", async () => {
    const t = setup();
    t.respond("alpha", "ADD", RESULT_A);
    const l = list([{ type: "alpha" }]);
    await t.cni.addNetworkList(l, { ...rt(), args: [["K", "V"]], capabilityArgs: { mac: "c2:11:22:33:44:55" } });
    const file = cachePath(t.cacheDir, "net1", "c1", "eth0");
    expect(file).toBe(join(t.cacheDir, "results", "net1-c1-eth0"));
    expect(statSync(join(t.cacheDir, "results")).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cached = JSON.parse(readFileSync(file, "utf8"));
    expect(Object.keys(cached)).toEqual([
      "kind",
      "containerId",
      "config",
      "ifName",
      "networkName",
      "netns",
      "cniArgs",
      "capabilityArgs",
      "result",
    ]);
    expect(cached).toEqual({
      kind: "cniCacheV1",
      containerId: "c1",
      config: l.bytes.toString("base64"),
      ifName: "eth0",
      networkName: "net1",
      netns: "/var/run/netns/c1",
      cniArgs: [["K", "V"]],
      capabilityArgs: { mac: "c2:11:22:33:44:55" },
      result: RESULT_A,
    });
    expect(readdirSync(join(t.cacheDir, "results"))).toEqual(["net1-c1-eth0"]);
    // A temporary file orphaned by a crash mid-write is not an attachment.
    writeFileSync(join(t.cacheDir, "results", ".tmp-1-net1-c9-eth0"), readFileSync(file));
    expect(t.cni.getCachedAttachments().map((a) => a.containerID)).toEqual(["c1"]);
  });

  it("a result without cniVersion is taken at the list version; null is an empty result", async () => {
    const t = setup();
    t.respond("alpha", "ADD", { ips: [{ version: "4", address: "10.1.0.2/24" }] });
    const r = await t.cni.addNetworkList(list([{ type: "alpha" }], { cniVersion: "0.4.0" }), rt());
    expect(r).toEqual({ cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.2/24" }], dns: {} });
    t.respond("alpha", "ADD", "null");
    expect(await t.cni.addNetworkList(list([{ type: "alpha" }]), rt("c2"))).toEqual({ cniVersion: "1.1.0" });
  });

  it("the first failure stops the chain; no cache is written", async () => {
    const t = setup();
    t.respond("alpha", "ADD", { code: 11, msg: "try again", details: "lock busy" }, { rc: 1 });
    const err = await caught(t.cni.addNetworkList(list([{ type: "alpha" }, { type: "beta" }]), rt()));
    expect(err).toBeInstanceOf(PluginError);
    expect([err.plugin, err.verb, err.code, err.msg, err.details]).toEqual([
      "alpha",
      "ADD",
      11,
      "try again",
      "lock busy",
    ]);
    expect(err.message).toBe('plugin type="alpha" failed (add): try again; lock busy');
    expect(t.calls().map((c) => c.plugin)).toEqual(["alpha"]);
    expect(existsSync(join(t.cacheDir, "results"))).toBe(false);
  });

  it("refuses bad runtime parameters before running anything (lib/validate)", async () => {
    const t = setup();
    const l = list([{ type: "alpha" }]);
    await expect(t.cni.addNetworkList(l, rt("bad/id"))).rejects.toThrow("invalid characters in containerID");
    await expect(t.cni.addNetworkList(l, { ...rt(), ifname: "a-very-long-ifname" })).rejects.toThrow(
      "interface name is too long",
    );
    const badName = loadConfList(
      Buffer.from(JSON.stringify({ name: "../x", cniVersion: "1.1.0", plugins: [{ type: "alpha" }] })),
    );
    const err = await caught(t.cni.addNetworkList(badName, rt()));
    expect(err).toBeInstanceOf(CniError);
    expect(err.message).toBe("invalid characters found in network name");
    expect(t.calls()).toEqual([]);
  });
});

describe("CHECK", () => {
  it("runs in order with the cached result as prevResult and ignores stdout", async () => {
    const t = setup();
    t.respond("alpha", "ADD", RESULT_A);
    t.respond("beta", "ADD", RESULT_B);
    t.respond("alpha", "CHECK", "not json at all");
    const l = list([{ type: "alpha" }, { type: "beta" }]);
    await t.cni.addNetworkList(l, rt());
    t.clear();
    await t.cni.checkNetworkList(l, rt());
    const calls = t.calls();
    expect(calls.map((c) => `${c.plugin}.${c.verb}`)).toEqual(["alpha.CHECK", "beta.CHECK"]);
    for (const c of calls) expect(c.config.prevResult).toEqual(RESULT_B);
    expect(calls[0]!.env.CNI_CONTAINERID).toBe("c1");
  });

  it("without a cache sends no prevResult", async () => {
    const t = setup();
    await t.cni.checkNetworkList(list([{ type: "alpha" }]), rt());
    const [c] = t.calls();
    expect(c!.verb).toBe("CHECK");
    expect(c!.config).not.toHaveProperty("prevResult");
  });

  it("converts the cached result to the list's current version", async () => {
    const t = setup();
    t.respond("alpha", "ADD", { ...RESULT_A, cniVersion: "1.0.0" });
    await t.cni.addNetworkList(list([{ type: "alpha" }], { cniVersion: "1.0.0" }), rt());
    t.clear();
    await t.cni.checkNetworkList(list([{ type: "alpha" }], { cniVersion: "0.4.0" }), rt());
    expect(t.calls()[0]!.config.prevResult).toEqual({
      cniVersion: "0.4.0",
      ips: [{ version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      dns: {},
    });
  });

  it("reads a legacy cache holding a bare result", async () => {
    const t = setup();
    mkdirSync(join(t.cacheDir, "results"), { recursive: true });
    writeFileSync(cachePath(t.cacheDir, "net1", "c1", "eth0"), JSON.stringify(RESULT_A));
    await t.cni.checkNetworkList(list([{ type: "alpha" }]), rt());
    expect(t.calls()[0]!.config.prevResult).toEqual(RESULT_A);
  });

  it("an unconvertible cache is an error", async () => {
    const t = setup();
    mkdirSync(join(t.cacheDir, "results"), { recursive: true });
    writeFileSync(cachePath(t.cacheDir, "net1", "c1", "eth0"), JSON.stringify({ cniVersion: "7.7.7" }));
    await expect(t.cni.checkNetworkList(list([{ type: "alpha" }]), rt())).rejects.toThrow(
      /^failed to get network "net1" cached result: failed to convert cached result/,
    );
    expect(t.calls()).toEqual([]);
  });

  it("runs nothing below 0.4.0 or with disableCheck", async () => {
    const t = setup();
    await t.cni.checkNetworkList(list([{ type: "alpha" }], { cniVersion: "0.3.1" }), rt());
    await t.cni.checkNetworkList(list([{ type: "alpha" }], { disableCheck: true }), rt());
    expect(t.calls()).toEqual([]);
  });

  it("stops at the first error", async () => {
    const t = setup();
    t.respond("alpha", "CHECK", { code: 103, msg: "veth missing" }, { rc: 1 });
    const err = await caught(t.cni.checkNetworkList(list([{ type: "alpha" }, { type: "beta" }]), rt()));
    expect([err.verb, err.code, err.message]).toEqual([
      "CHECK",
      103,
      'plugin type="alpha" failed (check): veth missing',
    ]);
    expect(t.calls().map((c) => c.plugin)).toEqual(["alpha"]);
  });
});

describe("DEL", () => {
  it("runs in reverse order with the cached result, then removes the cache", async () => {
    const t = setup();
    t.respond("beta", "ADD", RESULT_B);
    const l = list([{ type: "alpha" }, { type: "beta" }, { type: "gamma" }]);
    await t.cni.addNetworkList(l, rt());
    t.clear();
    await t.cni.delNetworkList(l, rt());
    const calls = t.calls();
    expect(calls.map((c) => `${c.plugin}.${c.verb}`)).toEqual(["gamma.DEL", "beta.DEL", "alpha.DEL"]);
    // gamma answered ADD with {}: the final result, and so every DEL's prevResult.
    for (const c of calls) expect(c.config.prevResult).toEqual({ cniVersion: "1.1.0" });
    expect(existsSync(cachePath(t.cacheDir, "net1", "c1", "eth0"))).toBe(false);
    await t.cni.delNetworkList(l, rt()); // repeatable
  });

  it("passes no prevResult below 0.4.0, and still removes the cache", async () => {
    const t = setup();
    t.respond("alpha", "ADD", { cniVersion: "0.3.1", ips: [{ version: "4", address: "10.0.0.2/24" }] });
    const l = list([{ type: "alpha" }], { cniVersion: "0.3.1" });
    await t.cni.addNetworkList(l, rt());
    t.clear();
    await t.cni.delNetworkList(l, rt());
    expect(t.calls()[0]!.config).not.toHaveProperty("prevResult");
    expect(existsSync(cachePath(t.cacheDir, "net1", "c1", "eth0"))).toBe(false);
  });

  it("stops at the first error and keeps the cache", async () => {
    const t = setup();
    const l = list([{ type: "alpha" }, { type: "beta" }]);
    await t.cni.addNetworkList(l, rt());
    t.clear();
    t.respond("beta", "DEL", "", { rc: 1, stderr: "boom\n" });
    const err = await caught(t.cni.delNetworkList(l, rt()));
    expect(err.message).toBe('plugin type="beta" failed (del): netplugin failed: "boom\\n": exit status 1');
    expect(t.calls().map((c) => c.plugin)).toEqual(["beta"]);
    expect(existsSync(cachePath(t.cacheDir, "net1", "c1", "eth0"))).toBe(true);
  });

  it("drops an unconvertible cache and runs without prevResult", async () => {
    const t = setup();
    mkdirSync(join(t.cacheDir, "results"), { recursive: true });
    writeFileSync(cachePath(t.cacheDir, "net1", "c1", "eth0"), "{ torn");
    await t.cni.delNetworkList(list([{ type: "alpha" }]), rt());
    expect(t.calls()[0]!.config).not.toHaveProperty("prevResult");
    expect(existsSync(cachePath(t.cacheDir, "net1", "c1", "eth0"))).toBe(false);
  });
});

describe("GC", () => {
  async function threeAttachments() {
    const t = setup();
    const l = list([{ type: "alpha" }, { type: "beta" }]);
    await t.cni.addNetworkList(l, rt("c1"));
    await t.cni.addNetworkList(l, { ...rt("c2"), args: [["K8S_POD_NAME", "p2"]], capabilityArgs: { mac: "x" } });
    await t.cni.addNetworkList(l, rt("c3", "net9"));
    await t.cni.addNetworkList(list([{ type: "alpha" }], { name: "net2" }), rt("c4"));
    t.clear();
    return { t, l };
  }

  it("DELs cached attachments not in the valid set, then GCs every plugin with both attachment keys", async () => {
    const { t, l } = await threeAttachments();
    expect(t.cni.getCachedAttachments("net1").map((a) => `${a.containerID}/${a.ifname}`)).toEqual([
      "c1/eth0",
      "c2/eth0",
      "c3/net9",
    ]);
    await t.cni.gcNetworkList(l, [{ containerID: "c1", ifname: "eth0" }]);
    const calls = t.calls();
    expect(calls.map((c) => `${c.plugin}.${c.verb}.${c.env.CNI_CONTAINERID}`)).toEqual([
      "beta.DEL.c2",
      "alpha.DEL.c2",
      "beta.DEL.c3",
      "alpha.DEL.c3",
      "alpha.GC.",
      "beta.GC.",
    ]);
    // The synthesised DEL is rebuilt from the cache: netns, CNI_ARGS, capability args, prevResult.
    expect(calls[0]!.env).toMatchObject({
      CNI_NETNS: "/var/run/netns/c2",
      CNI_ARGS: "K8S_POD_NAME=p2",
      CNI_IFNAME: "eth0",
    });
    expect(calls[0]!.config.prevResult).toEqual({ cniVersion: "1.1.0" });
    const gc = calls[4]!;
    expect(gc.env).toMatchObject({
      CNI_COMMAND: "GC",
      CNI_CONTAINERID: "",
      CNI_NETNS: "",
      CNI_IFNAME: "",
      CNI_ARGS: "",
      CNI_PATH: `${bin1}:${bin2}`,
    });
    expect(gc.config).toEqual({
      type: "alpha",
      name: "net1",
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "eth0" }],
      "cni.dev/attachments": [{ containerID: "c1", ifname: "eth0" }],
    });
    expect(t.cni.getCachedAttachments().map((a) => `${a.network}:${a.containerID}`)).toEqual(["net1:c1", "net2:c4"]);
  });

  it("without a valid set, DELs every attachment of the network and sends no attachment keys", async () => {
    const { t, l } = await threeAttachments();
    await t.cni.gcNetworkList(l, undefined);
    const gcs = t.calls().filter((c) => c.verb === "GC");
    expect(gcs).toHaveLength(2);
    for (const c of gcs) expect(Object.keys(c.config).sort()).toEqual(["cniVersion", "name", "type"]);
    expect(t.cni.getCachedAttachments("net1")).toEqual([]);
    expect(t.cni.getCachedAttachments("net2")).toHaveLength(1);
  });

  it("collects every error instead of stopping", async () => {
    const { t, l } = await threeAttachments();
    t.respond("alpha", "DEL", { code: 999, msg: "del failed" }, { rc: 1 });
    t.respond("alpha", "GC", { code: 999, msg: "gc failed" }, { rc: 1 });
    const err = await caught(t.cni.gcNetworkList(l, []));
    expect(err).toBeInstanceOf(AggregateError);
    expect(err.errors.map((e: Error) => e.message)).toEqual([
      'failed to delete stale attachment c1 eth0: plugin type="alpha" failed (del): del failed',
      'failed to delete stale attachment c2 eth0: plugin type="alpha" failed (del): del failed',
      'failed to delete stale attachment c3 net9: plugin type="alpha" failed (del): del failed',
      'failed to GC plugin alpha: plugin type="alpha" failed (gc): gc failed',
    ]);
    expect(
      t
        .calls()
        .filter((c) => c.verb === "GC")
        .map((c) => c.plugin),
    ).toEqual(["alpha", "beta"]);
  });

  it("does nothing with disableGC; only DELs below 1.1.0", async () => {
    const { t } = await threeAttachments();
    await t.cni.gcNetworkList(list([{ type: "alpha" }, { type: "beta" }], { disableGC: true }), []);
    expect(t.calls()).toEqual([]);
    await t.cni.gcNetworkList(list([{ type: "alpha" }, { type: "beta" }], { cniVersion: "1.0.0" }), []);
    expect(new Set(t.calls().map((c) => c.verb))).toEqual(new Set(["DEL"]));
  });

  it("still GCs the plugins when there is no cache directory yet", async () => {
    const t = setup();
    await t.cni.gcNetworkList(list([{ type: "alpha" }]), []);
    expect(t.calls().map((c) => c.verb)).toEqual(["GC"]);
  });
});

describe("STATUS", () => {
  it("runs every plugin in order with name and cniVersion and empty attachment variables", async () => {
    const t = setup();
    await t.cni.getStatusNetworkList(list([{ type: "alpha", runtimeConfig: { x: 1 } }, { type: "beta" }]));
    const calls = t.calls();
    expect(calls.map((c) => `${c.plugin}.${c.verb}`)).toEqual(["alpha.STATUS", "beta.STATUS"]);
    expect(calls[0]!.config).toEqual({ type: "alpha", name: "net1", cniVersion: "1.1.0", runtimeConfig: { x: 1 } });
    expect(calls[0]!.env).toMatchObject({
      CNI_CONTAINERID: "",
      CNI_NETNS: "",
      CNI_IFNAME: "",
      CNI_ARGS: "",
      CNI_PATH: `${bin1}:${bin2}`,
    });
  });

  it("stops at the first error, keeping its code", async () => {
    const t = setup();
    t.respond("alpha", "STATUS", { code: 50, msg: "no addresses left" }, { rc: 1 });
    const err = await caught(t.cni.getStatusNetworkList(list([{ type: "alpha" }, { type: "beta" }])));
    expect([err.code, err.msg, err.verb]).toEqual([50, "no addresses left", "STATUS"]);
    expect(t.calls().map((c) => c.plugin)).toEqual(["alpha"]);
  });

  it("runs nothing below 1.1.0", async () => {
    const t = setup();
    await t.cni.getStatusNetworkList(list([{ type: "alpha" }], { cniVersion: "1.0.0" }));
    expect(t.calls()).toEqual([]);
  });
});

describe("VERSION", () => {
  it("probes like libcni: stdin cniVersion 1.1.0, dummy NETNS/IFNAME/PATH", async () => {
    const t = setup();
    expect(await t.cni.getVersionInfo("alpha")).toEqual({
      cniVersion: "1.1.0",
      supportedVersions: ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
    const [c] = t.calls();
    expect(c!.config).toEqual({ cniVersion: "1.1.0" });
    expect(c!.env).toMatchObject({
      CNI_COMMAND: "VERSION",
      CNI_NETNS: "dummy",
      CNI_IFNAME: "dummy",
      CNI_PATH: "dummy",
      CNI_CONTAINERID: "",
    });
  });

  it('treats "unknown CNI_COMMAND: VERSION" as a 0.1.0-only plugin', async () => {
    const t = setup();
    t.respond("legacy", "VERSION", { code: 4, msg: "unknown CNI_COMMAND: VERSION" }, { rc: 1 });
    expect(await t.cni.getVersionInfo("legacy")).toEqual({ supportedVersions: ["0.1.0"] });
  });

  it("decodes 0.2.0 answers without supportedVersions and refuses incomplete ones", async () => {
    const t = setup();
    t.respond("alpha", "VERSION", { cniVersion: "0.2.0" });
    expect((await t.cni.getVersionInfo("alpha")).supportedVersions).toEqual(["0.1.0", "0.2.0"]);
    t.respond("alpha", "VERSION", { cniVersion: "1.0.0" });
    await expect(t.cni.getVersionInfo("alpha")).rejects.toThrow(
      "decoding version info: missing field supportedVersions",
    );
    t.respond("alpha", "VERSION", { supportedVersions: ["1.0.0"] });
    await expect(t.cni.getVersionInfo("alpha")).rejects.toThrow("decoding version info: missing field cniVersion");
  });
});

describe("validateNetworkList", () => {
  it("returns the union of enabled capabilities when every plugin exists and supports the version", async () => {
    const t = setup();
    const caps = await t.cni.validateNetworkList(
      list([
        { type: "alpha", capabilities: { portMappings: true, mac: false } },
        { type: "beta", capabilities: { ips: true, portMappings: true } },
      ]),
    );
    expect(caps).toEqual(["ips", "portMappings"]);
  });

  it("reports every missing or incompatible plugin", async () => {
    const t = setup();
    t.respond("legacy", "VERSION", { code: 4, msg: "unknown CNI_COMMAND: VERSION" }, { rc: 1 });
    const err = await caught(
      t.cni.validateNetworkList(list([{ type: "legacy" }, { type: "nope" }, { type: "alpha" }])),
    );
    expect(err).toBeInstanceOf(AggregateError);
    expect(err.errors.map((e: Error) => e.message)).toEqual([
      'plugin legacy does not support config version "1.1.0"',
      `failed to find plugin "nope" in path [${bin1} ${bin2}]`,
    ]);
  });
});

describe("failures and the deadline", () => {
  it("empty stdout without stderr, garbage stdout, and a success that is not a result", async () => {
    const t = setup();
    t.respond("alpha", "ADD", "", { rc: 3 });
    expect((await caught(t.cni.addNetworkList(list([{ type: "alpha" }]), rt()))).msg).toBe(
      "netplugin failed with no error message: exit status 3",
    );
    t.respond("alpha", "ADD", "oops", { rc: 1 });
    const garbage = await caught(t.cni.addNetworkList(list([{ type: "alpha" }]), rt()));
    expect([garbage.code, garbage.raw]).toEqual([0, "oops"]);
    expect(garbage.msg).toMatch(/^netplugin failed but error parsing its diagnostic message "oops": /);
    t.respond("alpha", "ADD", "oops");
    const bad = await caught(t.cni.addNetworkList(list([{ type: "alpha" }]), rt()));
    expect([bad.constructor, bad.code, bad.raw]).toEqual([PluginError, 6, "oops"]);
    expect(bad.msg).toMatch(/^failed to unmarshal raw result/);
    t.respond("alpha", "ADD", { cniVersion: "1.1.0", ips: [{ address: "not-an-ip" }] });
    expect((await caught(t.cni.addNetworkList(list([{ type: "alpha" }]), rt()))).code).toBe(6);
  });

  it("kills a plugin that outlives the deadline, with its process group", async () => {
    const t = setup({ timeoutMs: 300 });
    t.respond("alpha", "ADD", "{}", { sleep: 30 });
    const started = Date.now();
    const err = await caught(t.cni.addNetworkList(list([{ type: "alpha" }]), rt()));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.timedOut).toBe(true);
    expect(err.msg).toMatch(/^timed out after 300 ms/);
    // The plugin's own child (a background sleep) went with it: the whole process group is killed.
    const child = Number(readFileSync(join(t.log, "child.pid"), "utf8"));
    await new Promise((res) => setTimeout(res, 100));
    expect(alive(child)).toBe(false);
  });

  it("a plugin that cannot be executed is a PluginError", async () => {
    const dir = join(root, "noexec");
    mkdirSync(dir);
    writeFileSync(join(dir, "plain"), "#!/bin/sh\necho '{}'\n");
    const cni = new CniRuntime({ cniPath: [dir], cacheDir: join(root, "noexec-cache") });
    const err = await caught(cni.getStatusNetworkList(list([{ type: "plain" }])));
    expect(err).toBeInstanceOf(PluginError);
    expect(err.msg).toMatch(/^netplugin failed with no error message: .*EACCES/);
  });
});
