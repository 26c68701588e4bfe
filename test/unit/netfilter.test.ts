import { describe, expect, it } from "vitest";
import { classifyStderr, ToolError } from "../../lib/tool-error.js";
import { canonicalAddr, canonicalCidr, hostAddr, hostCidr, nftAddrText } from "../../lib/netfilter/addr.js";
import { deleteChainLines } from "../../lib/netfilter/iptables.js";
import {
  canonicalRule,
  deleteCommentedLines,
  deleteLine,
  ensureRuleLines,
  hasRule,
  option,
  parseSave,
  quoteWord,
  ruleComment,
  ruleLine,
  ruleTarget,
  rulesOf,
  tokenize,
} from "../../lib/netfilter/iptables-save.js";
import {
  chainsOf,
  deleteRuleLine,
  dropSetElement,
  elementsOf,
  nftFailure,
  parseNftJson,
  tableMissing,
  unwrapElem,
} from "../../lib/netfilter/nft.js";

// What nft 1.0.6 prints (kernel 6.18, in a namespace) for each way a transaction on a table of ours can fail.
const NFT = {
  // A map key held with another value (a hostPort or an address another owner holds).
  mapValue:
    "/dev/stdin:1:24-31: Error: Could not process rule: File exists\nadd element inet t m { tcp . 80 : 10.0.0.2 . 80 }\n                       ^^^^^^^^",
  // An interval overlapping one already there (`create`).
  overlap:
    "/dev/stdin:1:27-48: Error: Could not process rule: File exists\ncreate element inet t l { 10.0.0.1 . 10.0.0.0/16 }\n                          ^^^^^^^^^^^^^^^^^^^^^^",
  // Older kernels answer a map key of another value with EBUSY.
  busy: "/dev/stdin:1:24-31: Error: Could not process rule: Device or resource busy\nadd element inet t o { 10.0.0.1 : 0x2 }\n                       ^^^^^^^^",
  // A rule a concurrent DEL removed.
  handleGone:
    "/dev/stdin:1:29-31: Error: Could not process rule: No such file or directory\ndelete rule inet t c handle 999\n                            ^^^",
  elementGone:
    "/dev/stdin:1:41-48: Error: Could not process rule: No such file or directory\ndelete element inet cni_ts_masq pods4 { 10.0.0.2 }\n                                        ^^^^^^^^",
  noTable:
    "/dev/stdin:1:21-31: Error: No such file or directory\ndelete element inet cni_ts_masq pods4 { 10.0.0.2 }\n                    ^^^^^^^^^^^",
  noSet:
    "/dev/stdin:1:20-25: Error: No such file or directory\nadd element inet t nosuch { 10.0.0.2 }\n                   ^^^^^^",
  syntax:
    "/dev/stdin:1:24-24: Error: syntax error, unexpected newline\nadd rule inet t c bogus\n                       ^",
};
const nftError = (stderr: string) => new ToolError({ tool: "nft", what: "nft -f -", status: 1, stderr });

describe("nft failures", () => {
  it("calls a key held by another owner or an overlapping interval 'taken' (EEXIST, or EBUSY on older kernels)", () => {
    expect(nftFailure(nftError(NFT.mapValue), "t")).toBe("taken");
    expect(nftFailure(nftError(NFT.overlap), "t")).toBe("taken");
    expect(nftFailure(nftError(NFT.busy), "t")).toBe("taken");
  });
  it("calls an element, rule or set that vanished 'gone', and a missing table 'no-table'", () => {
    expect(nftFailure(nftError(NFT.handleGone), "t")).toBe("gone");
    expect(nftFailure(nftError(NFT.elementGone), "cni_ts_masq")).toBe("gone");
    expect(nftFailure(nftError(NFT.noSet), "t")).toBe("gone");
    expect(nftFailure(nftError(NFT.noTable), "cni_ts_masq")).toBe("no-table");
    // Another table's absence is not ours.
    expect(nftFailure(nftError(NFT.noTable), "cni_ts_portmap")).toBe("gone");
  });
  it("calls anything else 'failed', which no fresh read can fix", () => {
    expect(nftFailure(nftError(NFT.syntax), "t")).toBe("failed");
    expect(nftFailure(nftError("Error: Operation not permitted"), "t")).toBe("failed");
  });
  it("recognises nft's answer for a missing table, and only that", () => {
    expect(tableMissing(NFT.noTable, "cni_ts_masq")).toBe(true);
    expect(tableMissing(NFT.elementGone, "cni_ts_masq")).toBe(false);
    expect(
      tableMissing(
        "/dev/stdin:1:21-26: Error: No such file or directory\ndelete element inet other pods4 { 10.0.0.2 }\n",
        "cni_ts_masq",
      ),
    ).toBe(false);
    expect(tableMissing("", "cni_ts_masq")).toBe(false);
  });
});

