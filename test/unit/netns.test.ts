// CNI_NETNS judged per verb (lib/netns): ADD and CHECK refuse what is not a namespace; DEL treats it as gone.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { netnsForDel, requireUsableNetns } from "../../lib/netns.js";

const dir = mkdtempSync(join(tmpdir(), "cni-ts-netns-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const empty = join(dir, "netns");
writeFileSync(empty, "");
const sub = join(dir, "sub");
mkdirSync(sub);

describe("requireUsableNetns", () => {
  it.each([
    ["an empty file (an unmounted namespace)", empty],
    ["a directory", sub],
    ["/dev/null", "/dev/null"],
  ])("%s: 4 for ADD/CHECK, 'not-netns' for DEL", (_, path) => {
    expect(() => requireUsableNetns(path, false)).toThrow(
      expect.objectContaining({ code: 4, message: expect.stringContaining("is not a network namespace") }),
    );
    expect(requireUsableNetns(path, true)).toBe("not-netns");
  });
  it("a missing path: 3 for ADD/CHECK, 'missing' for DEL", () => {
    expect(() => requireUsableNetns(join(dir, "gone"), false)).toThrow(expect.objectContaining({ code: 3 }));
    expect(requireUsableNetns(join(dir, "gone"), true)).toBe("missing");
  });
  it("our own namespace is 8 and a relative path 4, for every verb", () => {
    for (const forDel of [false, true]) {
      expect(() => requireUsableNetns("/proc/self/ns/net", forDel)).toThrow(expect.objectContaining({ code: 8 }));
      expect(() => requireUsableNetns("netns/x", forDel)).toThrow(expect.objectContaining({ code: 4 }));
    }
  });
});

describe("netnsForDel", () => {
  it("empty, missing and not-a-namespace are all 'gone'", () => {
    for (const p of ["", join(dir, "gone"), empty, sub, "/dev/null"]) expect(netnsForDel(p), p).toBe("gone");
  });
  it("still refuses our own namespace (8)", () => {
    expect(() => netnsForDel("/proc/self/ns/net")).toThrow(expect.objectContaining({ code: 8 }));
  });
});
