// Delegation through CNI_PATH with small script delegates: lookup order, environment, results, errors, deadline.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { delegate, delegateTimeoutMs, findPlugin } from "../../lib/invoke.js";
import type { CmdContext } from "../../lib/skel.js";

const root = mkdtempSync(join(tmpdir(), "cni-ts-invoke-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function script(dir: string, name: string, body: string): string {
  mkdirSync(dir, { recursive: true });
  const f = join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
  return f;
}

const first = join(root, "first");
const second = join(root, "second");
script(
  second,
  "ipam",
  `cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.5.0.2/24","gateway":"10.5.0.1"}]}'`,
);
script(
  first,
  "echoenv",
  `cat >/dev/null; printf '{"cniVersion":"1.0.0","ips":[{"address":"10.6.0.2/24"}],"dns":{"domain":"%s-%s"}}' "$CNI_COMMAND" "$CNI_CONTAINERID"`,
);
script(
  first,
  "fails",
  `cat >/dev/null; echo '{"code":50,"msg":"no more addresses","details":"range 10.5.0.0/29"}'; exit 1`,
);
script(first, "silent", `cat >/dev/null; echo 'something broke' >&2; exit 1`);
script(first, "garbage", `cat >/dev/null; echo 'not json'`);
script(first, "hangs", `sleep 30`);
mkdirSync(join(first, "dironly"));

function ctx(path: string[]): CmdContext {
  return {
    command: "ADD",
    containerID: "ctr9",
    netns: "/var/run/netns/x",
    ifname: "eth0",
    args: new Map(),
    path,
    env: { PATH: process.env.PATH, CNI_COMMAND: "ADD", CNI_CONTAINERID: "ctr9" },
    config: { cniVersion: "1.0.0", name: "n", type: "t" },
    rawConfig: Buffer.from('{"cniVersion":"1.0.0","name":"n","type":"t"}'),
    version: "1.0.0",
  };
}

describe("findPlugin", () => {
  it("takes the first directory holding a regular file of that name", () => {
    expect(findPlugin("ipam", [first, second])).toBe(join(second, "ipam"));
    expect(findPlugin("echoenv", [second, first])).toBe(join(first, "echoenv"));
  });
  it("a directory of that name is not a plugin; absence names the path (code 7)", () => {
    expect(() => findPlugin("dironly", [first])).toThrow(/failed to find plugin "dironly" in path/);
  });
  it("refuses types that are paths", () => {
    expect(() => findPlugin("../first/echoenv", [second])).toThrow(CniError);
  });
});

describe("delegate", () => {
  it("ADD returns the parsed result", async () => {
    const r = await delegate("ipam", "ADD", ctx([first, second]));
    expect(r).toEqual({ ips: [{ address: "10.5.0.2/24", gateway: "10.5.0.1" }] });
  });
  it("passes the caller's environment with CNI_COMMAND replaced", async () => {
    const r = await delegate("echoenv", "ADD", ctx([first]));
    expect(r.dns).toEqual({ domain: "ADD-ctr9" });
    await expect(delegate("echoenv", "DEL", ctx([first]))).resolves.toBeUndefined();
  });
  it("a delegate's error object keeps its code, msg and details", async () => {
    const err = (await delegate("fails", "ADD", ctx([first])).catch((e: unknown) => e)) as CniError;
    expect(err).toBeInstanceOf(CniError);
    expect([err.code, err.message, err.details]).toEqual([50, "no more addresses", "range 10.5.0.0/29"]);
  });
  it("a delegate that fails without an error object reports its stderr", async () => {
    const err = (await delegate("silent", "DEL", ctx([first])).catch((e: unknown) => e)) as CniError;
    expect(err.code).toBe(999);
    expect(err.message).toContain("something broke");
  });
  it("garbage on stdout is a decoding failure (code 6)", async () => {
    const err = (await delegate("garbage", "ADD", ctx([first])).catch((e: unknown) => e)) as CniError;
    expect(err.code).toBe(6);
  });
  it("a delegate that hangs is killed at the deadline (code 11)", async () => {
    const err = (await delegate("hangs", "ADD", ctx([first]), { timeoutMs: 300 }).catch((e: unknown) => e)) as CniError;
    expect(err.code).toBe(11);
  });

  it("the deadline comes from CNI_TS_DELEGATE_TIMEOUT_MS in the caller's environment", async () => {
    const c = ctx([first]);
    const err = (await delegate("hangs", "ADD", { ...c, env: { ...c.env, CNI_TS_DELEGATE_TIMEOUT_MS: "300" } }).catch(
      (e: unknown) => e,
    )) as CniError;
    expect([err.code, err.message]).toEqual([11, "hangs did not answer within 300 ms"]);
  });
});

describe("delegateTimeoutMs", () => {
  it("is 60 s by default and takes whole milliseconds from 100 to 600000", () => {
    expect(delegateTimeoutMs({})).toBe(60_000);
    expect(delegateTimeoutMs({ CNI_TS_DELEGATE_TIMEOUT_MS: "" })).toBe(60_000);
    expect(delegateTimeoutMs({ CNI_TS_DELEGATE_TIMEOUT_MS: "100" })).toBe(100);
    expect(delegateTimeoutMs({ CNI_TS_DELEGATE_TIMEOUT_MS: "600000" })).toBe(600_000);
  });

  it.each(["99", "600001", "1.5", "-1", "1e4", " 500", "abc", "99999999"])("refuses %j with code 4", (v) => {
    expect(() => delegateTimeoutMs({ CNI_TS_DELEGATE_TIMEOUT_MS: v })).toThrow(expect.objectContaining({ code: 4 }));
  });
});
