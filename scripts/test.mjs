#!/usr/bin/env node
// `npm test`: every test. Format and lint check (Biome), type check, unit tests, build the executables (Bun, the default), integration tests
// against real network namespaces (root), the VLAN and masquerade files again in a guest with Debian's kernel
// (scripts/vm.mjs), then the conformance cases against our executables and against the reference plugins
// (Debian's containernetworking-plugins); then the fallback Node build and the conformance cases against it, and on
// x86_64 the arm64 build, smoke-tested under qemu-user. Ends with one line "N passed, M failed[, K skipped]".
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDeps, requireRoot } from "./deps.mjs";
import { vitestInGuestArgv } from "./vm.mjs";

const args = process.argv.slice(2);
const unitOnly = args.includes("--unit");
const totals = { passed: 0, failed: 0, skipped: 0 };
const reports = mkdtempSync(join(tmpdir(), "cni-ts-test-"));
let ok = true;

function sh(cmd, argv, what) {
  console.error(`\n== ${what}`);
  const r = spawnSync(cmd, argv, { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`== ${what}: FAILED (exit ${r.status ?? r.signal})`);
    ok = false;
  }
  return r.status === 0;
}

/** A conformance run: its steps count into the totals; its own last line says "N passed, M failed[, K skipped]". */
function conformance(plugins) {
  console.error(`\n== conformance against ${plugins}`);
  const r = spawnSync("node", ["scripts/conformance.mjs", "--plugins", plugins], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.stdout.write(r.stdout ?? "");
  const m = /(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$/.exec(r.stdout ?? "");
  if (!m || r.status !== 0) {
    console.error(`== conformance against ${plugins}: FAILED (exit ${r.status})`);
    ok = false;
  }
  if (!m) {
    totals.failed += 1;
    return;
  }
  totals.passed += Number(m[1]);
  totals.failed += Number(m[2]);
  totals.skipped += Number(m[3] ?? 0);
}

/** Count a vitest JSON report into the totals; returns it (undefined if there is none: one failure). */
function count(out) {
  if (!existsSync(out)) {
    totals.failed += 1;
    return undefined;
  }
  const r = JSON.parse(readFileSync(out, "utf8"));
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests + r.numTodoTests;
  return r;
}

function vitest(project) {
  const out = join(reports, `${project}.json`);
  sh(
    "npx",
    ["vitest", "run", "--project", project, "--reporter=default", "--reporter=json", `--outputFile.json=${out}`],
    `${project} tests`,
  );
  const r = count(out);
  if (!r) return;
  if (r.numTotalTests === 0) {
    console.error(`== ${project}: no test ran`);
    ok = false;
  }
}

/**
 * Integration files run again in a guest with Debian's stock kernel (scripts/vm.mjs): the VLAN file needs what this
 * machine's kernel lacks (bridge vlan_filtering, 8021q); the masquerade file, because nftables interval sets answer
 * differently on Debian's 6.1 (an overlapping `add` succeeds there and inserts nothing). There every test must run:
 * a skip means the guest lacks it too.
 */
const GUEST_FILES = ["test/integration/bridge-vlan.test.ts", "test/integration/masq.test.ts"];

function vitestInGuest() {
  const what = `integration tests in a guest with Debian's kernel (${GUEST_FILES.join(", ")})`;
  if (process.arch !== "x64") {
    console.error(`\n== ${what}: not run, the guest is x86_64 only (this is ${process.arch})`);
    totals.skipped += 1;
    return;
  }
  ensureDeps(["qemu", "busybox"]);
  const out = join(reports, "guest.json");
  sh("node", vitestInGuestArgv(GUEST_FILES, out, 1500), what);
  const r = count(out);
  if (r && (r.numTotalTests === 0 || r.numPendingTests > 0)) {
    console.error(`== ${what}: ${r.numPendingTests} of ${r.numTotalTests} skipped in the guest`);
    totals.failed += 1;
    ok = false;
  }
}

try {
  sh("npx", ["biome", "ci", "."], "format and lint (biome ci; fix with npm run format)");
  sh("npx", ["tsc", "--noEmit", "-p", "."], "type check");
  vitest("unit");
  if (!unitOnly) {
    requireRoot("the integration tests");
    ensureDeps(["ip", "nsenter", "ping", "strip", "iptables", "nft", "python3", "reference plugins"]);
    if (sh("node", ["build.mjs"], "build (Bun)")) {
      vitest("integration");
      vitestInGuest();
      conformance("dist/bin");
      conformance("/usr/lib/cni");
    }
    // The fallback build passes the same conformance cases (the integration suite runs on the default build only).
    if (sh("node", ["build.mjs", "--runtime", "node", "--out", "dist/node"], "build (Node, the fallback)"))
      conformance("dist/node/bin");
    if (process.arch === "x64") {
      // Cross-compiled for arm64; the build's smoke test runs it under qemu-user.
      ensureDeps(["qemu-user", "arm64 libc"]);
      sh("node", ["build.mjs", "--arch", "arm64"], "build (Bun, arm64, smoke-tested under qemu-user)");
    }
  }
} finally {
  rmSync(reports, { recursive: true, force: true });
}

const line = `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ""}`;
console.log(`\n${line}`);
process.exit(ok && totals.failed === 0 ? 0 : 1);
