// The built single-file executables as a runtime calls them: full paths, clean environment, no node on PATH.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIST_BIN, PLUGINS, Sandbox, installInto, requireBuilt, runExe, toolPath } from "./helpers.js";

const VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const sandbox = new Sandbox();
let optBin = "";

beforeAll(() => {
  requireBuilt();
  optBin = installInto(join(sandbox.tmpdir("opt"), "bin"));
});
afterAll(() => sandbox.cleanup());

describe("environment of the test itself", () => {
  it("PATH has no node on it", () => {
    expect(existsSync(join(toolPath(), "node"))).toBe(false);
    expect(existsSync(join(toolPath(), "ip"))).toBe(true);
  });
});

describe.each(PLUGINS)("%s", (plugin) => {
  const exe = () => join(optBin, plugin);

  it.each(VERSIONS)("VERSION at %s answers with that version and all seven", (v) => {
    const r = runExe(exe(), { CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: v }));
    expect(r.status).toBe(0);
    expect(r.json).toEqual({ cniVersion: v, supportedVersions: VERSIONS });
  });

  it("run by a person (no CNI_COMMAND) prints the about text on stderr and exits 0", () => {
    const r = runExe(exe(), {});
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(plugin);
    expect(r.stderr).toContain("CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    expect(r.stderr).toMatch(/cni-ts version \d+\.\d+\.\d+/);
    for (const flag of ["--help", "--version"]) {
      const f = runExe(exe(), { CNI_COMMAND: "ADD" }, "", [flag]);
      expect(f.status).toBe(0);
      expect(f.stderr).toContain(plugin);
    }
  });
});

