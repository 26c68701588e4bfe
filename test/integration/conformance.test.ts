// The conformance harness end to end (root): `npm run conformance` against the built dist/bin for a fast subset of
// cases, through the real CLI (esbuild-bundled), asserting the summary line, the JSON report, and that the run
// left no namespace or temporary directory behind. Also the reference plugin set and differential mode, where the
// Debian reference plugins are installed, and runSample() for the demo.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIST_BIN, requireBuilt, ROOT } from "./helpers.js";

const SUBSET = "kubenet-style,l2-mode,del-netns-gone,v110-bridge,version,gc";
const REFERENCE = "/usr/lib/cni";
const work = mkdtempSync(join(tmpdir(), "cni-ts-conformance-test-"));

function conformance(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("node", [join(ROOT, "scripts/conformance.mjs"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 300_000,
  });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

function netnsWith(prefix: string): string[] {
  try {
    return readdirSync("/var/run/netns").filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

function lastLine(s: string): string {
  return s.trim().split("\n").pop() ?? "";
}

beforeAll(() => requireBuilt());
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("npm run conformance against dist/bin", () => {
  it("a subset of cases passes: the summary says 0 failed, and nothing of the run is left", () => {
    const json = join(work, "dist.json");
    const r = conformance(["--plugins", DIST_BIN, "--only", SUBSET, "--json", json]);
    expect(lastLine(r.stdout), r.stdout + r.stderr).toMatch(/^\d+ passed, 0 failed(, \d+ skipped)?$/);
    expect(r.status).toBe(0);
    const report = JSON.parse(readFileSync(json, "utf8")) as {
      runId: string;
      summary: { passed: number; failed: number };
      leftovers: string[];
      outcomes: Array<{ status: string; case: string }>;
      plugins: { impl: string };
    };
    expect(report.plugins.impl).toBe("cni-ts");
    expect(report.summary.failed).toBe(0);
    expect(report.summary.passed).toBeGreaterThan(40);
    expect(new Set(report.outcomes.map((o) => o.case))).toEqual(new Set(SUBSET.split(",")));
    // One line per step, each PASS/FAIL/SKIP/XFAIL.
    const stepLines = r.stdout.split("\n").filter((l) => /^(PASS|FAIL|SKIP|XFAIL)\s/.test(l));
    expect(stepLines.length).toBe(report.outcomes.length);
    expect(report.leftovers).toEqual([]);
    expect(netnsWith(`${report.runId}-`)).toEqual([]);
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith(report.runId))).toEqual([]);
  });

  it("refuses to run without --plugins, and rejects unknown cases", () => {
    expect(conformance([]).status).toBe(2);
    const r = conformance(["--plugins", DIST_BIN, "--only", "no-such-case"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no such case: no-such-case/);
  });
});

describe.skipIf(!existsSync(join(REFERENCE, "bridge")))(
  "the reference plugins (Debian containernetworking-plugins)",
  () => {
    it("fails only in documented ways; 1.1.0, GC and STATUS are skipped with the reason", () => {
      const json = join(work, "ref.json");
      const r = conformance([
        "--plugins",
        REFERENCE,
        "--only",
        "l2-mode,v110-bridge,kubenet-style,del-netns-gone",
        "--json",
        json,
      ]);
      expect(lastLine(r.stdout), r.stdout).toMatch(/^\d+ passed, 0 failed, \d+ skipped$/);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^XFAIL l2-mode #check-l2 CHECK a .*no plugin name provided/m);
      expect(r.stdout).toMatch(/^SKIP {2}v110-bridge #2 ADD a .*needs spec:1\.1\.0/m);
      const report = JSON.parse(readFileSync(json, "utf8")) as {
        runId: string;
        plugins: { impl: string };
        leftovers: string[];
      };
      expect(report.plugins.impl).toBe("reference");
      expect(report.leftovers).toEqual([]);
      expect(netnsWith(`${report.runId}-`)).toEqual([]);
    });

    it("differential mode separates intended differences from unexpected ones", () => {
      const json = join(work, "diff.json");
      const r = conformance([
        "--plugins",
        DIST_BIN,
        "--reference",
        REFERENCE,
        "--only",
        "l2-mode,exhaustion,version",
        "--json",
        json,
      ]);
      expect(r.stdout).toMatch(
        /^differential: \d+ steps compared, \d+ identical, [1-9]\d* intended differences, 0 unexpected differences$/m,
      );
      expect(lastLine(r.stdout)).toMatch(/^\d+ passed, 0 failed$/);
      const report = JSON.parse(readFileSync(json, "utf8")) as {
        differential: { differences: Array<{ field: string; intended?: string }> };
      };
      expect(report.differential.differences.some((d) => d.field === "error.code" && d.intended)).toBe(true);
    });
  },
);

describe("runSample() (the README demo)", () => {
  it("ADDs 3 pods, pings every pair, DELs them and leaves nothing", async () => {
    const { importConformance } = (await import(join(ROOT, "scripts/conformance.mjs"))) as {
      importConformance: () => Promise<{ runSample: (o: object) => Promise<Record<string, unknown>> }>;
    };
    const { runSample } = await importConformance();
    const s = (await runSample({ plugins: DIST_BIN, casesDir: join(ROOT, "conformance/cases") })) as {
      ok: boolean;
      errors: string[];
      pods: Array<{ ips: string[] }>;
      pings: Array<{ ok: boolean; rttMs?: number }>;
      afterDel: { veths: string[]; reservations: string[]; cacheEntries: number; natMentions: number };
      leftovers: string[];
      addResult: { interfaces?: unknown[] };
      node: string;
    };
    expect(s.errors).toEqual([]);
    expect(s.ok).toBe(true);
    expect(s.pods).toHaveLength(3);
    expect(s.pods.every((p) => p.ips.length === 1)).toBe(true);
    expect(s.pings).toHaveLength(9);
    expect(s.pings.every((p) => p.ok && typeof p.rttMs === "number")).toBe(true);
    expect(s.addResult.interfaces).toHaveLength(3);
    expect(s.afterDel).toEqual({ veths: [], reservations: [], cacheEntries: 0, natMentions: 0 });
    expect(s.leftovers).toEqual([]);
    expect(netnsWith(s.node)).toEqual([]);
  });
});