describe("iptables failures", () => {
  it("takes iptables -N's answer for an existing chain (legacy and nft alike) as kind exists", () => {
    expect(classifyStderr("iptables: Chain already exists.\n")).toBe("exists");
    expect(
      classifyStderr("iptables v1.8.9 (nf_tables): CHAIN_USER_ADD failed (File exists): chain CNI-HOSTPORT-DNAT\n"),
    ).toBe("exists");
    expect(classifyStderr("iptables v1.8.9 (nf_tables): Couldn't load target `NOPE'\n")).toBe("failed");
  });
});

describe("nft JSON and element syntax", () => {
  it("unwraps elements with and without comment", () => {
    expect(unwrapElem({ elem: { val: "10.0.0.1", comment: "c" } })).toEqual({ val: "10.0.0.1", comment: "c" });
    expect(unwrapElem("10.0.0.1")).toEqual({ val: "10.0.0.1" });
  });
  it("reads nft -j output and refuses what is no JSON with code 6 (decoding failure)", () => {
    expect(parseNftJson('{"nftables":[{"table":{"name":"t"}}]}', "x")).toEqual([{ table: { name: "t" } }]);
    expect(() => parseNftJson("{", "x")).toThrow(expect.objectContaining({ code: 6 }));
  });
  it("reads sets, maps and chains of a listing, with comments, values and rule handles", () => {
    const objects = parseNftJson(
      JSON.stringify({
        nftables: [
          { metainfo: { version: "1.0.6" } },
          { table: { family: "inet", name: "t", handle: 1 } },
          {
            set: {
              family: "inet",
              name: "s",
              table: "t",
              type: "ipv4_addr",
              elem: ["10.0.0.1", { elem: { val: "10.0.0.2", comment: "o" } }],
            },
          },
          {
            map: {
              family: "inet",
              name: "m",
              table: "t",
              type: "ipv4_addr",
              map: "mark",
              elem: [[{ elem: { val: "10.0.0.1", comment: "o" } }, 7]],
            },
          },
          {
            chain: {
              family: "inet",
              table: "t",
              name: "post",
              handle: 2,
              type: "nat",
              hook: "postrouting",
              prio: 100,
              policy: "accept",
            },
          },
          {
            rule: {
              family: "inet",
              table: "t",
              chain: "post",
              handle: 3,
              comment: "tag",
              expr: [{ masquerade: null }],
            },
          },
          { rule: { family: "inet", table: "t", chain: "plain", handle: 4, expr: [{ accept: null }] } },
        ],
      }),
      "x",
    );
    const elements = elementsOf(objects);
    expect(elements.get("s")).toEqual([{ val: "10.0.0.1" }, { val: "10.0.0.2", comment: "o" }]);
    expect(elements.get("m")).toEqual([{ val: "10.0.0.1", comment: "o", value: 7 }]);
    const chains = chainsOf(objects);
    expect(chains.get("post")).toEqual({
      hook: "postrouting",
      type: "nat",
      rules: [{ handle: 3, comment: "tag", expr: [{ masquerade: null }] }],
    });
    expect(chains.get("plain")).toEqual({ rules: [{ handle: 4, comment: undefined, expr: [{ accept: null }] }] });
    expect(deleteRuleLine("inet t", "post", 3)).toBe("delete rule inet t post handle 3");
  });
  it("deletes a set element whether or not it is there: add, then delete, in one transaction", () => {
    expect(dropSetElement("inet t", "s", "10.0.0.1")).toEqual([
      "add element inet t s { 10.0.0.1 }",
      "delete element inet t s { 10.0.0.1 }",
    ]);
  });
});