describe("bad input gets one JSON error object with the right code", () => {
  const netns = () => sandbox.netns("pod");
  let podPath = "";
  beforeAll(() => {
    podPath = netns().path;
  });
  const conf = (o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.0.0", name: "net1", type: "bridge", ipam: { type: "host-local", subnet: "10.99.0.0/24" }, ...o });
  const env = (o: Record<string, string> = {}) => ({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "ctr1", CNI_NETNS: podPath, CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin", ...o });

  const cases: Array<[string, () => { env: Record<string, string>; stdin: string }, number, RegExp?]> = [
    ["stdin not JSON", () => ({ env: env(), stdin: "{nope" }), 6],
    ["stdin empty", () => ({ env: env(), stdin: "" }), 6],
    ["unknown CNI_COMMAND", () => ({ env: env({ CNI_COMMAND: "EXPLODE" }), stdin: conf() }), 4, /unknown CNI_COMMAND: EXPLODE/],
    ["missing CNI_NETNS", () => ({ env: env({ CNI_NETNS: "" }), stdin: conf() }), 4, /\[CNI_NETNS\]/],
    ["missing CNI_CONTAINERID", () => ({ env: env({ CNI_CONTAINERID: "" }), stdin: conf() }), 4, /\[CNI_CONTAINERID\]/],
    ["missing CNI_IFNAME", () => ({ env: env({ CNI_IFNAME: "" }), stdin: conf() }), 4, /\[CNI_IFNAME\]/],
    ["missing CNI_PATH", () => ({ env: env({ CNI_PATH: "" }), stdin: conf() }), 4, /\[CNI_PATH\]/],
    ["container ID with /", () => ({ env: env({ CNI_CONTAINERID: "a/b" }), stdin: conf() }), 4, /containerID/],
    ["container ID with a space", () => ({ env: env({ CNI_CONTAINERID: "a b" }), stdin: conf() }), 4, /containerID/],
    ["container ID with a leading -", () => ({ env: env({ CNI_CONTAINERID: "-rf" }), stdin: conf() }), 4, /containerID/],
    ["ifname of 16 bytes", () => ({ env: env({ CNI_IFNAME: "a".repeat(16) }), stdin: conf() }), 4, /too long/],
    ["ifname .", () => ({ env: env({ CNI_IFNAME: "." }), stdin: conf() }), 4],
    ["ifname ..", () => ({ env: env({ CNI_IFNAME: ".." }), stdin: conf() }), 4],
    ["ifname with /", () => ({ env: env({ CNI_IFNAME: "a/b" }), stdin: conf() }), 4],
    ["ifname with whitespace", () => ({ env: env({ CNI_IFNAME: "eth 0" }), stdin: conf() }), 4],
    ["unsupported cniVersion", () => ({ env: env(), stdin: conf({ cniVersion: "9.9.9" }) }), 1, /incompatible CNI versions/],
    ["network name with /", () => ({ env: env(), stdin: conf({ name: "a/b" }) }), 7],
    ["network name ..", () => ({ env: env(), stdin: conf({ name: ".." }) }), 7],
    ["network name with ../", () => ({ env: env(), stdin: conf({ name: "../../etc" }) }), 7],
    ["CHECK at 0.3.1", () => ({ env: env({ CNI_COMMAND: "CHECK" }), stdin: conf({ cniVersion: "0.3.1" }) }), 1],
    ["GC at 1.0.0", () => ({ env: env({ CNI_COMMAND: "GC" }), stdin: conf() }), 1],
    ["CNI_NETNS is the plugin's own namespace", () => ({ env: env({ CNI_NETNS: "/proc/self/ns/net" }), stdin: conf() }), 8],
    ["CNI_NETNS is a regular file", () => ({ env: env({ CNI_NETNS: "/etc/hostname" }), stdin: conf() }), 4],
    ["CNI_NETNS does not exist", () => ({ env: env({ CNI_NETNS: "/var/run/netns/cni-ts-no-such-ns" }), stdin: conf() }), 3],
    ["relative CNI_PATH entry", () => ({ env: env({ CNI_PATH: "bin" }), stdin: conf() }), 4],
    ["CNI_ARGS with an unknown key", () => ({ env: env({ CNI_ARGS: "FOO=1" }), stdin: conf() }), 4, /unknown args/],
    ["CNI_ARGS that is not K=V", () => ({ env: env({ CNI_ARGS: "FOO" }), stdin: conf() }), 4, /invalid pair/],
  ];

  it.each(cases)("%s", (_label, make, code, msg) => {
    const { env: e, stdin } = make();
    const r = runExe(join(optBin, "bridge"), e, stdin);
    expect(r.status).not.toBe(0);
    expect(r.json).toBeDefined();
    expect(r.json?.code).toBe(code);
    expect(typeof r.json?.msg).toBe("string");
    expect(r.json?.cniVersion).toMatch(/^\d+\.\d+\.\d+$/);
    if (msg) expect(String(r.json?.msg)).toMatch(msg);
  });

  it("10 MB of stdin is refused with code 5, not buffered", () => {
    const r = runExe(join(optBin, "host-local"), env(), "x".repeat(10 * 1024 * 1024));
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ code: 5 });
  });
});

describe("NODE_OPTIONS and friends cannot inject code", () => {
  it("NODE_OPTIONS=--require FILE is ignored", () => {
    const dir = sandbox.tmpdir("inject");
    const marker = join(dir, "pwned");
    const hook = join(dir, "x.js");
    writeFileSync(hook, `require("fs").writeFileSync(${JSON.stringify(marker)}, "ran")\n`);
    for (const p of PLUGINS) {
      const r = runExe(join(optBin, p), { CNI_COMMAND: "VERSION", NODE_OPTIONS: `--require ${hook}` }, '{"cniVersion":"1.0.0"}');
      expect(r.status).toBe(0);
      expect(r.json?.cniVersion).toBe("1.0.0");
    }
    const person = runExe(join(optBin, "bridge"), { NODE_OPTIONS: `--require ${hook}` });
    expect(person.status).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });
});

describe("the multi-call executable", () => {
  it("is one file; the plugin names are links to it", () => {
    const size = readFileSync(join(DIST_BIN, "cni-ts")).length;
    expect(size).toBeGreaterThan(10_000_000);
    const r = runExe(join(DIST_BIN, "cni-ts"), {});
    expect(r.status).toBe(0);
    for (const p of PLUGINS) expect(r.stderr).toContain(p);
  });
  it("cni-ts PLUGIN runs that plugin", () => {
    const r = runExe(join(DIST_BIN, "cni-ts"), { CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}', ["host-local"]);
    expect(r.json).toEqual({ cniVersion: "0.4.0", supportedVersions: VERSIONS });
  });
  it("an unknown applet name is a usage error", () => {
    const r = runExe(join(DIST_BIN, "cni-ts"), {}, "", ["nope"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("cni-ts PLUGIN");
  });
});
