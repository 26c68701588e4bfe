import { describe, expect, it } from "vitest";
import type { NetConf } from "../../lib/types.js";
import { loadPortmapConfig, type PortmapConfig } from "../../plugins/portmap/config.js";
import {
  dnatChainName,
  dnatComment,
  nftNetworkTag,
  nftOwner,
  oldSnatChainName,
} from "../../plugins/portmap/identity.js";
import { parseDnatComment } from "../../plugins/portmap/iptables.js";
import {
  dnatChainRules,
  dnatEntryRules,
  markDef,
  masqRule,
  setMarkRule,
} from "../../plugins/portmap/iptables-rules.js";
import { canonicalRule, parseSave } from "../../lib/netfilter/iptables-save.js";
import { parseListing } from "../../plugins/portmap/nft.js";
import {
  addLines,
  claimOfMapElem,
  claimsOverlap,
  condComment,
  constantRules,
  declarations,
  desiredState,
  netText,
  parseCondComment,
} from "../../plugins/portmap/nft-rules.js";
import type { PodAddr } from "../../plugins/portmap/pod.js";

const conf = (portMappings: unknown[], o: Record<string, unknown> = {}, backend = "iptables"): PortmapConfig =>
  loadPortmapConfig({
    cniVersion: "1.0.0",
    name: "pmnet",
    type: "portmap",
    backend,
    runtimeConfig: { portMappings },
    ...o,
  } as NetConf);

const POD4: PodAddr = { family: 4, ip: "10.77.0.2", subnet: "10.77.0.0/24" };
const POD6: PodAddr = { family: 6, ip: "fd77::2", subnet: "fd77::/64" };
const MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: "tcp" },
  { hostPort: 8081, containerPort: 81, protocol: "udp", hostIP: "192.0.2.1" },
  { hostPort: 8082, containerPort: 82, protocol: "tcp", hostIP: "::" },
];

// What the reference portmap 1.1.1 wrote for MAPPINGS, network pmnet, container ctr1, pod 10.77.0.2/24 + fd77::2/64
// (iptables-save -t nat, measured on this machine).
const REFERENCE_V4 = `*nat
:CNI-DN-323d23e06ba2fdaccfbf7 - [0:0]
-A CNI-DN-323d23e06ba2fdaccfbf7 -s 10.77.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.77.0.2:80
-A CNI-DN-323d23e06ba2fdaccfbf7 -s 10.77.0.0/24 -d 192.0.2.1/32 -p udp -m udp --dport 8081 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -s 127.0.0.1/32 -d 192.0.2.1/32 -p udp -m udp --dport 8081 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -d 192.0.2.1/32 -p udp -m udp --dport 8081 -j DNAT --to-destination 10.77.0.2:81
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"pmnet\\" id: \\"ctr1\\"" -m multiport --dports 8080,8082 -j CNI-DN-323d23e06ba2fdaccfbf7
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"pmnet\\" id: \\"ctr1\\"" -m multiport --dports 8081 -j CNI-DN-323d23e06ba2fdaccfbf7
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT`;
const REFERENCE_V6_CHAIN = `*nat
-A CNI-DN-323d23e06ba2fdaccfbf7 -s fd77::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd77::2]:80
-A CNI-DN-323d23e06ba2fdaccfbf7 -s fd77::/64 -p tcp -m tcp --dport 8082 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-323d23e06ba2fdaccfbf7 -p tcp -m tcp --dport 8082 -j DNAT --to-destination [fd77::2]:82
COMMIT`;

const canonOf = (text: string, chain: string) =>
  parseSave(text)
    .rules.filter((r) => r.chain === chain)
    .map((r) => canonicalRule(r.args));

