import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import type { NetConf, Result } from "../../lib/types.js";
import { backendOfConditions, loadPortmapConfig } from "../../plugins/portmap/config.js";
import { podAddresses } from "../../plugins/portmap/pod.js";

const base = (o: Record<string, unknown> = {}): NetConf =>
  ({ cniVersion: "1.0.0", name: "net1", type: "portmap", backend: "iptables", ...o }) as NetConf;
const load = (o: Record<string, unknown> = {}) => loadPortmapConfig(base(o));
const withMaps = (portMappings: unknown, o: Record<string, unknown> = {}) =>
  load({ runtimeConfig: { portMappings }, ...o });

function error(f: () => unknown): { code: number; msg: string } | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CniError ? { code: e.code, msg: e.message } : { code: -1, msg: String(e) };
  }
  return undefined;
}

describe("portmap config", () => {
  it("has the reference's defaults", () => {
    expect(load()).toMatchObject({
      mappings: [],
      snat: true,
      masqAll: false,
      markMasqBit: 13,
      externalSetMarkChain: undefined,
      conditionsV4: [],
      conditionsV6: [],
      backend: "iptables",
    });
  });

  it("reads portMappings, lower-cases the protocol, canonicalises hostIP and treats 0.0.0.0 / :: as any address of one family", () => {
    const c = withMaps([
      { hostPort: 8080, containerPort: 80, protocol: "TCP" },
      { hostPort: 53, containerPort: 53, protocol: "udp", hostIP: "192.0.2.1" },
      { hostPort: 9000, containerPort: 9000, protocol: "sctp", hostIP: "2001:DB8::0001" },
      { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIP: "0.0.0.0" },
      { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIP: "::" },
      { hostPort: 7000, containerPort: 7000, protocol: "tcp", hostIP: "" },
    ]);
    expect(c.mappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: undefined, family: undefined },
      { hostPort: 53, containerPort: 53, protocol: "udp", hostIP: "192.0.2.1", family: 4 },
      { hostPort: 9000, containerPort: 9000, protocol: "sctp", hostIP: "2001:db8::1", family: 6 },
      { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIP: undefined, family: 4 },
      { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIP: undefined, family: 6 },
      { hostPort: 7000, containerPort: 7000, protocol: "tcp", hostIP: undefined, family: undefined },
    ]);
  });

  it("refuses bad ports, protocols and host addresses with code 7 naming the field", () => {
    for (const [m, field] of [
      [{ hostPort: 0, containerPort: 80, protocol: "tcp" }, "hostPort"],
      [{ hostPort: 65536, containerPort: 80, protocol: "tcp" }, "hostPort"],
      [{ hostPort: "80", containerPort: 80, protocol: "tcp" }, "hostPort"],
      [{ hostPort: 80, containerPort: 1.5, protocol: "tcp" }, "containerPort"],
      [{ hostPort: 80, containerPort: -1, protocol: "tcp" }, "containerPort"],
      [{ hostPort: 80, containerPort: 80, protocol: "icmp" }, "protocol"],
      [{ hostPort: 80, containerPort: 80 }, "protocol"],
      [{ hostPort: 80, containerPort: 80, protocol: "tcp", hostIP: "node1" }, "hostIP"],
      [{ hostPort: 80, containerPort: 80, protocol: "tcp", hostIP: "10.0.0.1/24" }, "hostIP"],
    ] as const) {
      const e = error(() => withMaps([m]));
      expect(e?.code, JSON.stringify(m)).toBe(7);
      expect(e?.msg).toContain(`portMappings[0].${field}`);
    }
    expect(error(() => withMaps("8080:80"))?.code).toBe(7);
    expect(error(() => withMaps([null]))?.code).toBe(7);
  });

  it("keeps one of two identical mappings, and refuses one host port mapped to two container ports", () => {
    expect(
      withMaps([
        { hostPort: 80, containerPort: 8080, protocol: "tcp" },
        { hostPort: 80, containerPort: 8080, protocol: "tcp" },
      ]).mappings,
    ).toHaveLength(1);
    expect(
      error(() =>
        withMaps([
          { hostPort: 80, containerPort: 8080, protocol: "tcp" },
          { hostPort: 80, containerPort: 9090, protocol: "tcp" },
        ]),
      )?.code,
    ).toBe(7);
    // The same port on two protocols, or on two host addresses, is two mappings.
    expect(
      withMaps([
        { hostPort: 80, containerPort: 1, protocol: "tcp" },
        { hostPort: 80, containerPort: 2, protocol: "udp" },
      ]).mappings,
    ).toHaveLength(2);
  });

  it("validates snat, masqAll, markMasqBit and externalSetMarkChain like the reference", () => {
    expect(load({ snat: false, masqAll: true, markMasqBit: 5 })).toMatchObject({
      snat: false,
      masqAll: true,
      markMasqBit: 5,
    });
    expect(error(() => load({ markMasqBit: 32 }))?.code).toBe(7);
    expect(error(() => load({ markMasqBit: -1 }))?.code).toBe(7);
    expect(error(() => load({ snat: "yes" }))?.code).toBe(7);
    expect(error(() => load({ markMasqBit: 13, externalSetMarkChain: "KUBE-MARK-MASQ" }))?.msg).toBe(
      "Cannot specify externalSetMarkChain and markMasqBit",
    );
    expect(load({ externalSetMarkChain: "KUBE-MARK-MASQ" }).externalSetMarkChain).toBe("KUBE-MARK-MASQ");
    expect(error(() => load({ externalSetMarkChain: "-j ACCEPT" }))?.code).toBe(7);
    expect(error(() => load({ externalSetMarkChain: "A".repeat(29) }))?.code).toBe(7);
  });

  it("tells iptables conditions from nft ones and refuses the wrong backend's", () => {
    expect(backendOfConditions(["-s", "10.0.0.0/8"])).toBe("iptables");
    expect(backendOfConditions(["!", "-d", "10.0.0.0/8"])).toBe("iptables");
    expect(backendOfConditions(["ip saddr 10.0.0.0/8"])).toBe("nftables");
    expect(backendOfConditions([])).toBeUndefined();
    expect(error(() => load({ backend: "nftables", conditionsV4: ["-s", "10.0.0.0/8"] }))?.msg).toContain(
      "iptables-specific options [conditionsV4]",
    );
    expect(error(() => load({ backend: "nftables", externalSetMarkChain: "X" }))?.msg).toContain(
      "[externalSetMarkChain]",
    );
    expect(error(() => load({ backend: "iptables", conditionsV6: ["ip6 saddr ::1"] }))?.msg).toContain(
      "nftables-specific options [conditionsV6]",
    );
    expect(error(() => load({ backend: "pf" }))?.code).toBe(7);
  });

  it("refuses conditions that could end the rule or add one", () => {
    expect(error(() => load({ backend: "nftables", conditionsV4: ["ip saddr 10.0.0.0/8; flush ruleset"] }))?.code).toBe(
      7,
    );
    expect(error(() => load({ backend: "nftables", conditionsV4: ["ip saddr 10.0.0.0/8 # x"] }))?.code).toBe(7);
    expect(error(() => load({ conditionsV4: ["-s", "10.0.0.0/8\n-A INPUT -j ACCEPT"] }))?.code).toBe(7);
    expect(error(() => load({ conditionsV4: "-s 10.0.0.0/8" }))?.code).toBe(7);
  });

  describe("default backend", () => {
    const saved = process.env.PATH;
    let dir: string | undefined;
    afterEach(() => {
      process.env.PATH = saved;
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const pathWith = (...tools: string[]) => {
      dir = mkdtempSync(join(tmpdir(), "pm-path-"));
      mkdirSync(join(dir, "bin"));
      for (const t of tools) symlinkSync("/bin/true", join(dir, "bin", t));
      process.env.PATH = join(dir, "bin");
    };
    const noBackend = (o: Record<string, unknown> = {}) =>
      loadPortmapConfig({ cniVersion: "1.0.0", name: "n", type: "portmap", ...o } as NetConf);

    it("is iptables when iptables exists, nftables when only nft does (the reference's rule)", () => {
      pathWith("iptables", "nft");
      expect(noBackend().backend).toBe("iptables");
      pathWith("nft");
      expect(noBackend().backend).toBe("nftables");
    });
    it("follows backend-specific keys when the config names no backend", () => {
      pathWith("iptables", "nft");
      expect(noBackend({ conditionsV4: ["ip saddr 10.0.0.0/8"] }).backend).toBe("nftables");
      pathWith("nft");
      expect(noBackend({ externalSetMarkChain: "MARK-IT" }).backend).toBe("iptables");
    });
  });
});

