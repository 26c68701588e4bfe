import { describe, expect, it } from "vitest";
import { codeOf } from "./codes.js";
import { parseCniArgs, splitCniArgs } from "../../lib/cniargs.js";

describe("CNI_ARGS", () => {
  it("splits K=V pairs, keeps order and values", () => {
    expect([...splitCniArgs("IgnoreUnknown=1;IP=10.1.2.3/24;MAC=c2:11:22:33:44:55")]).toEqual([
      ["IgnoreUnknown", "1"],
      ["IP", "10.1.2.3/24"],
      ["MAC", "c2:11:22:33:44:55"],
    ]);
  });
  it("empty or undefined is no args; empty segments are tolerated", () => {
    expect(splitCniArgs(undefined).size).toBe(0);
    expect(splitCniArgs("").size).toBe(0);
    expect([...splitCniArgs("IP=1.2.3.4;")]).toEqual([["IP", "1.2.3.4"]]);
  });
  it("a pair that is not exactly K=V is code 4", () => {
    for (const bad of ["IP", "IP=a=b", "=x", "I P=1", "IP=1\n"]) expect(codeOf(() => splitCniArgs(bad))).toBe(4);
  });
  it("unknown keys are code 4 unless IgnoreUnknown is 1 or true", () => {
    expect(codeOf(() => parseCniArgs("FOO=1", ["IP"]))).toBe(4);
    expect(parseCniArgs("IgnoreUnknown=true;FOO=1", ["IP"]).get("FOO")).toBe("1");
    expect(parseCniArgs("IgnoreUnknown=TRUE;FOO=1", ["IP"]).get("FOO")).toBe("1");
    expect(codeOf(() => parseCniArgs("IgnoreUnknown=0;FOO=1", ["IP"]))).toBe(4);
  });
  it("keys are case-sensitive like the reference's struct fields", () => {
    expect(codeOf(() => parseCniArgs("ip=10.0.0.1", ["IP"]))).toBe(4);
  });
  it("bounds the size", () => {
    expect(codeOf(() => splitCniArgs(`A=${"x".repeat(70_000)}`))).toBe(4);
  });
});
