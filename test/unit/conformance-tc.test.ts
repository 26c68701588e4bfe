// The conformance harness's tc reader: per-run device names grouped, so two implementations' layouts compare.
import { describe, expect, it } from "vitest";
import { deviceGroup, shapingView } from "../../conformance/harness/tc.js";

describe("conformance tc view", () => {
  it("groups host veths and bandwidth ifbs, keeps other names", () => {
    expect(deviceGroup("veth1a2b3c4d")).toBe("veth*");
    expect(deviceGroup("bwpea62040b30ca")).toBe("bwp*");
    expect(deviceGroup("bwp-other")).toBe("bwp-other");
    expect(deviceGroup("cni0")).toBe("cni0");
  });

  it("shows each group's qdiscs sorted, and the redirects between groups", () => {
    const view = shapingView(
      [
        { dev: "veth1", kind: "tbf", handle: "1:", root: true, rate: 1_000_000, burst: 10_000 },
        { dev: "veth1", kind: "ingress", handle: "ffff:", root: false },
        { dev: "bwp0123456789ab", kind: "tbf", handle: "1:", root: true, rate: 2_000_000, burst: 20_000 },
      ],
      [{ dev: "veth1", to: "bwp0123456789ab", kind: "u32", pref: 1, flowid: "1:1" }],
    );
    expect(view).toEqual({
      "veth*": "ingress ffff: | tbf 1: root rate 1000000 burst 10000",
      "bwp*": "tbf 1: root rate 2000000 burst 20000",
      redirects: "veth* u32 pref 1 flowid 1:1 -> bwp*",
    });
    expect(shapingView([], [])).toEqual({});
  });
});
