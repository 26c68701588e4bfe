// Property: result conversion (lib/version.ts) is lossless where the spec says it is, on generated results.
//  - 1.0.0 and 1.1.0 share one layout: model -> JSON text at either version -> model gives the model back, and
//    converting between the two changes nothing but cniVersion.
//  - 0.4.0 -> 1.1.0 -> 0.4.0 gives the 0.4.0 JSON back byte for byte (what 0.4.0 can say survives the trip up).
//  - parseResult on any mutation of a valid result throws only CniErrors 1 or 6, and what it accepts can be printed
//    at every version from 0.3.0 on.
// Seeded (test/reliability/gen.ts): a failure names its seed and run; CNI_TS_SEED=<seed> replays it.
import { describe, expect, it } from "vitest";
import { formatIP } from "../../lib/cidr.js";
import { CniError } from "../../lib/errors.js";
import type { Result } from "../../lib/types.js";
import { formatResult, parseResult } from "../../lib/version.js";
import { Gen, PROPERTY_RUNS, PROPERTY_SEED, report } from "../reliability/gen.js";

function ip(g: Gen, family: 4 | 6 = g.chance(0.5) ? 4 : 6): string {
  return family === 4 ? g.ip4() : formatIP({ family: 6, value: g.ip6Value() });
}

function cidr(g: Gen): string {
  const family = g.chance(0.5) ? 4 : 6;
  return `${ip(g, family)}/${g.int(0, family === 4 ? 32 : 128)}`;
}

function nonEmpty(g: Gen): string {
  const s = g.string();
  return s === "" ? "x" : s;
}

const some = <T>(g: Gen, max: number, f: () => T): T[] => Array.from({ length: g.int(1, max) }, f);

/** A result in the internal model, as a plugin builds it: canonical addresses, no empty strings or lists. */
function result(g: Gen): Result {
  const r: Result = {};
  if (g.chance(0.7)) {
    r.interfaces = some(g, 3, () => {
      const i: NonNullable<Result["interfaces"]>[number] = { name: g.string() };
      if (g.chance(0.7)) i.mac = nonEmpty(g);
      if (g.chance(0.3)) i.mtu = g.int(1, 65535);
      if (g.chance(0.5)) i.sandbox = nonEmpty(g);
      if (g.chance(0.2)) i.socketPath = nonEmpty(g);
      if (g.chance(0.2)) i.pciID = nonEmpty(g);
      return i;
    });
  }
  if (g.chance(0.8)) {
    r.ips = some(g, 4, () => {
      const x: NonNullable<Result["ips"]>[number] = { address: cidr(g) };
      if (g.chance(0.6)) x.gateway = ip(g);
      if (g.chance(0.6)) x.interface = g.int(0, 5);
      return x;
    });
  }
  if (g.chance(0.6)) {
    r.routes = some(g, 4, () => {
      const x: NonNullable<Result["routes"]>[number] = { dst: cidr(g) };
      if (g.chance(0.5)) x.gw = ip(g);
      if (g.chance(0.3)) x.mtu = g.int(1, 65535);
      if (g.chance(0.3)) x.advmss = g.int(1, 65535);
      if (g.chance(0.3)) x.priority = g.int(1, 2 ** 32 - 1);
      if (g.chance(0.3)) x.table = g.int(0, 2 ** 32 - 1);
      if (g.chance(0.3)) x.scope = g.pick([0, 200, 253, 254, 255]);
      return x;
    });
  }
  if (g.chance(0.5)) {
    const d: NonNullable<Result["dns"]> = {};
    if (g.chance(0.6)) d.nameservers = some(g, 3, () => ip(g));
    if (g.chance(0.5)) d.domain = nonEmpty(g);
    if (g.chance(0.5)) d.search = some(g, 3, () => g.string());
    if (g.chance(0.3)) d.options = some(g, 3, () => g.string());
    if (Object.keys(d).length > 0) r.dns = d;
  }
  return r;
}

/** formatResult, then through JSON text, as a result travels between processes. */
const wire = (r: Result, v: string): Record<string, unknown> =>
  JSON.parse(JSON.stringify(formatResult(r, v))) as Record<string, unknown>;

