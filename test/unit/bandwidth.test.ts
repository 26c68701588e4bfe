// The bandwidth plugin's pure logic: config decoding (Go's key rule, top level over the capability), the
// reference's rate/burst rules and our range limits, the tbf numbers, the tc lines, the ifb name.
import { describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import { decodeGo, parseJsonText } from "../../lib/gojson.js";
import { TcBatch } from "../../lib/tc/batch.js";
import type { NetConf } from "../../lib/types.js";
import { burstMatches } from "../../plugins/bandwidth/check.js";
import { BANDWIDTH_CONF_SHAPE, loadBandwidthConfig, shapesAnything } from "../../plugins/bandwidth/config.js";
import { ifbName } from "../../plugins/bandwidth/ifb.js";
import { shapingLines } from "../../plugins/bandwidth/shape.js";
import { referenceTicks, tbfArgs, tbfFor } from "../../plugins/bandwidth/tbf.js";

/** A config as skel hands it over: JSON text decoded with the plugin's Go shape. */
const conf = (extra: string): NetConf =>
  decodeGo(
    parseJsonText(`{"cniVersion":"1.0.0","name":"n","type":"bandwidth"${extra}}`),
    BANDWIDTH_CONF_SHAPE,
  ) as NetConf;
const limits = (extra: string) => loadBandwidthConfig(conf(extra)).limits;

function error(f: () => unknown): { code: number; msg: string; details: string } | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CniError
      ? { code: e.code, msg: e.message, details: e.details ?? "" }
      : { code: -1, msg: String(e), details: "" };
  }
  return undefined;
}

describe("bandwidth config", () => {
  it("has no limits without any key", () => {
    expect(limits("")).toBeUndefined();
    expect(shapesAnything(limits(""))).toBe(false);
    expect(limits(',"runtimeConfig":{"bandwidth":null}')).toBeUndefined();
  });

  it("reads the top-level keys, case-insensitively as Go does", () => {
    expect(limits(',"IngressRate":8000,"ingressburst":80')).toEqual({
      ingressRate: 8000,
      ingressBurst: 80,
      egressRate: 0,
      egressBurst: 0,
    });
  });

  it("reads the capability as containerd sends it (untagged Go fields)", () => {
    const l = limits(
      ',"runtimeConfig":{"bandwidth":{"IngressRate":1000000,"IngressBurst":2000,"EgressRate":3000000,"EgressBurst":4000}}',
    );
    expect(l).toEqual({ ingressRate: 1000000, ingressBurst: 2000, egressRate: 3000000, egressBurst: 4000 });
    expect(shapesAnything(l)).toBe(true);
  });

  it("lets the top level win as soon as one of its keys is present, even as null (Go allocates the embedded entry)", () => {
    expect(limits(',"egressRate":null,"runtimeConfig":{"bandwidth":{"ingressRate":8000,"ingressBurst":80}}')).toEqual({
      ingressRate: 0,
      ingressBurst: 0,
      egressRate: 0,
      egressBurst: 0,
    });
    expect(shapesAnything(limits(',"egressRate":null'))).toBe(false);
  });

  it("refuses wrong types and values Go cannot hold in a uint64, naming the key (code 7)", () => {
    for (const [extra, key] of [
      [',"ingressRate":"8000"', "ingressRate"],
      [',"ingressRate":-1', "ingressRate"],
      [',"egressBurst":1.5', "egressBurst"],
      [',"egressRate":true', "egressRate"],
      [',"ingressBurst":[1]', "ingressBurst"],
      [',"runtimeConfig":{"bandwidth":{"egressRate":{}}}', "runtimeConfig.bandwidth.egressRate"],
    ] as const) {
      const e = error(() => limits(extra));
      expect(e?.code, extra).toBe(7);
      expect(e?.msg, extra).toContain(key);
    }
    expect(error(() => limits(',"runtimeConfig":{"bandwidth":"x"}'))).toMatchObject({
      code: 7,
      msg: expect.stringContaining("runtimeConfig.bandwidth must be an object"),
    });
    expect(error(() => limits(',"runtimeConfig":"x"'))).toMatchObject({
      code: 7,
      msg: "runtimeConfig must be an object",
    });
  });

  it("applies the reference's rate/burst rules with its messages, ingress first", () => {
    expect(error(() => limits(',"ingressRate":8000'))).toMatchObject({
      code: 7,
      msg: "if rate is set, burst must also be set",
      details: expect.stringContaining("ingressRate"),
    });
    expect(error(() => limits(',"egressBurst":8000'))).toMatchObject({
      code: 7,
      msg: "if burst is set, rate must also be set",
      details: expect.stringContaining("egressRate"),
    });
    expect(error(() => limits(',"ingressRate":8,"ingressBurst":34359738360'))).toMatchObject({
      code: 7,
      msg: "burst cannot be more than 4GB",
    });
    expect(error(() => limits(',"ingressRate":8,"ingressBurst":34359738352'))).toBeUndefined();
    expect(error(() => limits(',"ingressRate":8,"egressBurst":8'))?.details).toContain("ingress");
  });
});

