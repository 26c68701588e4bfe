// `cni-ts install` refuses a CPU that cannot run the built file: the flag check against /proc/cpuinfo.
import { describe, expect, it } from "vitest";
import { missingCpuFlags } from "../../cmd/install.js";

const cpuinfo = (flags: string) =>
  `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbogomips\t: 4800.00\n\nprocessor\t: 1\nflags\t\t: ${flags}\n`;
const NEHALEM =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss syscall nx lm constant_tsc pni ssse3 cx16 sse4_1 sse4_2 popcnt";
const HASWELL = `${NEHALEM} movbe avx f16c fma abm bmi1 avx2 bmi2`;
const AVX2 = ["sse4_2", "popcnt", "ssse3", "cx16", "avx", "avx2", "bmi1", "bmi2", "fma", "movbe"];
const BASELINE = ["sse4_2", "popcnt", "ssse3", "cx16"];

describe("missingCpuFlags", () => {
  it("names what a pre-AVX2 CPU lacks for the AVX2 build", () => {
    expect(missingCpuFlags(AVX2, cpuinfo(NEHALEM))).toEqual(["avx", "avx2", "bmi1", "bmi2", "fma", "movbe"]);
  });
  it("accepts a CPU that has every flag, and the baseline build on a Nehalem", () => {
    expect(missingCpuFlags(AVX2, cpuinfo(HASWELL))).toEqual([]);
    expect(missingCpuFlags(BASELINE, cpuinfo(NEHALEM))).toEqual([]);
  });
  it("matches whole flag names only (avx is not avx2, sse4_2 is not sse4_1)", () => {
    expect(missingCpuFlags(["avx2", "sse4_2"], cpuinfo("avx avx512f sse4_1"))).toEqual(["avx2", "sse4_2"]);
  });
  it("no flags line (arm64 names them Features) means nothing to check", () => {
    expect(missingCpuFlags(AVX2, "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\n")).toEqual([]);
    expect(missingCpuFlags([], cpuinfo(NEHALEM))).toEqual([]);
  });
});
