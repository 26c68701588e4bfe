// Bounded waits on what other programs control: the config on stdin (lib/stdin stdinDeadline) and every child
// process (lib/exec: killed at its deadline, with an error naming the command and the deadline).
import { describe, expect, it } from "vitest";
import { msFromEnv } from "../../lib/env-ms.js";
import { asCniError } from "../../lib/errors.js";
import { run, runOk } from "../../lib/exec.js";
import { DEFAULT_STDIN_TIMEOUT_MS, stdinDeadline } from "../../lib/stdin.js";

describe("stdinDeadline", () => {
  it("every verb but VERSION fails at the deadline: 10 s by default, CNI_TS_STDIN_TIMEOUT_MS otherwise", () => {
    expect(DEFAULT_STDIN_TIMEOUT_MS).toBe(10_000);
    for (const verb of ["ADD", "DEL", "CHECK", "GC", "STATUS"]) {
      expect(stdinDeadline({ CNI_COMMAND: verb })).toEqual({ ms: 10_000, onDeadline: "fail" });
      expect(stdinDeadline({ CNI_COMMAND: verb, CNI_TS_STDIN_TIMEOUT_MS: "2500" })).toEqual({
        ms: 2500,
        onDeadline: "fail",
      });
    }
  });
  it("VERSION goes on with what arrived after 1 s, whatever the variable says", () => {
    expect(stdinDeadline({ CNI_COMMAND: "VERSION", CNI_TS_STDIN_TIMEOUT_MS: "junk" })).toEqual({
      ms: 1000,
      onDeadline: "resolve",
    });
  });
  it("a malformed value is refused (4)", () => {
    for (const v of ["10s", "99", "600001", "1e4", " 100"]) {
      expect(() => stdinDeadline({ CNI_COMMAND: "ADD", CNI_TS_STDIN_TIMEOUT_MS: v }), v).toThrow(
        expect.objectContaining({ code: 4 }),
      );
    }
  });
});

describe("msFromEnv", () => {
  it("the default when unset or empty; the bounds inclusive", () => {
    expect(msFromEnv({}, "X_MS", 42)).toBe(42);
    expect(msFromEnv({ X_MS: "" }, "X_MS", 42)).toBe(42);
    expect(msFromEnv({ X_MS: "100" }, "X_MS", 42)).toBe(100);
    expect(msFromEnv({ X_MS: "600000" }, "X_MS", 42)).toBe(600_000);
  });
});

describe("child processes", () => {
  it("a child (and its children) that does not finish is killed at its deadline and reported as such", async () => {
    const r = await run("sh", ["-c", "sleep 30 & sleep 30"], { timeoutMs: 200 });
    expect(r).toMatchObject({ timedOut: true, timeoutMs: 200, code: null, signal: "SIGKILL" });
  });
  it("runOk: a ToolError of kind timeout naming the command and the deadline, which is code 11 at the boundary", async () => {
    const e = await runOk("sleep", ["30"], { timeoutMs: 200, what: "a hung tool" }).catch((x: unknown) => x);
    expect(e).toMatchObject({
      name: "ToolError",
      kind: "timeout",
      tool: "sleep",
      message: "a hung tool: no answer within 200 ms, killed",
    });
    expect(asCniError(e)).toMatchObject({ code: 11, message: "a hung tool: no answer within 200 ms, killed" });
  });
});