describe("canonical addresses", () => {
  it("writes addresses as iptables prints them: masked, with the prefix", () => {
    expect(canonicalCidr("10.1.0.7/24")).toBe("10.1.0.0/24");
    expect(canonicalCidr("10.1.0.5")).toBe("10.1.0.5/32");
    expect(canonicalCidr("fd00:0::5")).toBe("fd00::5/128");
    expect(canonicalCidr("10.1.0.5", 6)).toBeUndefined();
    expect(canonicalCidr("eth0")).toBeUndefined();
    expect(canonicalAddr("eth0")).toBe("eth0");
    expect(hostCidr("10.1.0.5", 4)).toBe("10.1.0.5/32");
    expect(hostAddr("10.1.0.5/24")).toBe("10.1.0.5");
    expect(hostAddr("FD00::5")).toBe("fd00::5");
  });
  it("writes addresses as nft prints them: a full prefix as a bare address", () => {
    expect(nftAddrText("10.1.0.5/32")).toBe("10.1.0.5");
    expect(nftAddrText("10.1.0.7/24")).toBe("10.1.0.0/24");
    expect(nftAddrText("::/0")).toBe("::/0");
    expect(nftAddrText("fd00::1")).toBe("fd00::1");
  });
});

const SAVE = `# Generated by iptables-save
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-a - [0:0]
:CNI-b - [0:0]
-A POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j CNI-a
-A POSTROUTING -s 10.1.0.6/32 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j CNI-a
-A CNI-a -d 10.1.0.0/24 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j ACCEPT
-A CNI-a ! -d 224.0.0.0/4 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j MASQUERADE
COMMIT
`;

describe("iptables-save reading", () => {
  it("keeps only the table asked for, with its chains and rules split as iptables-restore reads them", () => {
    const nat = parseSave(SAVE);
    expect([...nat.chains]).toEqual(["PREROUTING", "POSTROUTING", "CNI-a", "CNI-b"]);
    expect(rulesOf(nat, "POSTROUTING").map(ruleTarget)).toEqual(["CNI-a", "CNI-a"]);
    expect(option(rulesOf(nat, "CNI-a")[0]!.args, "--comment")?.value).toBe('name: "net1" id: "c1"');
    expect(option(rulesOf(nat, "CNI-a")[1]!.args, "-d")).toEqual({ value: "224.0.0.0/4", negated: true });
    expect(parseSave(SAVE, "filter").rules.map((r) => r.chain)).toEqual(["INPUT"]);
    expect(deleteLine(rulesOf(nat, "CNI-a")[0]!)).toBe(
      '-D CNI-a -d 10.1.0.0/24 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j ACCEPT',
    );
  });
  it("finds a rule however it was spelled", () => {
    const nat = parseSave(SAVE);
    expect(
      hasRule(nat, "POSTROUTING", [
        "-s",
        "10.1.0.5",
        "-j",
        "CNI-a",
        "-m",
        "comment",
        "--comment",
        'name: "net1" id: "c1"',
      ]),
    ).toBe(false);
    expect(
      hasRule(nat, "POSTROUTING", [
        "-s",
        "10.1.0.5",
        "-m",
        "comment",
        "--comment",
        'name: "net1" id: "c1"',
        "-j",
        "CNI-a",
      ]),
    ).toBe(true);
  });
  it("adds a rule only when no equal one is there (ensure-jump), appended or inserted first", () => {
    const nat = parseSave(SAVE);
    const jump = ["-s", "10.1.0.5", "-m", "comment", "--comment", 'name: "net1" id: "c1"', "-j", "CNI-a"];
    expect(ensureRuleLines(nat, "POSTROUTING", jump)).toEqual([]);
    expect(ensureRuleLines(nat, "POSTROUTING", ["-j", "CNI-b"], 1)).toEqual(["-I POSTROUTING 1 -j CNI-b"]);
    expect(ensureRuleLines(nat, "PREROUTING", ["-j", "CNI-b"])).toEqual(["-A PREROUTING -j CNI-b"]);
  });
  it("deletes rules by their comment", () => {
    const nat = parseSave(SAVE);
    expect(ruleComment(rulesOf(nat, "CNI-a")[0]!)).toBe('name: "net1" id: "c1"');
    expect(deleteCommentedLines(nat, (c) => c.includes('"c1"'), "POSTROUTING")).toHaveLength(2);
    expect(deleteCommentedLines(nat, (c) => c.includes('"c1"'))).toHaveLength(4);
    expect(deleteCommentedLines(nat, (c) => c.includes('"c2"'))).toEqual([]);
  });
  it("deletes chains with every jump to them, sparing a chain a kept jump still uses", () => {
    const nat = parseSave(SAVE);
    const all = deleteChainLines(nat, new Set(["CNI-a", "CNI-b", "CNI-gone"]));
    expect(all).toEqual([
      '-D POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j CNI-a',
      '-D POSTROUTING -s 10.1.0.6/32 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j CNI-a',
      "-F CNI-a",
      "-X CNI-a",
      "-F CNI-b",
      "-X CNI-b",
    ]);
    const keep6 = deleteChainLines(nat, new Set(["CNI-a"]), (r) => option(r.args, "-s")?.value === "10.1.0.6/32");
    expect(keep6).toEqual([
      '-D POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \\"net1\\" id: \\"c1\\"" -j CNI-a',
    ]);
    expect(deleteChainLines(parseSave(""), new Set(["CNI-a"]))).toEqual([]);
  });
});