describe("portmap identity", () => {
  it("names chains and comments exactly as the reference does", () => {
    expect(dnatChainName("pmnet", "ctr1")).toBe("CNI-DN-323d23e06ba2fdaccfbf7");
    expect(dnatChainName("pmnet", "ctr1")).toHaveLength(28);
    expect(oldSnatChainName("pmnet", "ctr1")).toMatch(/^CNI-SN-[0-9a-f]{21}$/);
    expect(dnatComment("pmnet", "ctr1")).toBe('dnat name: "pmnet" id: "ctr1"');
    expect(dnatComment("n".repeat(250), "c")).toHaveLength(256);
    expect(parseDnatComment('dnat name: "pmnet" id: "ctr1"')).toEqual({ network: "pmnet", containerID: "ctr1" });
    expect(parseDnatComment('name: "pmnet" id: "ctr1"')).toBeUndefined();
  });
  it("gives nft owners a per-network prefix and a per-attachment suffix", () => {
    const a = nftOwner("pmnet", "ctr1", "eth0");
    expect(a).toMatch(/^[0-9a-f]{16}-[0-9a-f]{16}$/);
    expect(a.startsWith(`${nftNetworkTag("pmnet")}-`)).toBe(true);
    expect(nftOwner("pmnet", "ctr1", "net1")).not.toBe(a);
    expect(nftOwner("other", "ctr1", "eth0").split("-")[1]).toBe(a.split("-")[1]);
  });
});

describe("portmap iptables rules", () => {
  const c = conf(MAPPINGS);
  const chain = dnatChainName("pmnet", "ctr1");

  it("are the reference's CNI-DN rules, in its order, for each family", () => {
    expect(dnatChainRules(c, POD4).map(canonicalRule)).toEqual(canonOf(REFERENCE_V4, chain));
    expect(dnatChainRules(c, POD6).map(canonicalRule)).toEqual(canonOf(REFERENCE_V6_CHAIN, chain));
  });
  it("are the reference's entry rules (ports of every family, grouped by sorted protocol)", () => {
    expect(dnatEntryRules(c, 4, chain, dnatComment("pmnet", "ctr1")).map(canonicalRule)).toEqual(
      canonOf(REFERENCE_V4, "CNI-HOSTPORT-DNAT"),
    );
  });
  it("are the reference's shared mark and masquerade rules", () => {
    expect(canonicalRule(setMarkRule(13))).toEqual(canonOf(REFERENCE_V4, "CNI-HOSTPORT-SETMARK")[0]);
    expect(canonicalRule(masqRule(13))).toEqual(canonOf(REFERENCE_V4, "CNI-HOSTPORT-MASQ")[0]);
    expect(markDef(0)).toBe("0x1/0x1");
    expect(markDef(31)).toBe("0x80000000/0x80000000");
  });
  it("mark from anywhere with masqAll, nothing without snat, and jump to an external mark chain", () => {
    const all = dnatChainRules(conf([MAPPINGS[0]], { masqAll: true }), POD4);
    expect(all.map((r) => r.join(" "))).toEqual([
      "-p tcp --dport 8080 -s 0.0.0.0/0 -j CNI-HOSTPORT-SETMARK",
      "-p tcp --dport 8080 -j DNAT --to-destination 10.77.0.2:80",
    ]);
    expect(dnatChainRules(conf([MAPPINGS[0]], { snat: false }), POD4)).toHaveLength(1);
    expect(dnatChainRules(conf([MAPPINGS[0]], { externalSetMarkChain: "KUBE-MARK-MASQ" }), POD6)[0]).toContain(
      "KUBE-MARK-MASQ",
    );
  });
  it("split entry rules at 15 ports (multiport's limit) and append the family's conditions", () => {
    const many = Array.from({ length: 16 }, (_, i) => ({ hostPort: 9000 + i, containerPort: 80 + i, protocol: "tcp" }));
    const entries = dnatEntryRules(conf(many, { conditionsV4: ["-i", "eth0"] }), 4, chain, "c");
    expect(entries).toHaveLength(2);
    expect(entries[0]).toContain(
      many
        .slice(0, 15)
        .map((m) => m.hostPort)
        .join(","),
    );
    expect(entries[1]!.slice(-4)).toEqual(["-i", "eth0", "-j", chain]);
    expect(dnatEntryRules(conf(many, { conditionsV4: ["-i", "eth0"] }), 6, chain, "c")[1]).not.toContain("eth0");
  });
});

