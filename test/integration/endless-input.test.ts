// A stdin that never ends (`sleep 60 | bridge`, a runtime that forgets to close it): every verb answers code 5 naming
// its deadline (CNI_TS_STDIN_TIMEOUT_MS, default 10 s) and changes nothing; VERSION still answers. Both kinds of
// stdin a plugin gets: a pipe (what Go runtimes give, here a FIFO the test keeps open for writing) and a socket
// (what Node's child_process gives). The built executables, run inside a node namespace of this run.
//
// (The reference 1.1.1 waits for end of file for ever.)
import { spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inNodeArgv } from "../../sandbox/plugin.js";
import { BridgeLab, type CniCall, type Conf, type Ns } from "./bridge-lab.js";
import { requireBuilt, Sandbox, sh } from "./helpers.js";

const sb = new Sandbox();
let lab: BridgeLab;
let pod: Ns;
let conf: Conf;
beforeAll(() => {
  requireBuilt();
  lab = new BridgeLab(sb, "endless");
  pod = lab.pod();
  conf = lab.conf({ isGateway: true, ipam: lab.hostLocal(["10.64.0.0/24"]) }, "1.1.0");
  // Warm up: the bridge exists, so "before" and "after" compare exactly.
  const w = lab.pod("warm");
  lab.add(conf, { pod: w });
  lab.cni("DEL", conf, { pod: w });
});
afterAll(() => sb.cleanup());

function argv(plugin: string, cmd: string, extra: Record<string, string>): string[] {
  return inNodeArgv(lab.node.name, join(lab.bin, plugin), lab.env(cmd, { pod, containerID: "endless", env: extra }));
}

const parse = (status: number | null, stdout: string, stderr: string): CniCall => ({
  status,
  stdout,
  stderr,
  out: stdout.trim() ? (JSON.parse(stdout) as Record<string, any>) : undefined,
  ms: 0,
});

/** stdin a FIFO that this test holds open for writing (so no end of file ever comes), with `written` in it. */
function overPipe(plugin: string, cmd: string, written: string, extra: Record<string, string> = {}): CniCall {
  const fifo = join(sb.tmpdir("fifo"), "stdin");
  sh("mkfifo", [fifo]);
  const writer = openSync(fifo, "r+");
  const reader = openSync(fifo, "r");
  try {
    if (written) writeSync(writer, written);
    const r = spawnSync("ip", argv(plugin, cmd, extra), {
      stdio: [reader, "pipe", "pipe"],
      encoding: "utf8",
      timeout: 60_000,
    });
    return parse(r.status, r.stdout ?? "", r.stderr ?? "");
  } finally {
    closeSync(reader);
    closeSync(writer);
  }
}

/** stdin a socket that this test never shuts down. */
function overSocket(
  plugin: string,
  cmd: string,
  written: string,
  extra: Record<string, string> = {},
): Promise<CniCall> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", argv(plugin, cmd, extra), { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (status) => {
      child.stdin.destroy();
      resolve(parse(status, stdout, stderr));
    });
    child.stdin.on("error", () => {});
    if (written) child.stdin.write(written);
  });
}

const DEADLINE = { CNI_TS_STDIN_TIMEOUT_MS: "1000" };
const expectDeadline = (c: CniCall, ms: number, what: string) => {
  expect([c.status, c.out?.code], `${what}: ${c.stdout}`).toEqual([1, 5]);
  expect(c.out?.msg, what).toBe(`network configuration on stdin not complete after ${ms} ms`);
  expect(c.out?.details, what).toMatch(/CNI_TS_STDIN_TIMEOUT_MS/);
};

describe("a stdin that never ends", () => {
  it.each(["ADD", "CHECK", "DEL", "GC", "STATUS"])(
    "bridge %s over a pipe, nothing written: 5 after the deadline, nothing changed",
    (cmd) => {
      const before = lab.snapshot();
      expectDeadline(overPipe("bridge", cmd, "", DEADLINE), 1000, cmd);
      expect(lab.snapshot()).toEqual(before);
    },
  );

  it("bridge ADD over a pipe with the whole config written but never closed: 5 (the config is not taken half-read)", () => {
    const before = lab.snapshot();
    expectDeadline(overPipe("bridge", "ADD", JSON.stringify(conf), DEADLINE), 1000, "ADD");
    expect(lab.snapshot()).toEqual(before);
  });

  it.each(["host-local", "loopback", "routes", "portmap"])(
    "%s ADD over a socket: 5 after the deadline",
    async (plugin) => {
      const before = lab.snapshot();
      expectDeadline(await overSocket(plugin, "ADD", '{"cniVersion":"1.0.0",', DEADLINE), 1000, plugin);
      expect(lab.snapshot()).toEqual(before);
    },
  );

  it("the default deadline is 10 s", () => {
    expectDeadline(overPipe("bridge", "ADD", ""), 10_000, "ADD");
  });

  it("a malformed CNI_TS_STDIN_TIMEOUT_MS is refused (4)", () => {
    for (const v of ["10s", "50", "600001", "-1"]) {
      const c = overPipe("bridge", "ADD", "", { CNI_TS_STDIN_TIMEOUT_MS: v });
      expect([c.status, c.out?.code], v).toEqual([1, 4]);
      expect(c.out?.msg).toMatch(/^CNI_TS_STDIN_TIMEOUT_MS must be/);
    }
  });

  it("VERSION still answers, with what arrived", async () => {
    const p = overPipe("bridge", "VERSION", '{"cniVersion":"0.4.0"}', DEADLINE);
    expect([p.status, JSON.parse(p.stdout).cniVersion]).toEqual([0, "0.4.0"]);
    const s = await overSocket("bridge", "VERSION", "");
    expect([s.status, JSON.parse(s.stdout).cniVersion]).toEqual([0, "1.1.0"]);
  });

  it("a config that is written and closed still works over both: ADD over a socket, DEL over a pipe", () => {
    const r = spawnSync("ip", argv("bridge", "ADD", DEADLINE), {
      input: JSON.stringify(conf),
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stdout).toBe(0);
    const del = spawnSync(
      "sh",
      ["-c", 'printf %s "$0" | exec "$@"', JSON.stringify(conf), "ip", ...argv("bridge", "DEL", DEADLINE)],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect([del.status, del.stdout]).toEqual([0, ""]);
    expect(lab.reservations()).toEqual([]);
  });
});
