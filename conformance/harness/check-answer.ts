/**
 * A step's answer against its expectation: success or the expected error (code, message, who refused), the ADD
 * result, the VERSION answer. Pure: the mismatches in words, in the order the output prints them; empty = matched.
 */
import type { Observation } from "./outcome.js";
import { matchResult } from "./match.js";
import type { Expect } from "./schema.js";

/** `ifname` and `netnsPath` are the step's, for `result.sandbox`. */
export function checkAnswer(expect: Expect, obs: Observation, ifname: string, netnsPath: string): string[] {
  const reasons: string[] = [];
  const wantOk = expect.ok ?? true;
  if (obs.ok !== wantOk) {
    reasons.push(
      wantOk
        ? `expected success, got ${obs.runtimeError ? "runtime error" : "error"}${obs.code !== undefined ? ` code ${obs.code}` : ""}: ${obs.msg}`
        : `expected failure${expect.code !== undefined ? ` code ${expect.code}` : ""}, got success`,
    );
  } else if (!obs.ok) {
    if (expect.code !== undefined && obs.code !== expect.code)
      reasons.push(`expected code ${expect.code}, got ${obs.code ?? "none"}: ${obs.msg}`);
    if (expect.msg !== undefined && !new RegExp(expect.msg).test(obs.msg ?? ""))
      reasons.push(`expected message /${expect.msg}/, got: ${obs.msg}`);
    if (expect.runtimeError !== undefined && (obs.runtimeError ?? false) !== expect.runtimeError)
      reasons.push(
        expect.runtimeError
          ? `expected the runtime to refuse before any plugin ran, but plugin ${obs.plugin} failed: ${obs.msg}`
          : `expected a plugin error, got a runtime error: ${obs.msg}`,
      );
  }
  if (expect.result) {
    if (!obs.result) reasons.push("expected a result, got none");
    else reasons.push(...matchResult(expect.result, obs.result, ifname, netnsPath));
  }
  if (expect.version) {
    const v = obs.version;
    if (!v) reasons.push("expected a VERSION answer, got none");
    else {
      if (expect.version.cniVersion !== undefined && v.cniVersion !== expect.version.cniVersion)
        reasons.push(`VERSION cniVersion: expected ${expect.version.cniVersion}, got ${v.cniVersion}`);
      for (const x of expect.version.supports ?? [])
        if (!v.supportedVersions.includes(x))
          reasons.push(`VERSION supportedVersions lacks ${x}: ${v.supportedVersions.join(", ")}`);
      for (const x of expect.version.lacks ?? [])
        if (v.supportedVersions.includes(x)) reasons.push(`VERSION supportedVersions has ${x}`);
    }
  }
  return reasons;
}
