import { describe, expect, it } from "vitest";
import { parseSave } from "../../lib/netfilter/iptables-save.js";
import { parseSyncArgs } from "../../plugins/routes/cli.js";
import { FORWARD_CHAIN, forwardCidrs, parseForwardAccept, planForward } from "../../plugins/routes/forward.js";
import { InputError, type NodeEntry } from "../../plugins/routes/nodelist.js";

/** A filter table as iptables-save prints it, with FORWARD's rules and (unless undefined) our chain's. */
function filter(forward: string[], ours?: string[], extraChains: string[] = []): ReturnType<typeof parseSave> {
  const lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"];
  for (const c of extraChains) lines.push(`:${c} - [0:0]`);
  if (ours) lines.push(`:${FORWARD_CHAIN} - [0:0]`);
  lines.push(
    ...forward.map((r) => `-A FORWARD ${r}`),
    ...(ours ?? []).map((r) => `-A ${FORWARD_CHAIN} ${r}`),
    "COMMIT",
  );
  return parseSave(lines.join("\n"), "filter");
}

const JUMP = `-m comment --comment "cni-ts routes sync: pod subnets" -j ${FORWARD_CHAIN}`;
const node = (name: string, podCIDRs: string[]): NodeEntry =>
  ({ name, podCIDRs, internalIPs: [] }) as unknown as NodeEntry;

