// The built single-file executables as a runtime calls them: full paths, clean environment, no node on PATH.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIST_BIN, PLUGINS, Sandbox, installInto, requireBuilt, runExe, toolPath } from "./helpers.js";

const VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/** What each plugin's VERSION lists: all seven, but bandwidth starts at 0.3.0 as the reference's does. */
const versionsOf = (plugin: string): string[] => (plugin === "bandwidth" ? VERSIONS.slice(2) : VERSIONS);
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

  it.each(VERSIONS)("VERSION at %s answers with that version and the plugin's versions", (v) => {
    const r = runExe(exe(), { CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: v }));
    expect(r.status).toBe(0);
    expect(r.json).toEqual({ cniVersion: v, supportedVersions: versionsOf(plugin) });
  });

  it("run by a person (no CNI_COMMAND) prints the about text on stderr and exits 0", () => {
    const r = runExe(exe(), {});
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(plugin);
    expect(r.stderr).toContain(`CNI protocol versions supported: ${versionsOf(plugin).join(", ")}`);
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
  const conf = (o: Record<string, unknown> = {}) =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "net1",
      type: "bridge",
      ipam: { type: "host-local", subnet: "10.99.0.0/24" },
      ...o,
    });
  const env = (o: Record<string, string> = {}) => ({
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "ctr1",
    CNI_NETNS: podPath,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    ...o,
  });

  const cases: Array<[string, () => { env: Record<string, string>; stdin: string }, number, RegExp?]> = [
    ["stdin not JSON", () => ({ env: env(), stdin: "{nope" }), 6],
    ["stdin empty", () => ({ env: env(), stdin: "" }), 6],
    [
      "unknown CNI_COMMAND",
      () => ({ env: env({ CNI_COMMAND: "EXPLODE" }), stdin: conf() }),
      4,
      /unknown CNI_COMMAND: EXPLODE/,
    ],
    ["missing CNI_NETNS", () => ({ env: env({ CNI_NETNS: "" }), stdin: conf() }), 4, /\[CNI_NETNS\]/],
    ["missing CNI_CONTAINERID", () => ({ env: env({ CNI_CONTAINERID: "" }), stdin: conf() }), 4, /\[CNI_CONTAINERID\]/],
    ["missing CNI_IFNAME", () => ({ env: env({ CNI_IFNAME: "" }), stdin: conf() }), 4, /\[CNI_IFNAME\]/],
    ["missing CNI_PATH", () => ({ env: env({ CNI_PATH: "" }), stdin: conf() }), 4, /\[CNI_PATH\]/],
    ["container ID with /", () => ({ env: env({ CNI_CONTAINERID: "a/b" }), stdin: conf() }), 4, /containerID/],
    ["container ID with a space", () => ({ env: env({ CNI_CONTAINERID: "a b" }), stdin: conf() }), 4, /containerID/],
    [
      "container ID with a leading -",
      () => ({ env: env({ CNI_CONTAINERID: "-rf" }), stdin: conf() }),
      4,
      /containerID/,
    ],
    ["ifname of 16 bytes", () => ({ env: env({ CNI_IFNAME: "a".repeat(16) }), stdin: conf() }), 4, /too long/],
    ["ifname .", () => ({ env: env({ CNI_IFNAME: "." }), stdin: conf() }), 4],
    ["ifname ..", () => ({ env: env({ CNI_IFNAME: ".." }), stdin: conf() }), 4],
    ["ifname with /", () => ({ env: env({ CNI_IFNAME: "a/b" }), stdin: conf() }), 4],
    ["ifname with whitespace", () => ({ env: env({ CNI_IFNAME: "eth 0" }), stdin: conf() }), 4],
    [
      "unsupported cniVersion",
      () => ({ env: env(), stdin: conf({ cniVersion: "9.9.9" }) }),
      1,
      /incompatible CNI versions/,
    ],
    ["network name with /", () => ({ env: env(), stdin: conf({ name: "a/b" }) }), 7],
    ["network name ..", () => ({ env: env(), stdin: conf({ name: ".." }) }), 7],
    ["network name with ../", () => ({ env: env(), stdin: conf({ name: "../../etc" }) }), 7],
    ["CHECK at 0.3.1", () => ({ env: env({ CNI_COMMAND: "CHECK" }), stdin: conf({ cniVersion: "0.3.1" }) }), 1],
    ["GC at 1.0.0", () => ({ env: env({ CNI_COMMAND: "GC" }), stdin: conf() }), 1],
    [
      "CNI_NETNS is the plugin's own namespace",
      () => ({ env: env({ CNI_NETNS: "/proc/self/ns/net" }), stdin: conf() }),
      8,
    ],
    ["CNI_NETNS is a regular file", () => ({ env: env({ CNI_NETNS: "/etc/hostname" }), stdin: conf() }), 4],
    [
      "CNI_NETNS does not exist",
      () => ({ env: env({ CNI_NETNS: "/var/run/netns/cni-ts-no-such-ns" }), stdin: conf() }),
      3,
    ],
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
      const r = runExe(
        join(optBin, p),
        { CNI_COMMAND: "VERSION", NODE_OPTIONS: `--require ${hook}` },
        '{"cniVersion":"1.0.0"}',
      );
      expect(r.status).toBe(0);
      expect(r.json?.cniVersion).toBe("1.0.0");
    }
    const person = runExe(join(optBin, "bridge"), { NODE_OPTIONS: `--require ${hook}` });
    expect(person.status).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });
});

