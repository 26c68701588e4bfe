// lib/netfilter/masq (ipMasq, both backends) against the real kernel, only inside namespaces of this run:
//
//   pod  eth0 10.61.0.2/24 fd61::2/64      ── vpod  10.61.0.1/24 fd61::1/64     node (forwarding on, masq here)
//   peer eth0 10.61.1.2/24 fd61:0:0:1::2   ── vpeer 10.61.1.1/24 fd61:0:0:1::1
//   out  eth0 10.62.0.2/24 fd62::2/64      ── vout  10.62.0.1/24 fd62::1/64
//
// The pod's network CIDR (MasqEntry.subnet) is 10.61.0.0/16 and fd61::/48: "peer" stands for a pod of that
// network behind another node slice, reached through the node's routing, so traffic to it crosses POSTROUTING
// and must keep the pod's source. "out" knows no route back to the pods, so a ping from the pod answers only when
// masqueraded. Both receivers count echo requests by source address, which shows what actually arrived.
import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CniError } from "../../lib/errors.js";
import {
  addMasq,
  checkMasq,
  delMasq,
  gcMasq,
  masqKeys,
  resolveMasqBackend,
  type MasqBackend,
  type MasqEntry,
} from "../../lib/netfilter/masq.js";
import { iptablesMasqChain, iptablesMasqComment } from "../../lib/netfilter/masq-iptables.js";
import { MASQ_NFT_TABLE, nftMasqComment } from "../../lib/netfilter/masq-nft.js";
import { Sandbox } from "./helpers.js";

const sb = new Sandbox();
const ns = {
  node: { name: "", path: "" },
  pod: { name: "", path: "" },
  peer: { name: "", path: "" },
  out: { name: "", path: "" },
};

const NET = "masqnet";
const CID = "c0ffee0000000000000000000000000000000000000000000000000000000001";
const pod4: MasqEntry = { network: NET, containerID: CID, ifname: "eth0", ip: "10.61.0.2", subnet: "10.61.0.0/16" };
const pod6: MasqEntry = { network: NET, containerID: CID, ifname: "eth0", ip: "fd61::2", subnet: "fd61::/48" };

function ip(nsName: string, ...args: string[]): void {
  sb.exec(nsName, "ip", args);
}

/** Exit status 0? For commands whose failure is an expected answer (ping). */
function succeeds(nsName: string, cmd: string, args: string[]): boolean {
  return spawnSync("ip", ["netns", "exec", nsName, cmd, ...args], { encoding: "utf8", timeout: 10_000 }).status === 0;
}

function ping(to: string): boolean {
  return succeeds(ns.pod.name, "ping", [to.includes(":") ? "-6" : "-4", "-c1", "-W1", to]);
}

/** Echo requests counted so far by the receiver's probe table, per counter name. */
function probe(nsName: string): Record<string, number> {
  const doc = JSON.parse(sb.exec(nsName, "nft", ["-j", "list", "counters", "table", "inet", "probe"])) as {
    nftables: Array<{ counter?: { name: string; packets: number } }>;
  };
  const out: Record<string, number> = {};
  for (const o of doc.nftables) if (o.counter) out[o.counter.name] = o.counter.packets;
  return out;
}