describe("--forward-accept parsing", () => {
  it("takes CIDRs of both families and auto, canonical and deduplicated; empty is off", () => {
    expect(parseForwardAccept("auto")).toEqual({ auto: true, cidrs: [] });
    expect(parseForwardAccept("10.244.0.0/16,fd44::/48,auto,10.244.0.0/16")).toEqual({
      auto: true,
      cidrs: ["10.244.0.0/16", "fd44::/48"],
    });
    expect(parseForwardAccept("FD44:0::/48")).toEqual({ auto: false, cidrs: ["fd44::/48"] });
    expect(parseForwardAccept("")).toBeUndefined();
  });

  it("refuses hostile and malformed values with an InputError (exit 2, before anything is read)", () => {
    for (const bad of [
      "10.0.0.0/8 -j ACCEPT",
      "10.0.0.0/8\n-A FORWARD -j ACCEPT",
      '10.0.0.0/8"',
      "10.1.2.3/16",
      "10.0.0.0/33",
      "10.0.0.0",
      "::ffff:10.0.0.0/104",
      "fe80::/64%eth0",
      "010.0.0.0/8",
      "10.0.0.0/8,",
      ",10.0.0.0/8",
      " 10.0.0.0/8",
      "AUTO",
      "all",
      Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`).join(","),
    ]) {
      expect(() => parseForwardAccept(bad), JSON.stringify(bad)).toThrow(InputError);
    }
    expect(() => parseForwardAccept("10.1.2.3/16")).toThrow("did you mean 10.1.0.0/16?");
  });

  it("goes with the file and the controller modes, not with --cleanup", () => {
    expect(parseSyncArgs(["--nodes", "f", "--node", "n1", "--forward-accept", "auto"])).toMatchObject({
      mode: "file",
      forward: { auto: true, cidrs: [] },
    });
    expect(
      parseSyncArgs(["--nodes", "f", "--node", "n1", "--interval", "5", "--forward-accept=10.9.0.0/16"]),
    ).toMatchObject({ mode: "file", intervalMs: 5000, forward: { auto: false, cidrs: ["10.9.0.0/16"] } });
    expect(parseSyncArgs(["--kubernetes", "--forward-accept", "auto,fd44::/48"], { NODE_NAME: "n1" })).toMatchObject({
      mode: "kubernetes",
      forward: { auto: true, cidrs: ["fd44::/48"] },
    });
    expect(parseSyncArgs(["--kubernetes", "--forward-accept", ""], { NODE_NAME: "n1" })).toMatchObject({
      mode: "kubernetes",
      forward: undefined,
    });
    expect(parseSyncArgs(["--nodes", "f", "--node", "n1"])).toMatchObject({ forward: undefined });
    expect(() => parseSyncArgs(["--cleanup", "--forward-accept", "auto"])).toThrow(
      "--forward-accept does not go with --cleanup",
    );
    expect(() => parseSyncArgs(["--nodes", "f", "--node", "n1", "--forward-accept"])).toThrow(
      "--forward-accept needs a value",
    );
    expect(() => parseSyncArgs(["--nodes", "f", "--node", "n1", "--forward-accept", "1.2.3.4/32 ! -s 0/0"])).toThrow(
      InputError,
    );
  });
});

describe("the CIDRs to accept", () => {
  const nodes = [
    node("node2", ["10.244.2.0/24", "fd44:2::/64"]),
    node("node1", ["10.244.1.0/24", "fd44:1::/64"]),
    node("node3", []),
  ];

  it("auto: every node's podCIDRs, this one's included, sorted by address per family; plus the explicit ones", () => {
    expect(forwardCidrs({ auto: true, cidrs: ["10.96.0.0/12"] }, nodes)).toEqual({
      4: ["10.96.0.0/12", "10.244.1.0/24", "10.244.2.0/24"],
      6: ["fd44:1::/64", "fd44:2::/64"],
    });
    expect(forwardCidrs({ auto: false, cidrs: ["fd00::/8"] }, nodes)).toEqual({ 4: [], 6: ["fd00::/8"] });
  });

  it("auto leaves out a podCIDR from the list that is no pod subnet: a /0, host bits, not a CIDR", () => {
    const hostile = [
      node("a", ["0.0.0.0/0", "::/0"]),
      node("b", ["10.1.2.3/16", "10.0.0.0/8 -j ACCEPT", "10.244.9.0/24"]),
    ];
    expect(forwardCidrs({ auto: true, cidrs: [] }, hostile)).toEqual({ 4: ["10.244.9.0/24"], 6: [] });
  });
});

describe("planForward against a saved filter table", () => {
  it("a fresh node: declare the chain, one rule from and one to per CIDR, the jump inserted first", () => {
    const p = planForward(4, filter(["-i docker0 -j DOCKER"], undefined, ["DOCKER"]), [
      "10.244.1.0/24",
      "10.244.2.0/24",
    ]);
    expect(p.lines).toEqual([
      `:${FORWARD_CHAIN} - [0:0]`,
      `-A ${FORWARD_CHAIN} -s 10.244.1.0/24 -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -d 10.244.1.0/24 -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -s 10.244.2.0/24 -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -d 10.244.2.0/24 -j ACCEPT`,
      `-I FORWARD 1 -m comment --comment "cni-ts routes sync: pod subnets" -j ${FORWARD_CHAIN}`,
    ]);
    expect(p.changes).toEqual([
      "forward-accept: accept 10.244.1.0/24 (IPv4, forwarded from and to)",
      "forward-accept: accept 10.244.2.0/24 (IPv4, forwarded from and to)",
      "forward-accept: insert the jump to CNI-TS-FORWARD at the top of FORWARD (IPv4)",
    ]);
  });

  it("in place: nothing to restore, wherever the jump stands", () => {
    const ours = ["-s 10.244.1.0/24 -j ACCEPT", "-d 10.244.1.0/24 -j ACCEPT"];
    expect(planForward(4, filter([JUMP], ours), ["10.244.1.0/24"])).toMatchObject({ lines: [], changes: [] });
    expect(planForward(4, filter(["-j DOCKER-USER", JUMP], ours, ["DOCKER-USER"]), ["10.244.1.0/24"])).toMatchObject({
      lines: [],
      changes: [],
    });
    // ip6tables-save prints the same layout.
    expect(
      planForward(6, filter([JUMP], ["-s fd44:1::/64 -j ACCEPT", "-d fd44:1::/64 -j ACCEPT"]), ["fd44:1::/64"]).lines,
    ).toEqual([]);
  });

  it("a changed set: our chain rewritten as a whole (the jump kept), and nothing of anyone else named", () => {
    const p = planForward(
      4,
      filter(
        ["-j DOCKER-USER", JUMP, "-o eth9 -j DROP"],
        ["-s 10.244.1.0/24 -j ACCEPT", "-d 10.244.1.0/24 -j ACCEPT"],
        ["DOCKER-USER"],
      ),
      ["10.244.2.0/24"],
    );
    expect(p.lines).toEqual([
      `:${FORWARD_CHAIN} - [0:0]`,
      `-A ${FORWARD_CHAIN} -s 10.244.2.0/24 -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -d 10.244.2.0/24 -j ACCEPT`,
    ]);
    expect(p.changes).toEqual([
      "forward-accept: accept 10.244.2.0/24 (IPv4, forwarded from and to)",
      "forward-accept: stop accepting 10.244.1.0/24 (IPv4)",
    ]);
  });

  it("a rule of our chain edited by hand: rewritten; duplicate or altered jumps from FORWARD deleted, the right one kept", () => {
    const p = planForward(
      4,
      filter([JUMP, `-i eth0 -j ${FORWARD_CHAIN}`, JUMP], ["-s 10.244.1.0/24 -j DROP", "-d 10.244.1.0/24 -j ACCEPT"]),
      ["10.244.1.0/24"],
    );
    expect(p.lines).toEqual([
      `:${FORWARD_CHAIN} - [0:0]`,
      `-A ${FORWARD_CHAIN} -s 10.244.1.0/24 -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -d 10.244.1.0/24 -j ACCEPT`,
      `-D FORWARD -i eth0 -j ${FORWARD_CHAIN}`,
      `-D FORWARD ${JUMP}`,
    ]);
    expect(p.changes[0]).toBe("forward-accept: rewrite chain CNI-TS-FORWARD (IPv4): its rules differ from ours");
  });

  it("no CIDR: the chain and every jump to it go; nothing at all when they are not there", () => {
    const p = planForward(
      6,
      filter([JUMP, "-o eth9 -j DROP"], ["-s fd44:1::/64 -j ACCEPT", "-d fd44:1::/64 -j ACCEPT"]),
      [],
    );
    expect(p.lines).toEqual([`-D FORWARD ${JUMP}`, `-F ${FORWARD_CHAIN}`, `-X ${FORWARD_CHAIN}`]);
    expect(p.changes).toEqual([
      "forward-accept: delete chain CNI-TS-FORWARD and its jump from FORWARD (IPv6; it accepted fd44:1::/64)",
    ]);
    expect(planForward(4, filter(["-o eth9 -j DROP"]), [])).toMatchObject({ lines: [], changes: [] });
  });
});