describe(`result conversion on generated results (${PROPERTY_RUNS} runs each, seed ${PROPERTY_SEED})`, () => {
  it("1.0.0 and 1.1.0: model -> JSON -> model is the identity, and the two versions differ only in cniVersion", {
    timeout: 900_000,
  }, () => {
    const g = new Gen(PROPERTY_SEED);
    report("property-round-trip", { runs: PROPERTY_RUNS, trips: ["1.0.0 <-> 1.1.0", "0.4.0 -> 1.1.0 -> 0.4.0"] });
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const r = result(g);
      const label = `seed ${PROPERTY_SEED} run ${run}: ${JSON.stringify(r).slice(0, 400)}`;
      for (const v of ["1.0.0", "1.1.0"]) expect(parseResult(wire(r, v), v), label).toEqual(r);
      const up = wire(parseResult(wire(r, "1.0.0"), "1.0.0"), "1.1.0");
      const down = wire(parseResult(wire(r, "1.1.0"), "1.1.0"), "1.0.0");
      expect({ ...up, cniVersion: "x" }, label).toEqual({ ...wire(r, "1.0.0"), cniVersion: "x" });
      expect(JSON.stringify(down), label).toBe(JSON.stringify(wire(r, "1.0.0")));
    }
  });

  it("0.4.0 -> 1.1.0 -> 0.4.0 gives the same 0.4.0 JSON, byte for byte", { timeout: 900_000 }, () => {
    const g = new Gen(PROPERTY_SEED ^ 0x40);
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const j040 = wire(result(g), "0.4.0");
      const label = `seed ${PROPERTY_SEED} run ${run}: ${JSON.stringify(j040).slice(0, 400)}`;
      const j110 = wire(parseResult(j040, "0.4.0"), "1.1.0");
      const back = formatResult(parseResult(j110, "1.1.0"), "0.4.0");
      expect(JSON.stringify(back, null, 4), label).toBe(JSON.stringify(j040, null, 4));
      // And the 0.3.x layout is the 0.4.0 one.
      expect({ ...wire(parseResult(j110, "1.1.0"), "0.3.1"), cniVersion: "0.4.0" }, label).toEqual(j040);
    }
  });

  it("parseResult on mutated results: only CniErrors 1 or 6; what it accepts prints at 0.3.0 to 1.1.0", {
    timeout: 900_000,
  }, () => {
    const g = new Gen(PROPERTY_SEED ^ 0x6);
    const keys = [
      "cniVersion",
      "interfaces",
      "ips",
      "routes",
      "dns",
      "name",
      "mac",
      "mtu",
      "sandbox",
      "address",
      "gateway",
      "interface",
      "version",
      "dst",
      "gw",
      "table",
      "scope",
      "nameservers",
      "domain",
      "ip4",
      "ip6",
      "ip",
    ];
    const tally = { accepted: 0, refused: 0 };
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const v = g.pick(["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
      const mutated = g.mutate(
        v.startsWith("0.2")
          ? wire({ ips: [{ address: "10.1.2.3/24", gateway: "10.1.2.1" }], routes: [{ dst: "0.0.0.0/0" }] }, v)
          : wire(result(g), v),
        keys,
      ) as unknown;
      const label = `seed ${PROPERTY_SEED} run ${run} at ${v}: ${JSON.stringify(mutated).slice(0, 400)}`;
      let parsed: Result | undefined;
      try {
        parsed = parseResult(mutated, g.pick(["0.4.0", "1.0.0", "1.1.0"]));
      } catch (e) {
        if (!(e instanceof CniError) || ![1, 6].includes(e.code))
          throw new Error(`${label}\nthrew ${String(e)} (code ${(e as CniError).code})`);
        tally.refused++;
        continue;
      }
      tally.accepted++;
      for (const out of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
        try {
          formatResult(parsed, out);
        } catch (e) {
          throw new Error(`${label}\nparsed, but formatResult at ${out} threw ${String(e)}`);
        }
      }
    }
    report("property-parse-result", { runs: PROPERTY_RUNS, ...tally });
    expect(tally.accepted).toBeGreaterThan(PROPERTY_RUNS / 10);
  });
});