/** Run fn and return how much each probe counter of nsName grew meanwhile. */
function delta(nsName: string, fn: () => void): Record<string, number> {
  const before = probe(nsName);
  fn();
  const after = probe(nsName);
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

function installProbe(nsName: string, nodeSide4: string, nodeSide6: string): void {
  const script = `
table inet probe {
  counter from_pod4 { }
  counter from_node4 { }
  counter from_pod6 { }
  counter from_node6 { }
  chain input {
    type filter hook input priority 0; policy accept;
    icmp type echo-request ip saddr 10.61.0.2 counter name "from_pod4"
    icmp type echo-request ip saddr ${nodeSide4} counter name "from_node4"
    icmpv6 type echo-request ip6 saddr fd61::2 counter name "from_pod6"
    icmpv6 type echo-request ip6 saddr ${nodeSide6} counter name "from_node6"
  }
}`;
  const r = spawnSync("ip", ["netns", "exec", nsName, "nft", "-f", "-"], { input: script, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`probe: ${r.stderr}`);
}

/** Top-level `table … { … }` blocks of `nft list ruleset`, by header line. */
function tables(): Map<string, string> {
  const out = new Map<string, string>();
  let header: string | undefined;
  let lines: string[] = [];
  // Packet counters (iptables-nft puts one on every rule) move with traffic; the rules are what is compared.
  const text = sb.exec(ns.node.name, "nft", ["list", "ruleset"]).replace(/counter packets \d+ bytes \d+/g, "counter");
  for (const line of text.split("\n")) {
    if (line.startsWith("table ")) {
      header = line.replace(/ \{$/, "");
      lines = [line];
    } else if (header !== undefined) {
      lines.push(line);
      if (line === "}") {
        out.set(header, lines.join("\n"));
        header = undefined;
      }
    }
  }
  return out;
}

/**
 * What DEL may leave behind and still count as "nothing left": our nft table with its two rules and empty sets
 * (kept so that the next ADD is one small transaction and a concurrent ADD never loses its table), and an `ip nat`
 * / `ip6 nat` table that iptables-nft created for our rules, holding no rule any more (iptables never deletes a
 * table). Such idle tables are dropped from the comparison; anything with elements or rules in it stays.
 */
function withoutIdle(t: Map<string, string>): Map<string, string> {
  const out = new Map(t);
  for (const [header, body] of t) {
    const isOurs = header === `table ${MASQ_NFT_TABLE}` && !body.includes("elements =");
    const isEmptyNat =
      /^table ip6? nat$/.test(header) &&
      body
        .split("\n")
        .map((l) => l.trim())
        .every((l) => l === "" || l === "}" || /^(table|chain|type) /.test(l));
    if (isOurs || isEmptyNat) out.delete(header);
  }
  return out;
}

/** iptables-save and ip6tables-save of nat, without timestamps and counters. */
function iptablesState(): string {
  const clean = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
      .join("\n");
  return (
    clean(sb.exec(ns.node.name, "iptables-save", ["-t", "nat"])) +
    clean(sb.exec(ns.node.name, "ip6tables-save", ["-t", "nat"]))
  );
}

function snapshot(): { nft: Map<string, string>; ipt: string } {
  return { nft: withoutIdle(tables()), ipt: iptablesState() };
}

function entry(i: number, over: Partial<MasqEntry> = {}): MasqEntry[] {
  const id = `c${i.toString().padStart(3, "0")}`;
  return [
    { network: NET, containerID: id, ifname: "eth0", ip: `10.61.2.${i}`, subnet: "10.61.0.0/16", ...over },
    {
      network: NET,
      containerID: id,
      ifname: "eth0",
      ip: `fd61:0:0:2::${i.toString(16)}`,
      subnet: "fd61::/48",
      ...over,
    },
  ];
}

beforeAll(() => {
  ns.node = sb.netns("masq-node");
  ns.pod = sb.netns("masq-pod");
  ns.peer = sb.netns("masq-peer");
  ns.out = sb.netns("masq-out");
  for (const n of [ns.node, ns.pod, ns.peer, ns.out]) {
    // DAD would keep the IPv6 addresses tentative for a second; forwarding applies to the node only.
    sb.exec(n.name, "sysctl", ["-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"]);
  }
  sb.exec(ns.node.name, "sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  // Links are created inside the node namespace with their peer born in the other one: the root namespace never
  // sees them.
  const wire = (nodeIf: string, other: string, node4: string, node6: string, other4: string, other6: string) => {
    ip(ns.node.name, "link", "add", nodeIf, "type", "veth", "peer", "name", "eth0", "netns", other);
    ip(ns.node.name, "addr", "add", node4, "dev", nodeIf);
    ip(ns.node.name, "addr", "add", node6, "dev", nodeIf, "nodad");
    ip(ns.node.name, "link", "set", nodeIf, "up");
    ip(other, "addr", "add", other4, "dev", "eth0");
    ip(other, "addr", "add", other6, "dev", "eth0", "nodad");
    ip(other, "link", "set", "eth0", "up");
  };
  wire("vpod", ns.pod.name, "10.61.0.1/24", "fd61::1/64", "10.61.0.2/24", "fd61::2/64");
  wire("vpeer", ns.peer.name, "10.61.1.1/24", "fd61:0:0:1::1/64", "10.61.1.2/24", "fd61:0:0:1::2/64");
  wire("vout", ns.out.name, "10.62.0.1/24", "fd62::1/64", "10.62.0.2/24", "fd62::2/64");
  ip(ns.pod.name, "route", "add", "default", "via", "10.61.0.1");
  ip(ns.pod.name, "-6", "route", "add", "default", "via", "fd61::1");
  ip(ns.peer.name, "route", "add", "10.61.0.0/16", "via", "10.61.1.1");
  ip(ns.peer.name, "-6", "route", "add", "fd61::/48", "via", "fd61:0:0:1::1");
  installProbe(ns.peer.name, "10.61.1.1", "fd61:0:0:1::1");
  installProbe(ns.out.name, "10.62.0.1", "fd62::1");
  // Neighbours' rules that must survive everything we do: a stand-in for the reference's own nft table, and an
  // iptables rule in the nat table we share with the iptables backend. Neither ever matches (TEST-NET source).
  const foreign = `
table inet cni_plugins_masquerade {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 192.0.2.1 masquerade
  }
}`;
  const r = spawnSync("ip", ["netns", "exec", ns.node.name, "nft", "-f", "-"], { input: foreign, encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  sb.exec(ns.node.name, "iptables", ["-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.1/32", "-j", "MASQUERADE"]);
  // The wiring itself works: the pod reaches the node and the peer without any masquerade.
  expect(ping("10.61.0.1") && ping("fd61::1") && ping("10.61.1.2") && ping("fd61:0:0:1::2")).toBe(true);
});

afterAll(() => sb.cleanup());

describe.each(["nftables", "iptables"] as MasqBackend[])("ipMasq with the %s backend", (backend) => {
  it("masquerades pod traffic leaving the pod's network, keeps it inside, and DEL restores the rule set", async () => {
    const before = snapshot();
    // Without masquerade "out" receives the pod's own address and cannot answer it.
    let seen = delta(ns.out.name, () => {
      expect(ping("10.62.0.2")).toBe(false);
      expect(ping("fd62::2")).toBe(false);
    });
    expect(seen).toMatchObject({ from_pod4: 1, from_node4: 0, from_pod6: 1, from_node6: 0 });

    await addMasq(backend, [pod4, pod6], ns.node.path);
    expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();

    seen = delta(ns.out.name, () => {
      expect(ping("10.62.0.2")).toBe(true);
      expect(ping("fd62::2")).toBe(true);
    });
    expect(seen).toMatchObject({ from_pod4: 0, from_node4: 1, from_pod6: 0, from_node6: 1 });

    // Inside the pod's network (through the node's routing, so through POSTROUTING): the pod's own address.
    seen = delta(ns.peer.name, () => {
      expect(ping("10.61.1.2")).toBe(true);
      expect(ping("fd61:0:0:1::2")).toBe(true);
    });
    expect(seen).toMatchObject({ from_pod4: 1, from_node4: 0, from_pod6: 1, from_node6: 0 });

    // A repeated ADD changes nothing, not even a counter.
    const added = sb.exec(ns.node.name, "nft", ["list", "ruleset"]);
    await addMasq(backend, [pod4, pod6], ns.node.path);
    expect(sb.exec(ns.node.name, "nft", ["list", "ruleset"])).toBe(added);

    // The nft side takes the "ip/prefix" hints path here; the other tests delete without hints.
    await delMasq(NET, CID, "eth0", backend === "nftables" ? ["10.61.0.2/16", "fd61::2/48"] : undefined, ns.node.path);
    expect(snapshot()).toEqual(before);
    expect(ping("10.62.0.2")).toBe(false);
  });

  it("checkMasq names the piece a manual deletion removed, and ADD repairs it", async () => {
    await addMasq(backend, [pod4, pod6], ns.node.path);
    try {
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      const chain = iptablesMasqChain(NET, CID);
      if (backend === "nftables") {
        sb.exec(ns.node.name, "nft", ["delete", "element", "inet", "cni_ts_masq", "pods4", "{ 10.61.0.2 }"]);
        expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBe(
          `nftables set pods4 has no element 10.61.0.2 for attachment ${NET}/${CID}/eth0`,
        );
        await addMasq(backend, [pod4, pod6], ns.node.path);
        expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
        sb.exec(ns.node.name, "nft", ["flush", "chain", "inet", "cni_ts_masq", "postrouting"]);
        expect(await checkMasq(backend, [pod6], ns.node.path)).toMatch(
          /^nftables chain inet cni_ts_masq postrouting lacks the rule "ip saddr @pods4 ip daddr != 224\.0\.0\.0\/4 ip saddr \. ip daddr != @local4 masquerade"$/,
        );
      } else {
        sb.exec(ns.node.name, "iptables", [
          "-t",
          "nat",
          "-D",
          "POSTROUTING",
          "-s",
          "10.61.0.2/32",
          "-m",
          "comment",
          "--comment",
          iptablesMasqComment(NET, CID),
          "-j",
          chain,
        ]);
        expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBe(
          `iptables has no POSTROUTING rule sending traffic from 10.61.0.2 to ${chain} (${NET}/${CID})`,
        );
        expect(await checkMasq(backend, [pod6], ns.node.path)).toBeUndefined();
        sb.exec(ns.node.name, "ip6tables", ["-t", "nat", "-D", chain, "2"]);
        expect(await checkMasq(backend, [pod6], ns.node.path)).toBe(
          `iptables chain ${chain} of ${NET}/${CID} has no "! -d ff00::/8 -j MASQUERADE" rule`,
        );
      }
      await addMasq(backend, [pod4, pod6], ns.node.path);
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      expect(ping("10.62.0.2") && ping("fd62::2")).toBe(true);
    } finally {
      await delMasq(NET, CID, "eth0", undefined, ns.node.path);
    }
    expect(await checkMasq(backend, [pod4], ns.node.path)).toMatch(
      backend === "nftables"
        ? /^nftables set pods4 has no element 10\.61\.0\.2/
        : /^iptables chain CNI-[0-9a-f]{24} \(nat\) .* is missing$/,
    );
  });

  it("DEL succeeds twice, for an unknown attachment, and in a namespace without any table", async () => {
    const empty = sb.netns(`masq-empty-${backend.slice(0, 3)}`);
    await delMasq(NET, "never-added", "eth0", undefined, empty.path);
    await delMasq(NET, "never-added", "eth0", ["10.9.9.9/24"], empty.path);
    expect(sb.exec(empty.name, "nft", ["list", "ruleset"])).toBe("");

    const before = snapshot();
    await addMasq(backend, [pod4, pod6], ns.node.path);
    await delMasq(NET, CID, "eth0", undefined, ns.node.path);
    await delMasq(NET, CID, "eth0", undefined, ns.node.path);
    await delMasq(NET, CID, "eth0", ["10.61.0.2/16"], ns.node.path);
    await delMasq(NET, "unknown", "eth0", undefined, ns.node.path);
    await delMasq("othernet", CID, "eth1", ["10.61.0.2"], ns.node.path);
    expect(snapshot()).toEqual(before);
  });

  it("GC keeps the valid attachments of the network and every other network's, removes the rest", async () => {
    const before = snapshot();
    const [a, b, c] = [entry(1), entry(2), entry(3)];
    const other = entry(4, { network: "othernet" });
    await addMasq(backend, [...a, ...b, ...c, ...other], ns.node.path);
    try {
      expect(await checkMasq(backend, [...a, ...b, ...c, ...other], ns.node.path)).toBeUndefined();
      await gcMasq(NET, [{ containerID: "c001", ifname: "eth0" }], ns.node.path);
      expect(await checkMasq(backend, [...a, ...other], ns.node.path)).toBeUndefined();
      expect(await checkMasq(backend, b, ns.node.path)).toContain(`${NET}/c002`);
      expect(await checkMasq(backend, c, ns.node.path)).toBeDefined();
      await gcMasq(NET, [{ containerID: "c001", ifname: "eth0" }], ns.node.path);
      expect(await checkMasq(backend, a, ns.node.path)).toBeUndefined();
      await gcMasq("othernet", [], ns.node.path);
      await gcMasq(NET, [], ns.node.path);
      expect(snapshot()).toEqual(before);
    } finally {
      for (const e of [a, b, c, other])
        await delMasq(e[0]!.network, e[0]!.containerID, "eth0", undefined, ns.node.path);
    }
  });

  it("GC also keeps what the live callback names, and asks it only after reading, only when something is stale", async () => {
    const before = snapshot();
    const [a, b] = [entry(5), entry(6)];
    await addMasq(backend, [...a, ...b], ns.node.path);
    let asked = 0;
    const live = (keys: string[]) => async () => {
      asked++;
      return new Set(keys);
    };
    try {
      await gcMasq(
        NET,
        [
          { containerID: "c005", ifname: "eth0" },
          { containerID: "c006", ifname: "eth0" },
        ],
        ns.node.path,
        live([]),
      );
      expect(asked).toBe(0);
      // Nothing listed, b live: a goes, b stays.
      await gcMasq(NET, [], ns.node.path, live(masqKeys(NET, "c006", "eth0")));
      expect(asked).toBeGreaterThan(0);
      expect(await checkMasq(backend, b, ns.node.path)).toBeUndefined();
      expect(await checkMasq(backend, a, ns.node.path)).toContain(`${NET}/c005`);
      // A live key of another network spares nothing here.
      await gcMasq(NET, [], ns.node.path, live(masqKeys("othernet", "c006", "eth0")));
      expect(snapshot()).toEqual(before);
    } finally {
      for (const e of [a, b]) await delMasq(NET, e[0]!.containerID, "eth0", undefined, ns.node.path);
    }
  });

  it("an address taken from a leaked attachment that is still live: GC keeps the new owner's, the old goes once not live", async () => {
    const before = snapshot();
    const LEAKED = "1eaked00000000000000000000000000000000000000000000000000000000001";
    const leaked = [pod4, pod6].map((e) => ({ ...e, containerID: LEAKED }));
    await addMasq(backend, leaked, ns.node.path);
    // The runtime forgot LEAKED (its veth stays); IPAM released the address and handed it to CID.
    await addMasq(backend, [pod4, pod6], ns.node.path);
    const liveKeys = new Set([...masqKeys(NET, LEAKED, "eth0"), ...masqKeys(NET, CID, "eth0")]);
    try {
      await gcMasq(NET, [], ns.node.path, async () => liveKeys);
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      // iptables: the leaked chain and its jumps stay beside the new owner's (both masquerade the same way).
      if (backend === "iptables") expect(iptablesState()).toContain(iptablesMasqChain(NET, LEAKED));
      await gcMasq(
        NET,
        [{ containerID: CID, ifname: "eth0" }],
        ns.node.path,
        async () => new Set(masqKeys(NET, CID, "eth0")),
      );
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      expect(ping("10.62.0.2") && ping("fd62::2")).toBe(true);
      const text =
        backend === "nftables"
          ? sb.exec(ns.node.name, "nft", ["list", "table", "inet", "cni_ts_masq"])
          : iptablesState();
      expect(text).not.toContain(
        backend === "nftables" ? nftMasqComment(NET, LEAKED, "eth0") : iptablesMasqChain(NET, LEAKED),
      );
    } finally {
      await delMasq(NET, CID, "eth0", undefined, ns.node.path);
      await delMasq(NET, LEAKED, "eth0", undefined, ns.node.path);
    }
    expect(snapshot()).toEqual(before);
  });

  it("an address handed to a new attachment keeps its masquerade through the old attachment's late DEL", async () => {
    const before = snapshot();
    const OLD = "0ld0000000000000000000000000000000000000000000000000000000000001";
    const old = [pod4, pod6].map((e) => ({ ...e, containerID: OLD }));
    await addMasq(backend, old, ns.node.path);
    // IPAM released the address when the old attachment's DEL started; a new pod got it before the masq teardown.
    await addMasq(backend, [pod4, pod6], ns.node.path);
    try {
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      await delMasq(NET, OLD, "eth0", ["10.61.0.2/16", "fd61::2/48"], ns.node.path);
      await delMasq(NET, OLD, "eth0", undefined, ns.node.path);
      expect(await checkMasq(backend, [pod4, pod6], ns.node.path)).toBeUndefined();
      expect(ping("10.62.0.2") && ping("fd62::2")).toBe(true);
      if (backend === "nftables") {
        // The old owner's elements are gone (taken over by the new ADD), not merely hidden.
        const table = sb.exec(ns.node.name, "nft", ["list", "table", "inet", "cni_ts_masq"]);
        expect(table.split(`comment "${nftMasqComment(NET, CID, "eth0")}"`).length - 1).toBe(4);
        expect(table).not.toContain(nftMasqComment(NET, OLD, "eth0"));
      }
    } finally {
      await delMasq(NET, CID, "eth0", undefined, ns.node.path);
      await delMasq(NET, OLD, "eth0", undefined, ns.node.path);
    }
    expect(snapshot()).toEqual(before);
  });
});

describe("ipMasq nftables cost and backend choice", () => {
  it("20 attachments, added and deleted concurrently, cost elements and never a rule", async () => {
    const all = Array.from({ length: 20 }, (_, i) => entry(10 + i));
    const count = () => {
      const doc = JSON.parse(sb.exec(ns.node.name, "nft", ["-j", "list", "table", "inet", "cni_ts_masq"])) as {
        nftables: Array<{
          rule?: unknown;
          set?: { name: string; elem?: unknown[] };
          map?: { name: string; elem?: unknown[] };
        }>;
      };
      const sets = Object.fromEntries(
        doc.nftables
          .map((o) => o.set ?? o.map)
          .filter((s) => s !== undefined)
          .map((s) => [s.name, s.elem?.length ?? 0]),
      );
      return { rules: doc.nftables.filter((o) => o.rule).length, ...sets };
    };
    await Promise.all(all.map((e) => addMasq("nftables", e, ns.node.path)));
    try {
      expect(count()).toEqual({ rules: 2, pods4: 20, local4: 20, owners4: 20, pods6: 20, local6: 20, owners6: 20 });
      expect(await checkMasq("nftables", all.flat(), ns.node.path)).toBeUndefined();
    } finally {
      await Promise.all(
        all.map((e, i) =>
          delMasq(
            NET,
            e[0]!.containerID,
            "eth0",
            i % 2 === 0 ? [`${e[0]!.ip}/16`, `${e[1]!.ip}/48`] : undefined,
            ns.node.path,
          ),
        ),
      );
    }
    expect(count()).toEqual({ rules: 2, pods4: 0, local4: 0, owners4: 0, pods6: 0, local6: 0, owners6: 0 });
  });

  it("a re-ADD with another subnet replaces the address's old subnet instead of keeping both", async () => {
    const wide = entry(7);
    const narrow = wide.map((e) => ({ ...e, subnet: e.ip.includes(":") ? "fd61:0:0:2::/64" : "10.61.2.0/24" }));
    await addMasq("nftables", wide, ns.node.path);
    try {
      await addMasq("nftables", narrow, ns.node.path);
      expect(await checkMasq("nftables", narrow, ns.node.path)).toBeUndefined();
      expect(await checkMasq("nftables", wide, ns.node.path)).toBe(
        "nftables set local4 has no element 10.61.2.7 . 10.61.0.0/16 for attachment masqnet/c007/eth0",
      );
      const table = sb.exec(ns.node.name, "nft", ["list", "table", "inet", "cni_ts_masq"]);
      expect(table.match(/10\.61\.2\.7 \. /g)).toHaveLength(1);
    } finally {
      await delMasq(NET, "c007", "eth0", undefined, ns.node.path);
    }
  });

  it("resolveMasqBackend validates the config value and falls back like the reference", () => {
    expect(resolveMasqBackend("nftables")).toBe("nftables");
    expect(resolveMasqBackend("iptables")).toBe("iptables");
    expect(() => resolveMasqBackend("ipchains")).toThrow(
      expect.objectContaining({ code: 7, message: 'unknown ipmasq backend "ipchains"' }),
    );
    const saved = process.env.PATH;
    const dir = sb.tmpdir("masq-path");
    const only = (name: string, tools: string[]) => {
      const d = join(dir, name);
      mkdirSync(d);
      for (const t of tools)
        symlinkSync(spawnSync("sh", ["-c", `command -v ${t}`], { encoding: "utf8" }).stdout.trim(), join(d, t));
      return d;
    };
    const withIpt = only("ipt", ["iptables", "nft"]);
    const withNft = only("nft", ["nft", "nsenter"]);
    const without = only("none", ["nsenter"]);
    try {
      process.env.PATH = withIpt;
      expect(resolveMasqBackend(undefined)).toBe("iptables");
      process.env.PATH = withNft;
      expect(resolveMasqBackend(undefined)).toBe("nftables");
      process.env.PATH = without;
      let err: unknown;
      try {
        resolveMasqBackend("");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(100);
      expect((err as CniError).message).toMatch(/iptables.*nft/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it("DEL and GC succeed when a backend's binaries are missing; ADD names the missing one", async () => {
    const saved = process.env.PATH;
    const dir = sb.tmpdir("masq-path2");
    const nsenter = spawnSync("sh", ["-c", "command -v nsenter"], { encoding: "utf8" }).stdout.trim();
    symlinkSync(nsenter, join(dir, "nsenter"));
    try {
      process.env.PATH = dir;
      await delMasq(NET, CID, "eth0", undefined, ns.node.path);
      await gcMasq(NET, [], ns.node.path);
      const err = await addMasq("nftables", [pod4], ns.node.path).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 100, message: "ipMasq: nft not found in PATH" });
      const err2 = await addMasq("iptables", [pod6], ns.node.path).catch((e: unknown) => e);
      expect(err2).toMatchObject({ code: 100, message: "ipMasq: ip6tables-save not found in PATH" });
    } finally {
      process.env.PATH = saved;
    }
  });
});
