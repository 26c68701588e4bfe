// The README's main job: `npm run demo` runs the cluster lab and must end with "verdict: OK", leaving no namespace.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireBuilt } from "./helpers.js";

const netnsList = () => spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").filter((l) => l.startsWith("ctslab"));

describe("npm run demo (the cluster lab)", () => {
  it("every pod gets a distinct address and pings every other pod across nodes; the lab is gone afterwards", () => {
    requireBuilt();
    const before = netnsList();
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/demo.mjs")], { encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/5 pods, 5 distinct addresses; 20\/20 pings answered/);
    expect(r.stdout).toMatch(/after DEL: no veth, no reservation, no cache entry left/);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("verdict: OK");
    expect(netnsList()).toEqual(before);
  });
});