// A plugin runs as root in whatever directory the runtime runs in, with the runtime's environment: neither may
// configure the executable. (What does act before our code is listed in docs/reliability.md and proved by build.mjs.)
describe("the working directory and the Node.js variables change nothing", () => {
  function setup() {
    const dir = sandbox.tmpdir("cwd");
    const marker = join(dir, "hook-ran");
    const hook = join(dir, "hook.cjs");
    writeFileSync(
      hook,
      `require("fs").writeFileSync(${JSON.stringify(marker)}, "ran"); process.stdout.write("INJECTED");\n`,
    );
    const cwd = join(dir, "cwd");
    mkdirSync(cwd);
    // Autoloaded, each would show: .env sets CNI_COMMAND, bunfig.toml preloads the hook, the JSON files do not parse.
    writeFileSync(
      join(cwd, ".env"),
      `CNI_COMMAND=VERSION\nBUN_OPTIONS=--preload ${hook}\nNODE_OPTIONS=--require ${hook}\n`,
    );
    writeFileSync(join(cwd, "bunfig.toml"), `preload = [${JSON.stringify(hook)}]\n`);
    writeFileSync(join(cwd, "package.json"), `{ "type": "module", "imports": { "#x": "./x.js" }, `);
    writeFileSync(join(cwd, "tsconfig.json"), `{ "compilerOptions": { "paths": `);
    return { dir, marker, hook, cwd };
  }
  const run = (file: string, env: Record<string, string>, cwd: string, stdin = "", args: string[] = []) =>
    spawnSync(file, args, { env: { PATH: toolPath(), ...env }, cwd, input: stdin, encoding: "utf8", timeout: 60_000 });

  it(".env, bunfig.toml (with a preload), package.json and tsconfig.json in the working directory are not read", () => {
    const { marker, cwd } = setup();
    for (const p of PLUGINS) {
      const r = run(join(optBin, p), { CNI_COMMAND: "VERSION" }, cwd, '{"cniVersion":"1.0.0"}');
      expect([r.status, r.stderr]).toEqual([0, ""]);
      expect(JSON.parse(r.stdout)).toEqual({ cniVersion: "1.0.0", supportedVersions: versionsOf(p) });
      // Without CNI_COMMAND a plugin prints its about text; a loaded .env would have made it answer VERSION.
      const person = run(join(optBin, p), {}, cwd);
      expect([person.status, person.stdout]).toEqual([0, ""]);
      expect(person.stderr).toContain(p);
    }
    expect(existsSync(marker)).toBe(false);
  });

  const inert: Array<[string, (dir: string, hook: string) => Record<string, string>]> = [
    ["NODE_OPTIONS=--require", (_d, hook) => ({ NODE_OPTIONS: `--require ${hook}` })],
    ["NODE_COMPILE_CACHE", (d) => ({ NODE_COMPILE_CACHE: join(d, "cache") })],
    ["NODE_REPL_EXTERNAL_MODULE", (_d, hook) => ({ NODE_REPL_EXTERNAL_MODULE: hook })],
    ["NODE_CHANNEL_FD=3 with NODE_UNIQUE_ID=1", () => ({ NODE_CHANNEL_FD: "3", NODE_UNIQUE_ID: "1" })],
    ["NODE_V8_COVERAGE", (d) => ({ NODE_V8_COVERAGE: join(d, "coverage") })],
    ["NODE_REDIRECT_WARNINGS", (d) => ({ NODE_REDIRECT_WARNINGS: join(d, "warnings") })],
    [
      "NODE_DEBUG and NODE_DEBUG_NATIVE",
      () => ({ NODE_DEBUG: "child_process,fs,net", NODE_DEBUG_NATIVE: "SEA,MKSNAPSHOT" }),
    ],
    ["JSC_dumpOptions (JSC's own prefix)", () => ({ JSC_dumpOptions: "1" })],
  ];
  it.each(inert)("%s: same answer, nothing on stderr, nothing written, no hook ran", (_name, make) => {
    const { dir, marker, hook } = setup();
    const before = readdirSync(dir).sort();
    for (const p of PLUGINS) {
      const r = run(join(optBin, p), { CNI_COMMAND: "VERSION", ...make(dir, hook) }, dir, '{"cniVersion":"0.4.0"}');
      expect([r.status, r.stderr]).toEqual([0, ""]);
      expect(JSON.parse(r.stdout)).toEqual({ cniVersion: "0.4.0", supportedVersions: versionsOf(p) });
    }
    expect(readdirSync(dir).sort()).toEqual(before);
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
