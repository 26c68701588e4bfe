// The sandbox toolkit's pure pieces: the environment and argv of a plugin run, and the text cleaning of what the
// kernel readers return (no root, no namespace).
import { describe, expect, it } from "vitest";
import { cleanIptablesSave, nftTables, parseIpJson, sysctlFile, withoutNftCounters } from "../../sandbox/kernel.js";
import { cniEnv, inNodeArgv, parseCall } from "../../sandbox/plugin.js";
import { parseRtt, pingArgv } from "../../sandbox/traffic.js";

describe("sandbox/plugin", () => {
  it("cniEnv: the runtime's variables, a pod's path and container id, overrides last (null removes)", () => {
    const env = cniEnv("ADD", "/opt/cni/bin", "/tools", {
      pod: { name: "x-p1", path: "/var/run/netns/x-p1" },
      args: "A=1",
      env: { CNI_IFNAME: "net1", CNI_PATH: null },
    });
    expect(env).toEqual({
      PATH: "/tools",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "ctr-x-p1",
      CNI_NETNS: "/var/run/netns/x-p1",
      CNI_IFNAME: "net1",
      CNI_ARGS: "A=1",
    });
    expect(cniEnv("DEL", "/b", "/tools", { pod: "", path: "/rec" })).toMatchObject({
      PATH: "/rec",
      CNI_NETNS: "",
      CNI_CONTAINERID: "ctr-none",
      CNI_IFNAME: "eth0",
    });
  });

  it("inNodeArgv: ip netns exec NODE env -i K=V… EXE, nothing inherited", () => {
    expect(inNodeArgv("n1", "/b/bridge", { PATH: "/t", CNI_COMMAND: "ADD" })).toEqual([
      "netns",
      "exec",
      "n1",
      "env",
      "-i",
      "PATH=/t",
      "CNI_COMMAND=ADD",
      "/b/bridge",
    ]);
  });

  it("parseCall: stdout parsed when not empty, a non-JSON stdout is an error naming it", () => {
    expect(parseCall(0, "", "", 1).out).toBeUndefined();
    expect(parseCall(1, '{"code":4}', "", 1).out).toEqual({ code: 4 });
    expect(() => parseCall(0, "oops", "why", 1)).toThrow(/not one JSON value: oops/);
  });
});

describe("sandbox/kernel text", () => {
  it("iptables-save without comments, blank lines and chain counters", () => {
    expect(
      cleanIptablesSave("# Generated\n*nat\n:POSTROUTING ACCEPT [12:345]\n\n-A X -j MASQUERADE\nCOMMIT\n# Completed\n"),
    ).toBe("*nat\n:POSTROUTING ACCEPT [0:0]\n-A X -j MASQUERADE\nCOMMIT");
  });

  it("nft ruleset without counter values, and its table headers", () => {
    const rs =
      "table inet cni_ts_masq {\n\tchain post {\n\t\tcounter packets 3 bytes 180 masquerade\n\t}\n}\ntable ip nat {\n}";
    expect(withoutNftCounters(rs)).toContain("\t\tcounter masquerade");
    expect(nftTables(rs)).toEqual(["table inet cni_ts_masq", "table ip nat"]);
  });

  it("ip -json output and sysctl keys", () => {
    expect(parseIpJson<unknown[]>("  \n")).toEqual([]);
    expect(parseIpJson<Array<{ ifname: string }>>('[{"ifname":"lo"}]')[0]!.ifname).toBe("lo");
    expect(sysctlFile("net.ipv4.conf.all.rp_filter")).toBe("/proc/sys/net/ipv4/conf/all/rp_filter");
  });
});

describe("sandbox/traffic", () => {
  it("ping: the family from the address, the RTT from the output", () => {
    expect(pingArgv("10.0.0.1")).toEqual(["ping", "-4", "-n", "-c1", "-W1", "10.0.0.1"]);
    expect(pingArgv("fd00::1")[1]).toBe("-6");
    expect(parseRtt("64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.052 ms")).toBe(0.052);
    expect(parseRtt("64 bytes from ::1: icmp_seq=1 ttl=64 time<1 ms")).toBe(1);
    expect(parseRtt("1 packets transmitted, 0 received")).toBeUndefined();
  });
});
