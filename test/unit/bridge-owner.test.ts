// Which links a bridge DEL may remove (plugins/bridge/owner.ts): only the attachment's own.
import { describe, expect, it } from "vitest";
import { hostVethAlias } from "../../plugins/bridge/names.js";
import { hostVethOwner, prevHostMac, prevPodMac } from "../../plugins/bridge/owner.js";

const own = hostVethAlias("net1", "c1", "eth0");
const other = hostVethAlias("net2", "c1", "eth0");

describe("hostVethOwner", () => {
  it("absent when there is no link", () => {
    expect(hostVethOwner(undefined, own, undefined)).toBe("absent");
  });
  it("ours: the MAC prevResult gives (any case), whatever else is known", () => {
    expect(hostVethOwner({ mac: "0a:00:00:00:00:01" }, own, "0A:00:00:00:00:01")).toBe("ours");
  });
  it("ours: a veth with this attachment's alias, or with none (ADD stopped before naming it)", () => {
    expect(hostVethOwner({ kind: "veth", alias: own, mac: "0a:00:00:00:00:02" }, own, "0a:00:00:00:00:01")).toBe(
      "ours",
    );
    expect(hostVethOwner({ kind: "veth", mac: "0a:00:00:00:00:02" }, own, undefined)).toBe("ours");
  });
  it("foreign: another network's alias, any other alias, or not a veth", () => {
    expect(other).not.toBe(own);
    expect(hostVethOwner({ kind: "veth", alias: other }, own, undefined)).toBe("foreign");
    expect(hostVethOwner({ kind: "veth", alias: "uplink" }, own, undefined)).toBe("foreign");
    expect(hostVethOwner({ kind: "dummy", alias: own }, own, undefined)).toBe("foreign");
    expect(hostVethOwner({ kind: "dummy" }, own, undefined)).toBe("foreign");
  });
});

describe("MACs from prevResult", () => {
  const prev = {
    interfaces: [
      { name: "cni0", mac: "02:00:00:00:00:01" },
      { name: "veth1", mac: "02:00:00:00:00:02" },
      { name: "eth0", mac: "02:00:00:00:00:03", sandbox: "/var/run/netns/p" },
    ],
    ips: [],
  };
  it("the host veth's is the one without a sandbox; the pod's the one with", () => {
    expect(prevHostMac(prev, "veth1")).toBe("02:00:00:00:00:02");
    expect(prevHostMac(prev, "eth0")).toBeUndefined();
    expect(prevPodMac(prev, "eth0")).toBe("02:00:00:00:00:03");
    expect(prevPodMac(prev, "veth1")).toBeUndefined();
  });
  it("nothing without prevResult or interfaces (the DEL after a refused ADD)", () => {
    expect(prevPodMac(undefined, "eth0")).toBeUndefined();
    expect(prevPodMac({ ips: [] }, "eth0")).toBeUndefined();
  });
});
