// host-local's file primitives (files.ts) and attachment claims (claim.ts) on a temporary directory: a planted link
// is never written through, a special file never blocks a read, a claim is exclusive while its holder lives.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import {
  CLAIM_MAX_AGE_MS,
  claimAttachment,
  isLive,
  processStart,
  readClaim,
  releaseClaim,
  removeIfStale,
} from "../../ipam/host-local/claim.js";
import { NotRegularFileError, createExclusive, readRegular, writeExclusive } from "../../ipam/host-local/files.js";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cni-ts-files-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const victim = () => {
  const v = join(dir, "victim");
  writeFileSync(v, "precious");
  return v;
};
const mkfifo = (p: string) => expect(spawnSync("mkfifo", [p]).status).toBe(0);

describe("files.ts", () => {
  it("writeExclusive refuses a link planted at its name and leaves the link's target as it was", () => {
    const v = victim();
    symlinkSync(v, join(dir, "planted"));
    expect(() => writeExclusive(join(dir, "planted"), "index json")).toThrow(
      expect.objectContaining({ code: "EEXIST" }),
    );
    expect(readFileSync(v, "utf8")).toBe("precious");
    // A dangling link too: O_EXCL does not create its target.
    symlinkSync(join(dir, "not-yet"), join(dir, "dangling"));
    expect(() => writeExclusive(join(dir, "dangling"), "x")).toThrow(expect.objectContaining({ code: "EEXIST" }));
    expect(existsSync(join(dir, "not-yet"))).toBe(false);
  });

  it("createExclusive writes a new file of a random name, mode 0600, each time another", () => {
    const names = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const p = createExclusive(dir, `n${i}`);
      expect(readFileSync(p, "utf8")).toBe(`n${i}`);
      expect(p).toMatch(/\/[0-9a-f]{24}\.tmp$/);
      names.add(p);
    }
    expect(names.size).toBe(50);
  });

  it("readRegular reads a regular file; refuses a FIFO, a directory and a link without blocking", () => {
    writeFileSync(join(dir, "f"), "10.1.0.2");
    expect(readRegular(join(dir, "f")).text).toBe("10.1.0.2");
    mkfifo(join(dir, "fifo"));
    expect(() => readRegular(join(dir, "fifo"))).toThrow(NotRegularFileError);
    expect(() => readRegular(join(dir, "fifo"))).toThrow(/FIFO/);
    mkdirSync(join(dir, "d"));
    expect(() => readRegular(join(dir, "d"))).toThrow(/directory/);
    symlinkSync(join(dir, "f"), join(dir, "link"));
    expect(() => readRegular(join(dir, "link"))).toThrow(/symbolic link/);
    // Following is for operator-given paths (resolvConf): a link to a FIFO is still refused.
    expect(readRegular(join(dir, "link"), { follow: true }).text).toBe("10.1.0.2");
    symlinkSync(join(dir, "fifo"), join(dir, "link-fifo"));
    expect(() => readRegular(join(dir, "link-fifo"), { follow: true })).toThrow(/FIFO/);
    expect(() => readRegular("/dev/zero", { follow: true, maxBytes: 10 })).toThrow(/character device/);
    expect(() => readRegular(join(dir, "missing"))).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });

  it("readRegular with maxBytes refuses a larger file", () => {
    writeFileSync(join(dir, "big"), "x".repeat(100));
    expect(() => readRegular(join(dir, "big"), { maxBytes: 99 })).toThrow(RangeError);
    expect(readRegular(join(dir, "big"), { maxBytes: 100 }).text).toHaveLength(100);
  });
});

describe("claim.ts", () => {
  const noLock = async <T>(fn: () => Promise<T>) => fn();
  const tmp = () => {
    mkdirSync(join(dir, "tmp"), { recursive: true });
    return join(dir, "tmp");
  };

  it("processStart names this process; a pid that does not exist has none", () => {
    expect(processStart(process.pid)).toMatch(/^\d+$/);
    expect(processStart(0)).toBeUndefined();
    expect(processStart(2 ** 22 + 7)).toBeUndefined();
  });

  it("a claim lives while its holder's pid has the same start time and it is young enough", () => {
    const h = { token: "t", pid: 42, start: "100", time: 1_000 };
    expect(isLive(h, 2_000, () => "100")).toBe(true);
    expect(isLive(h, 2_000, () => "101")).toBe(false); // pid reused
    expect(isLive(h, 2_000, () => undefined)).toBe(false); // gone
    expect(isLive(h, 1_000 + CLAIM_MAX_AGE_MS, () => "100")).toBe(false); // hung for ten minutes
  });

  it("is exclusive: a second claim of a live holder is 102; released, it can be claimed again", async () => {
    const file = join(dir, "c@eth0");
    const me = await claimAttachment(file, tmp(), noLock, "c/eth0");
    const second = claimAttachment(file, tmp(), noLock, "c/eth0");
    await expect(second).rejects.toBeInstanceOf(CniError);
    await expect(second).rejects.toMatchObject({ code: 102 });
    releaseClaim(file, me);
    expect(existsSync(file)).toBe(false);
    const again = await claimAttachment(file, tmp(), noLock, "c/eth0");
    expect(readClaim(file)).toEqual(again);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  });

  it("a stale claim (dead holder), or garbage in its place, is removed under the lock and the claim taken", async () => {
    const file = join(dir, "c@eth0");
    writeFileSync(file, JSON.stringify({ token: "dead", pid: 2 ** 22 + 7, start: "1", time: Date.now() }));
    let locks = 0;
    const counting = async <T>(fn: () => Promise<T>) => {
      locks++;
      return fn();
    };
    const me = await claimAttachment(file, tmp(), counting, "c/eth0");
    expect(locks).toBe(1);
    expect(readClaim(file)).toEqual(me);
    rmSync(file);
    mkfifo(file);
    const me2 = await claimAttachment(file, tmp(), counting, "c/eth0");
    expect(readClaim(file)).toEqual(me2);
    // removeIfStale never removes a live claim.
    expect(removeIfStale(file)).toBe(false);
  });

  it("releaseClaim leaves a claim that is not its own", async () => {
    const file = join(dir, "c@eth0");
    const me = await claimAttachment(file, tmp(), noLock, "c/eth0");
    releaseClaim(file, { ...me, token: "other" });
    expect(readClaim(file)).toEqual(me);
  });
});