describe("bandwidth tbf numbers", () => {
  it("are the reference's: rate/8 bytes, buffer in ticks, 25 ms of rate plus the burst as limit", () => {
    expect(tbfFor(8_000_000, 80_000, 15.625)).toEqual({
      rateBytes: 1_000_000,
      burstBytes: 10_000,
      bufferTicks: 156_250,
      limitBytes: 35_000,
    });
    // float64 then uint32 at each step, as Go computes: 123456 bytes at 15432098 bytes/s is 7999.87 us -> 7999 us
    expect(referenceTicks(15_432_098, 123_456, 15.625)).toBe(124_984);
    expect(tbfArgs(tbfFor(16_000_000, 160_000, 15.625))).toEqual([
      "tbf",
      "rate",
      "2000000bps",
      "burst",
      20_000,
      "limit",
      70_000,
    ]);
  });

  it("refuses what the kernel refuses or the reference's uint32 arithmetic would wrap (code 7)", () => {
    expect(error(() => tbfFor(7, 8000))).toMatchObject({ code: 7, msg: "rate must be at least 8 bit/s" });
    expect(error(() => tbfFor(2 ** 63, 8000))).toMatchObject({ code: 7, msg: "rate is too high for tbf" });
    expect(error(() => tbfFor(8_000_000, 34_359_738_352))).toMatchObject({
      code: 7,
      msg: "burst is too large for this rate",
    });
    expect(error(() => tbfFor(80_000_000_000, 8))).toMatchObject({ code: 7, msg: "burst is too small for this rate" });
    expect(error(() => tbfFor(8, 8))).toBeUndefined();
  });

  it("CHECK accepts the burst as the kernel shows it for either implementation, not a different one", () => {
    const t = tbfFor(123_456_789, 987_654, 15.625);
    expect(burstMatches(123_425, t)).toBe(true); // the reference's buffer, cut to microseconds and ticks
    expect(burstMatches(123_441, t)).toBe(true); // ours, from the exact burst
    expect(burstMatches(123_456 - 100, t)).toBe(false);
    expect(burstMatches(123_456 + 2, t)).toBe(false);
  });
});

describe("bandwidth tc lines", () => {
  const ingress = tbfFor(8_000_000, 80_000, 15.625);
  const egress = tbfFor(16_000_000, 160_000, 15.625);

  it("lay out ingress as a root tbf on the host veth", () => {
    const lines = shapingLines({ veth: "veth1234", ifb: "bwp0123456789ab", ingress, egress: undefined });
    expect(lines.map((l) => l.tokens.join(" "))).toEqual([
      "qdisc add dev veth1234 root handle 1: tbf rate 1000000bps burst 10000 limit 35000",
    ]);
  });

  it("lay out egress as ingress qdisc + u32 redirect to the ifb + a root tbf on the ifb, each undone in reverse", () => {
    const lines = shapingLines({ veth: "veth1234", ifb: "bwp0123456789ab", ingress, egress });
    expect(lines.map((l) => l.tokens.join(" "))).toEqual([
      "qdisc add dev veth1234 root handle 1: tbf rate 1000000bps burst 10000 limit 35000",
      "qdisc add dev veth1234 handle ffff: ingress",
      "filter add dev veth1234 parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev bwp0123456789ab",
      "qdisc add dev bwp0123456789ab root handle 1: tbf rate 2000000bps burst 20000 limit 70000",
    ]);
    expect(lines.map((l) => l.undo?.join(" "))).toEqual([
      "qdisc del dev veth1234 root",
      "qdisc del dev veth1234 ingress",
      undefined,
      undefined,
    ]);
  });

  it("refuse a token that could change a tc -batch line", () => {
    for (const bad of ["a b", "x\nqdisc del dev eth0 root", "-force", "#", "a'b", "", 'a"b', "a\\b"]) {
      expect(() => new TcBatch().cmd("qdisc", "show", "dev", bad), JSON.stringify(bad)).toThrow(CniError);
    }
    expect(new TcBatch().cmd("qdisc", "show", "dev", "veth1").text()).toBe("qdisc show dev veth1\n");
  });
});

describe("bandwidth ifb name", () => {
  it("is the reference's: bwp + sha512(network + containerID), 15 characters", () => {
    // Read off the reference (Debian 1.1.1) for network "bwnet", container "ctr1".
    expect(ifbName("bwnet", "ctr1")).toBe("bwpea62040b30ca");
    expect(ifbName("n", "x".repeat(255))).toMatch(/^bwp[0-9a-f]{12}$/);
  });
});
