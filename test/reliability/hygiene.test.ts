// Environment hygiene: the variables that steer a Node.js process (NODE_OPTIONS and friends) change nothing in a real
// ADD/CHECK/DEL/GC of bridge + host-local: same result shape, exactly one JSON value on stdout, no code injected, no
// file written where they point. And a symlink planted in the data dir is refused (code 7), never followed.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeLab, type Conf } from "../integration/bridge-lab.js";
import { requireBuilt, Sandbox, toolPath } from "../integration/helpers.js";
import { diffState, nodeState, podLinks, type ProcResult, quietOk, report, runIn } from "./lib.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => {
  sb.cleanup();
  // helpers.toolPath() makes a directory per worker that no one removes; this file's worker is its only user.
  rmSync(toolPath(), { recursive: true, force: true });
});

/** A tree listing (paths, and file contents) of a directory, to prove nothing was written there. */
function listing(dir: string): string[] {
  if (!existsSync(dir)) return ["(absent)"];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.push(`${p}/`);
        walk(p);
      } else out.push(`${p} ${e.isFile() ? JSON.stringify(readFileSync(join(dir, p), "utf8")) : "(special)"}`);
    }
  };
  walk("");
  return out.sort();
}

/** The result with what legitimately differs between two ADDs (MACs, addresses, names) blanked out. */
function shape(out: Record<string, any> | undefined): unknown {
  return JSON.parse(
    JSON.stringify(out ?? null)
      .replace(/"([0-9a-f]{2}:){5}[0-9a-f]{2}"/g, '"MAC"')
      .replace(/veth[0-9a-f]{8}/g, "VETH")
      .replace(/\/var\/run\/netns\/[^"]+/g, "NETNS")
      .replace(/10\.96\.0\.\d+\/24/g, "V4")
      .replace(/fd96::[0-9a-f]+\/64/g, "V6"),
  );
}

describe("environment hygiene", () => {
  it("NODE_OPTIONS, NODE_EXTRA_CA_CERTS, NODE_PATH, NODE_DEBUG, UV_THREADPOOL_SIZE and friends change nothing", {
    timeout: 120_000,
  }, async () => {
    const lab = new BridgeLab(sb, "envh");
    const conf: Conf = lab.conf(
      {
        isGateway: true,
        ipMasq: true,
        ipMasqBackend: "nftables",
        ipam: { ...lab.hostLocal(["10.96.0.0/24", "fd96::/64"]), gcGraceSeconds: 0 },
      },
      "1.1.0",
    );
    const traps = sb.tmpdir("env-traps");
    const marker = join(traps, "hook-ran");
    const hook = join(traps, "hook.cjs");
    writeFileSync(
      hook,
      `require("fs").writeFileSync(${JSON.stringify(marker)}, "injected"); process.stdout.write("INJECTED\\n");\n`,
    );
    const mjsHook = join(traps, "hook.mjs");
    writeFileSync(
      mjsHook,
      `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "injected (import)");\n`,
    );
    const modules = join(traps, "node_modules");
    mkdirSync(join(modules, "fs"), { recursive: true });
    writeFileSync(join(modules, "fs", "index.js"), `require("child_process").execSync("touch ${marker}");\n`);
    const written = ["report"].map((d) => join(traps, d));
    for (const d of written) mkdirSync(d);
    // Variables a Node.js process honours; the executable is built to ignore them (execArgvExtension "none" and
    // friends), and at most a warning on stderr is allowed (NODE_EXTRA_CA_CERTS naming a missing file says so there).
    const hostile: Record<string, string> = {
      NODE_OPTIONS: `--require ${hook} --import ${mjsHook} --max-old-space-size=8 --report-on-signal --report-directory=${join(traps, "report")} --trace-warnings`,
      NODE_EXTRA_CA_CERTS: join(traps, "missing-ca.pem"),
      NODE_PATH: modules,
      NODE_DEBUG: "child_process,fs,net,module,esm,timer,stream,http",
      NODE_DEBUG_NATIVE: "SEA,MKSNAPSHOT",
      UV_THREADPOOL_SIZE: "1",
      NODE_PENDING_DEPRECATION: "1",
      NODE_ICU_DATA: join(traps, "no-icu"),
      NODE_PRESERVE_SYMLINKS: "1",
      NODE_TLS_REJECT_UNAUTHORIZED: "0",
      NODE_NO_WARNINGS: "0",
      FORCE_COLOR: "3",
      NODE_SEA_EXEC_ARGV: `--require ${hook}`,
      NODE_V8_OPTIONS: "--stack-size=10",
      NODE_USE_ENV_PROXY: "1",
      HTTPS_PROXY: "http://192.0.2.1:1",
    };

    // The same attachment twice: clean environment, then the hostile one.
    const pod = lab.pod("p");
    const warm = await runIn(lab, "ADD", conf, { pod });
    expect(warm.status, warm.stdout + warm.stderr).toBe(0);
    expect(quietOk(await runIn(lab, "DEL", lab.withPrev(conf, warm.out), { pod }))).toBe(true);
    const before = nodeState(lab);

    const clean = await runIn(lab, "ADD", conf, { pod });
    expect(clean.status, clean.stdout + clean.stderr).toBe(0);
    expect(quietOk(await runIn(lab, "DEL", lab.withPrev(conf, clean.out), { pod }))).toBe(true);

    const calls: Record<string, ProcResult> = {};
    calls.ADD = await runIn(lab, "ADD", conf, { pod, env: hostile });
    calls.CHECK = await runIn(lab, "CHECK", lab.withPrev(conf, calls.ADD.out), { pod, env: hostile });
    calls.GC = await runIn(
      lab,
      "GC",
      { ...conf, "cni.dev/valid-attachments": [{ containerID: `ctr-${pod.name}`, ifname: "eth0" }] },
      { env: hostile },
    );
    calls.STATUS = await runIn(lab, "STATUS", conf, { env: hostile });
    calls.VERSION = await runIn(lab, "VERSION", conf, { env: hostile });
    calls.DEL = await runIn(lab, "DEL", lab.withPrev(conf, calls.ADD.out), { pod, env: hostile });
    const after = nodeState(lab);

    report("environment-hygiene", {
      variables: Object.keys(hostile).length,
      verbs: Object.keys(calls),
      stderrBytes: Object.fromEntries(Object.entries(calls).map(([k, r]) => [k, r.stderr.length])),
      cleanStderrBytes: clean.stderr.length,
      hookRan: existsSync(marker),
    });
    expect(calls.ADD.status, calls.ADD.stdout + calls.ADD.stderr).toBe(0);
    expect(calls.ADD.jsonError).toBeUndefined();
    expect(calls.ADD.stdout.trim().startsWith("{")).toBe(true);
    expect(shape(calls.ADD.out)).toEqual(shape(clean.out));
    expect(JSON.stringify(calls.ADD.out, null, 4)).toBe(calls.ADD.stdout);
    for (const v of ["CHECK", "GC", "STATUS", "DEL"])
      expect([v, calls[v]!.status, calls[v]!.stdout]).toEqual([v, 0, ""]);
    expect(calls.VERSION.out).toEqual({
      cniVersion: "1.1.0",
      supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
    // Nothing ran that the variables asked for, and nothing was written where they point.
    expect(existsSync(marker)).toBe(false);
    for (const d of written) expect(listing(d)).toEqual([]);
    // stderr is free-form log output (SPEC): NODE_DEBUG and NODE_DEBUG_NATIVE do fill it (reported, not asserted).
    expect(diffState(before, after, ["index"])).toEqual([]);
    expect(podLinks(pod.name)).toEqual([]);
  });
});

// Variables Node.js acts on at bootstrap, before any of our code runs (in the Node build, execArgvExtension "none"
// stops NODE_OPTIONS, not these; lib/runtime.ts undoes the first two there). The executables under test are the Bun
// build, on which none of them acts (docs/reliability.md, bug 6): a real ADD with each must be the same as without.
type EnvCase = [string, string, (dir: string) => Record<string, string>, (r: ProcResult, dir: string) => void];
const nodeBootstrap: EnvCase[] = [
  [
    "NODE_V8_COVERAGE",
    "writes nothing in the directory it names",
    (d) => ({ NODE_V8_COVERAGE: join(d, "coverage") }),
    (_r, d) => expect(listing(join(d, "coverage"))).toEqual(["(absent)"]),
  ],
  [
    "NODE_REDIRECT_WARNINGS",
    "appends nothing to the file it names (a warning is due when NODE_USE_ENV_PROXY and HTTPS_PROXY load http and NODE_DEBUG names it)",
    (d) => ({
      NODE_REDIRECT_WARNINGS: join(d, "warnings"),
      NODE_DEBUG: "http",
      NODE_USE_ENV_PROXY: "1",
      HTTPS_PROXY: "http://192.0.2.1:1",
    }),
    (_r, d) => expect(listing(d).filter((l) => l.startsWith("warnings"))).toEqual([]),
  ],
  [
    "NODE_COMPILE_CACHE",
    "creates nothing in the directory it names",
    (d) => ({ NODE_COMPILE_CACHE: join(d, "cache") }),
    (_r, d) => expect(listing(join(d, "cache"))).toEqual(["(absent)"]),
  ],
  [
    "NODE_REPL_EXTERNAL_MODULE",
    "does not stop the plugin from answering",
    (d) => ({ NODE_REPL_EXTERNAL_MODULE: join(d, "hook.cjs") }),
    (r) => expect([r.status, r.jsonError]).toEqual([0, undefined]),
  ],
  [
    "NODE_CHANNEL_FD",
    "=3 with NODE_UNIQUE_ID=1 does not crash the plugin",
    () => ({ NODE_CHANNEL_FD: "3", NODE_UNIQUE_ID: "1" }),
    (r) => expect([r.status, r.jsonError]).toEqual([0, undefined]),
  ],
];

async function addWithEnv(name: string, env: EnvCase[2], check: EnvCase[3]): Promise<void> {
  const lab = new BridgeLab(sb, "envbug");
  const dir = sb.tmpdir("envbug");
  writeFileSync(join(dir, "hook.cjs"), "process.stdout.write('INJECTED')\n");
  spawnSync("mkfifo", [join(dir, "fifo")]);
  const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.99.0.0/24"]) }, "1.1.0");
  const pod = lab.pod("p");
  const r = await runIn(lab, "ADD", conf, { pod, env: env(dir), killAfterMs: 3000 });
  expect(quietOk(await runIn(lab, "DEL", conf, { pod }))).toBe(true);
  const written = listing(dir).filter((l) => !/^(hook\.cjs|fifo)/.test(l));
  report("environment-variable", {
    variable: name,
    status: r.status,
    signal: r.signal,
    stdout: r.stdout.slice(0, 60),
    stderr: r.stderr.slice(0, 160),
    written: written.length,
    sample: written.slice(0, 2).map((w) => w.slice(0, 120)),
  });
  expect(r.status, r.stderr).toBe(0);
  check(r, dir);
}

describe("environment hygiene: variables Node acts on at bootstrap", () => {
  for (const [name, what, env, check] of nodeBootstrap) {
    it(`${name} ${what}`, { timeout: 30_000 }, () => addWithEnv(name, env, check));
  }
});

describe("environment hygiene: files named by the environment", () => {
  it("NODE_EXTRA_CA_CERTS naming a FIFO nobody writes to does not hang the plugin (TLS is never initialised)", {
    timeout: 30_000,
  }, async () => {
    const lab = new BridgeLab(sb, "cafifo");
    const dir = sb.tmpdir("cafifo");
    spawnSync("mkfifo", [join(dir, "fifo")]);
    const conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.99.1.0/24"]) }, "1.1.0");
    const pod = lab.pod("p");
    const r = await runIn(lab, "ADD", conf, {
      pod,
      env: { NODE_EXTRA_CA_CERTS: join(dir, "fifo") },
      killAfterMs: 10_000,
    });
    expect(quietOk(await runIn(lab, "DEL", conf, { pod }))).toBe(true);
    expect([r.signal, r.status, r.jsonError], r.stderr).toEqual([null, 0, undefined]);
  });
});

describe("symlinks planted in the data dir", () => {
  it.each([
    ["<dataDir>/<name>", (data: string, net: string) => join(data, net)],
    ["<dataDir>/.cni-ts", (data: string) => join(data, ".cni-ts")],
    ["<dataDir>/.cni-ts/<name>", (data: string, net: string) => join(data, ".cni-ts", net)],
    ["<dataDir>/.cni-ts/<name>/attachments", (data: string, net: string) => join(data, ".cni-ts", net, "attachments")],
  ] as const)(
    "a symlink at %s: bridge ADD is code 7, nothing is written in its target, the node is unchanged",
    { timeout: 60_000 },
    async (_where, at) => {
      const lab = new BridgeLab(sb, "symlink");
      const conf: Conf = lab.conf(
        {
          isGateway: true,
          ipMasq: true,
          ipMasqBackend: "nftables",
          ipam: lab.hostLocal(["10.97.0.0/24", "fd97::/64"]),
        },
        "1.1.0",
      );
      const pod = lab.pod("p");
      // Warm-up on another network name, so the bridge exists; then plant the link for ours.
      const other = { ...conf, name: "warmnet" };
      const w = await runIn(lab, "ADD", other, { pod });
      expect(w.status, w.stdout + w.stderr).toBe(0);
      expect(quietOk(await runIn(lab, "DEL", lab.withPrev(other, w.out), { pod }))).toBe(true);
      const link = at(lab.dataDir, lab.network);
      const parent = join(link, "..");
      mkdirSync(parent, { recursive: true });
      const target = sb.tmpdir("symlink-target");
      writeFileSync(join(target, "keep"), "untouched\n");
      if (existsSync(link)) spawnSync("rm", ["-rf", link]);
      symlinkSync(target, link);
      const before = nodeState(lab);
      const targetBefore = listing(target);

      const r = await runIn(lab, "ADD", conf, { pod });
      expect([r.status, r.out?.code], r.stdout + r.stderr).toEqual([1, 7]);
      // DEL succeeds (the runtime must be able to finish), releasing nothing, and says so on stderr.
      const d = await runIn(lab, "DEL", conf, { pod });
      expect(quietOk(d), d.stdout + d.stderr).toBe(true);
      const g = await runIn(lab, "GC", { ...conf, "cni.dev/valid-attachments": [] });

      expect(listing(target)).toEqual(targetBefore);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(g.out?.code, g.stdout + g.stderr).toBe(7);
      // Nothing at all differs: the refused ADD did not even create an empty <dataDir>/<name>/ (bug 8, fixed).
      expect(diffState(before, nodeState(lab))).toEqual([]);
      expect(podLinks(pod.name)).toEqual([]);
      report("symlink", { at: _where, addCode: r.out?.code, gcCode: g.out?.code ?? 0, targetUntouched: true });
    },
  );

  it("a symlink planted at <dataDir>/<name>/lock is not followed to create a file by GC", {
    timeout: 60_000,
  }, async () => {
    const lab = new BridgeLab(sb, "locklink");
    const conf: Conf = lab.conf(
      { isGateway: true, ipam: { ...lab.hostLocal(["10.98.0.0/24"]), gcGraceSeconds: 0 } },
      "1.1.0",
    );
    const pod = lab.pod("p");
    const a = await runIn(lab, "ADD", conf, { pod });
    expect(a.status, a.stdout + a.stderr).toBe(0);
    expect(quietOk(await runIn(lab, "DEL", lab.withPrev(conf, a.out), { pod }))).toBe(true);
    const lock = join(lab.dataDir, lab.network, "lock");
    spawnSync("rm", ["-f", lock]);
    const victim = join(sb.tmpdir("lock-victim"), "created-by-plugin");
    symlinkSync(victim, lock);
    const g = await runIn(lab, "GC", { ...conf, "cni.dev/valid-attachments": [] });
    report("symlink-lock", { gcStatus: g.status, gcCode: g.out?.code, victimCreated: existsSync(victim) });
    expect(existsSync(victim)).toBe(false);
  });
});