describe("iptables-save reading and canonical rules", () => {
  it("tokenizes quoted comments with escaped quotes", () => {
    expect(tokenize('-A X -m comment --comment "dnat name: \\"n\\" id: \\"c\\"" -j Y')).toEqual([
      "-A",
      "X",
      "-m",
      "comment",
      "--comment",
      'dnat name: "n" id: "c"',
      "-j",
      "Y",
    ]);
  });
  it("quotes words for iptables-restore only when needed, and round-trips them", () => {
    expect(quoteWord("10.0.0.0/8")).toBe("10.0.0.0/8");
    expect(quoteWord("[fd00::1]:80")).toBe("[fd00::1]:80");
    const line = ruleLine("-A", "X", ["-m", "comment", "--comment", 'dnat name: "n" id: "c"', "-j", "Y"]);
    expect(tokenize(line).slice(2)).toEqual(["-m", "comment", "--comment", 'dnat name: "n" id: "c"', "-j", "Y"]);
  });
  it("treats what iptables-save prints and what we wrote as the same rule", () => {
    const ours = ["-p", "tcp", "--dport", "8080", "-d", "192.0.2.1", "-s", "10.77.0.2/24", "-j", "S"];
    const saved = tokenize("-s 10.77.0.0/24 -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -j S");
    expect(canonicalRule(ours)).toBe(canonicalRule(saved));
    expect(canonicalRule(["-m", "multiport", "-p", "udp", "--destination-ports", "1,2", "-j", "C"])).toBe(
      canonicalRule(tokenize("-p udp -m multiport --dports 1,2 -j C")),
    );
    expect(canonicalRule(["!", "-s", "10.0.0.0/8", "-j", "C"])).not.toBe(
      canonicalRule(["-s", "10.0.0.0/8", "-j", "C"]),
    );
    expect(canonicalRule(["-p", "tcp", "--dport", "1", "-s", "0.0.0.0/0", "-j", "C"])).toBe(
      canonicalRule(tokenize("-p tcp -m tcp --dport 1 -j C")),
    );
    expect(canonicalRule(["-p", "tcp", "--dport", "1", "-j", "C"])).not.toBe(
      canonicalRule(["-p", "tcp", "--dport", "2", "-j", "C"]),
    );
  });
});
