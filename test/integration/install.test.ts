// `cni-ts install`: into a temporary directory standing in for /opt/cni/bin.
import { copyFileSync, existsSync, lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { DIST_BIN, PLUGINS, Sandbox, requireBuilt, runExe, toolPath } from "./helpers.js";

const sandbox = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sandbox.cleanup());

/** The install CLI prints text, not JSON: run it plainly, with the clean environment runtimes use. */
function cli(args: string[]) {
  const r = spawnSync(join(DIST_BIN, "cni-ts"), args, { env: { PATH: toolPath() }, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const install = (dir: string, ...extra: string[]) => cli(["install", "--dir", dir, ...extra]);

describe("cni-ts install", () => {
  it("installs the executable and links every plugin name to it; each name works by full path", () => {
    const dir = sandbox.tmpdir("optbin");
    const r = install(dir);
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(join(dir, "cni-ts")).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "cni-ts")).size).toBe(statSync(join(DIST_BIN, "cni-ts")).size);
    for (const p of PLUGINS) {
      expect(readlinkSync(join(dir, p))).toBe("cni-ts");
      const v = runExe(join(dir, p), { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
      expect(v.json?.cniVersion).toBe("1.0.0");
    }
    expect(readdirSync(dir).sort()).toEqual(["cni-ts", ...PLUGINS].sort());
  });

  it("is repeatable: installing over our own install is fine and leaves no temporary file", () => {
    const dir = sandbox.tmpdir("again");
    expect(install(dir).status).toBe(0);
    expect(install(dir).status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["cni-ts", ...PLUGINS].sort());
  });

  it("refuses to replace another plugin of the same name, changing nothing; --force replaces it", () => {
    const dir = sandbox.tmpdir("foreign");
    copyFileSync("/usr/lib/cni/bridge", join(dir, "bridge"));
    const before = statSync(join(dir, "bridge")).size;
    const r = install(dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("refusing to replace");
    expect(lstatSync(join(dir, "bridge")).isSymbolicLink()).toBe(false);
    expect(statSync(join(dir, "bridge")).size).toBe(before);
    expect(existsSync(join(dir, "cni-ts"))).toBe(false);
    const f = install(dir, "--force");
    expect(f.status, f.stderr).toBe(0);
    expect(f.stdout).toContain(`replaced ${join(dir, "bridge")}`);
    expect(readlinkSync(join(dir, "bridge"))).toBe("cni-ts");
  });

  it("a missing directory or an unknown flag is an error", () => {
    expect(install("/nonexistent/cni-ts-dir").status).toBe(1);
    expect(cli(["install", "--bogus"]).status).toBe(2);
  });
});
