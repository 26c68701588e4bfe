import { describe, expect, it } from "vitest";
import { codeOf } from "./codes.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { NetnsScript } from "../../lib/ip/script.js";
import { validateContainerID, validateIfname, validateNetworkName, validatePluginType } from "../../lib/validate.js";

describe("name validation", () => {
  it("container IDs", () => {
    for (const ok of ["abc", "0123abcdef", "a_b.c-d", "x".repeat(255)]) expect(validateContainerID(ok)).toBe(ok);
    for (const bad of ["", "-a", "_a", "a/b", "../a", "a b", "a\0b", "ä", "x".repeat(256)])
      expect(codeOf(() => validateContainerID(bad))).toBe(4);
  });
  it("interface names", () => {
    for (const ok of ["eth0", "net1", "vethabcdef12", "kube-bridge", "cni0.100", "a".repeat(15)])
      expect(validateIfname(ok)).toBe(ok);
    for (const bad of [
      "",
      ".",
      "..",
      "a/b",
      "a:b",
      "a b",
      "-x",
      ".x",
      'a"b',
      "a'b",
      "a#b",
      "a\\b",
      "a".repeat(16),
      "é".repeat(8),
    ]) {
      expect(codeOf(() => validateIfname(bad))).toBe(4);
    }
  });
  it("interface names from config use the code the caller asks for", () => {
    expect(codeOf(() => validateIfname("a/b", "bridge", 7))).toBe(7);
  });
  it("network names are path-safe (code 7)", () => {
    for (const ok of ["net1", "k8s-pod-network", "a.b_c"]) expect(validateNetworkName(ok)).toBe(ok);
    for (const bad of [undefined, "", 5, "..", "../etc", "a/b", ".x", "a\0", "n".repeat(256)])
      expect(codeOf(() => validateNetworkName(bad))).toBe(7);
  });
  it("plugin types cannot be paths", () => {
    expect(validatePluginType("host-local")).toBe("host-local");
    for (const bad of ["", "../bin/sh", "/bin/sh", "a\\b", 3]) expect(codeOf(() => validatePluginType(bad))).toBe(7);
  });
});

describe("ip -batch builder", () => {
  it("joins tokens into lines", () => {
    const b = new IpBatch()
      .cmd("link", "set", "dev", "eth0", "mtu", 1400)
      .cmd("addr", "add", "10.1.2.3/24", "dev", "eth0");
    expect(b.text()).toBe("link set dev eth0 mtu 1400\naddr add 10.1.2.3/24 dev eth0\n");
    expect(b.length).toBe(2);
  });
  it("refuses any token that could change the meaning of a line", () => {
    for (const bad of ["", "a b", "a\nlink del eth0", "#x", 'a"', "a'", "a\\", "a\0"]) {
      expect(codeOf(() => new IpBatch().cmd("link", "set", "dev", bad))).toBe(999);
    }
  });
});

describe("pod namespace script", () => {
  const batch = () => new IpBatch().cmd("link", "set", "dev", "eth0", "up");
  it("sets sysctls first, then execs the batch that comes last (no fork and wait in the shell)", () => {
    const s = new NetnsScript().sysctl(["net", "ipv4", "conf", "eth0", "arp_notify"], "1").batch(batch());
    expect(s.text()).toBe(
      "set -e\nprintf '%s' 1 > /proc/sys/net/ipv4/conf/eth0/arp_notify\n" +
        "exec ip -batch - <<'CNI_TS_BATCH_END'\nlink set dev eth0 up\nCNI_TS_BATCH_END\n",
    );
  });
  it("keeps the shell when a command follows the batch", () => {
    const s = new NetnsScript().batch(batch()).sysctl(["net", "ipv4", "conf", "eth0", "arp_notify"], "1", true);
    expect(s.text()).toContain("\nip -batch - <<'CNI_TS_BATCH_END'\n");
    expect(s.text()).not.toContain("exec");
  });
  it("refuses a sysctl value that is not a number", () => {
    expect(codeOf(() => new NetnsScript().sysctl(["net", "ipv4", "conf", "eth0", "arp_notify"], "1; reboot"))).toBe(
      999,
    );
  });
});