describe("portmap pod addresses (from prevResult)", () => {
  const prev: Result = {
    interfaces: [
      { name: "cni0", mac: "aa:aa:aa:aa:aa:aa" },
      { name: "veth1", mac: "bb:bb:bb:bb:bb:bb" },
      { name: "eth0", mac: "cc:cc:cc:cc:cc:cc", sandbox: "/var/run/netns/p" },
    ],
    ips: [
      { address: "10.9.9.9/24", interface: 0 },
      { address: "10.1.0.5/24", interface: 2, gateway: "10.1.0.1" },
      { address: "10.1.0.6/24", interface: 2 },
      { address: "FD00::0005/64", interface: 2 },
    ],
  };

  it("takes the first address of each family on the container interface, with its subnet", () => {
    expect(podAddresses(prev, "eth0")).toEqual([
      { family: 4, ip: "10.1.0.5", subnet: "10.1.0.0/24" },
      { family: 6, ip: "fd00::5", subnet: "fd00::/64" },
    ]);
  });
  it("skips host interfaces and other container interfaces; takes addresses without an index", () => {
    expect(podAddresses(prev, "net1")).toEqual([]);
    expect(podAddresses({ ips: [{ address: "10.2.0.7/16" }] }, "eth0")).toEqual([
      { family: 4, ip: "10.2.0.7", subnet: "10.2.0.0/16" },
    ]);
    expect(podAddresses({ interfaces: [], ips: [{ address: "10.2.0.7/16", interface: 4 }] }, "eth0")).toHaveLength(1);
    expect(podAddresses({}, "eth0")).toEqual([]);
  });
});