describe("portmap nftables state", () => {
  const owner = nftOwner("pmnet", "ctr1", "eth0");

  it("puts each mapping in the right map, with hairpin and localhost masquerade elements", () => {
    const d = desiredState(conf(MAPPINGS, {}, "nftables"), owner, [POD4, POD6]);
    expect(d.maps).toEqual([
      { map: "dnat4", key: "tcp . 8080", value: "10.77.0.2 . 80" },
      { map: "dnatip4", key: "192.0.2.1 . udp . 8081", value: "10.77.0.2 . 81" },
      { map: "dnat6", key: "tcp . 8080", value: "fd77::2 . 80" },
      { map: "dnat6", key: "tcp . 8082", value: "fd77::2 . 82" },
    ]);
    expect(d.sets).toEqual([
      { set: "masq4", key: "10.77.0.0/24 . 0.0.0.0/0 . tcp . 8080" },
      { set: "masq4", key: "127.0.0.0/8 . 0.0.0.0/0 . tcp . 8080" },
      { set: "masq4", key: "10.77.0.0/24 . 192.0.2.1 . udp . 8081" },
      { set: "masq4", key: "127.0.0.0/8 . 192.0.2.1 . udp . 8081" },
      { set: "masq6", key: "fd77::/64 . ::/0 . tcp . 8080" },
      { set: "masq6", key: "fd77::/64 . ::/0 . tcp . 8082" },
    ]);
    expect(d.rules).toEqual([]);
    expect(d.claims).toHaveLength(4);
  });
  it("masquerades from anywhere with masqAll, not at all without snat, and drops elements another one contains", () => {
    expect(desiredState(conf([MAPPINGS[0]], { masqAll: true }, "nftables"), owner, [POD4]).sets).toEqual([
      { set: "masq4", key: "0.0.0.0/0 . 0.0.0.0/0 . tcp . 8080" },
    ]);
    expect(desiredState(conf([MAPPINGS[0]], { snat: false }, "nftables"), owner, [POD4]).sets).toEqual([]);
    const both = desiredState(
      conf(
        [
          { hostPort: 80, containerPort: 1, protocol: "tcp" },
          { hostPort: 80, containerPort: 2, protocol: "tcp", hostIP: "192.0.2.1" },
        ],
        {},
        "nftables",
      ),
      owner,
      [POD4],
    );
    expect(both.maps).toHaveLength(2);
    expect(both.sets.map((s) => s.key)).toEqual([
      "10.77.0.0/24 . 0.0.0.0/0 . tcp . 80",
      "127.0.0.0/8 . 0.0.0.0/0 . tcp . 80",
    ]);
  });
  it("gives mappings with conditions a rule each, commented with owner and claim", () => {
    const d = desiredState(conf([MAPPINGS[0], MAPPINGS[1]], { conditionsV4: ['iifname "eth0"'] }, "nftables"), owner, [
      POD4,
      POD6,
    ]);
    expect(d.rules).toEqual([
      {
        text: 'meta nfproto ipv4 iifname "eth0" meta l4proto tcp th dport 8080 dnat ip to 10.77.0.2:80',
        comment: `${owner} tcp/8080`,
      },
      {
        text: 'meta nfproto ipv4 iifname "eth0" ip daddr 192.0.2.1 meta l4proto udp th dport 8081 dnat ip to 10.77.0.2:81',
        comment: `${owner} udp/8081@192.0.2.1`,
      },
    ]);
    expect(d.maps).toEqual([{ map: "dnat6", key: "tcp . 8080", value: "fd77::2 . 80" }]);
    expect(parseCondComment(d.rules[1]!.comment, 4)).toEqual({
      owner,
      claim: { family: 4, proto: "udp", port: 8081, hostIP: "192.0.2.1" },
    });
    expect(condComment(owner, { family: 6, proto: "tcp", port: 1, hostIP: "fd00::1" }).length).toBeLessThanOrEqual(128);
  });
  it("knows which claims collide: same family, protocol and port, and an address that can be the same", () => {
    const any = { family: 4 as const, proto: "tcp", port: 80, hostIP: undefined };
    expect(claimsOverlap(any, { ...any, hostIP: "192.0.2.1" })).toBe(true);
    expect(claimsOverlap({ ...any, hostIP: "192.0.2.2" }, { ...any, hostIP: "192.0.2.1" })).toBe(false);
    expect(claimsOverlap(any, { ...any, proto: "udp" })).toBe(false);
    expect(claimsOverlap(any, { ...any, family: 6 })).toBe(false);
    expect(claimOfMapElem({ map: "dnatip6", key: "fd00::1 . sctp . 9", value: "x" })).toEqual({
      family: 6,
      hostIP: "fd00::1",
      proto: "sctp",
      port: 9,
    });
    expect(claimOfMapElem({ map: "dnat4", key: "udp . 53", value: "x" })).toEqual({
      family: 4,
      hostIP: undefined,
      proto: "udp",
      port: 53,
    });
  });
  it("writes prefixes the way nft prints them back", () => {
    expect(netText("10.1.0.5/32")).toBe("10.1.0.5");
    expect(netText("10.1.0.5/24")).toBe("10.1.0.0/24");
    expect(netText("::/0")).toBe("::/0");
    expect(netText("FD00::1")).toBe("fd00::1");
  });
  it("has constant rules only: the script is the same for every pod", () => {
    expect(declarations().join("\n")).not.toMatch(/10\.|8080/);
    expect(constantRules().filter((r) => r.chain === "postrouting")).toHaveLength(6);
    const lines = addLines(desiredState(conf([MAPPINGS[0]], {}, "nftables"), owner, [POD4]), owner);
    expect(lines[0]).toBe(`add element inet cni_ts_portmap dnat4 { tcp . 8080 comment "${owner}" : 10.77.0.2 . 80 }`);
  });
  it("reads the table back from nft -j output into the same element texts", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        {
          map: {
            family: "inet",
            name: "dnat4",
            table: "cni_ts_portmap",
            elem: [[{ elem: { val: { concat: ["tcp", 8080] }, comment: owner } }, { concat: ["10.77.0.2", 80] }]],
          },
        },
        {
          map: {
            family: "inet",
            name: "dnatip6",
            table: "cni_ts_portmap",
            elem: [[{ concat: ["fd00::1", "sctp", 8080] }, { concat: ["fd77::2", 80] }]],
          },
        },
        {
          set: {
            family: "inet",
            name: "masq4",
            table: "cni_ts_portmap",
            elem: [
              {
                elem: {
                  val: {
                    concat: [
                      { prefix: { addr: "10.77.0.0", len: 24 } },
                      { prefix: { addr: "0.0.0.0", len: 0 } },
                      "tcp",
                      8080,
                    ],
                  },
                  comment: owner,
                },
              },
              { elem: { val: { concat: [{ prefix: { addr: "127.0.0.0", len: 8 } }, "192.0.2.1", "udp", 53] } } },
            ],
          },
        },
        { chain: { family: "inet", table: "cni_ts_portmap", name: "postrouting", type: "nat", hook: "postrouting" } },
        {
          rule: {
            family: "inet",
            table: "cni_ts_portmap",
            chain: "conditional",
            handle: 7,
            comment: `${owner} udp/53@fd00::1`,
            expr: [{ dnat: { family: "ip6", addr: "fd77::2", port: 53 } }],
          },
        },
      ],
    });
    const l = parseListing(json);
    expect(l.maps).toEqual([
      { map: "dnat4", key: "tcp . 8080", value: "10.77.0.2 . 80", owner },
      { map: "dnatip6", key: "fd00::1 . sctp . 8080", value: "fd77::2 . 80", owner: undefined },
    ]);
    expect(l.sets).toEqual([
      { set: "masq4", key: "10.77.0.0/24 . 0.0.0.0/0 . tcp . 8080", owner },
      { set: "masq4", key: "127.0.0.0/8 . 192.0.2.1 . udp . 53", owner: undefined },
    ]);
    expect(l.rules).toEqual([
      {
        handle: 7,
        comment: `${owner} udp/53@fd00::1`,
        owner,
        claim: { family: 6, proto: "udp", port: 53, hostIP: "fd00::1" },
      },
    ]);
    expect(l.chains.get("postrouting")).toMatchObject({ type: "nat", hook: "postrouting" });
  });
});
