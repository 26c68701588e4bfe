// DEL as runtimes really send it, with stale input, on the built executables inside namespaces of this run:
//
// - a CNI_NETNS that is no longer a network namespace (the empty file an unmounted namespace leaves behind, a
//   directory, /dev/null): every plugin's DEL succeeds and releases what the attachment owns, so a runtime's retried
//   DEL completes; ADD and CHECK still refuse such a path (4);
// - the DEL a runtime sends after a refused ADD, pointed at a namespace that holds a live pod's interface: the live
//   pod keeps its interface, host veth, address and reservation; only the refused attachment's own state goes.
//
// (The reference 1.1.1 answers 999 "unknown FS magic" to the first and keeps the address; it deletes the live pod's
// eth0 in the second. docs/reliability.md, "Stale DEL, foreign interfaces, endless input, parse before change".)
import { runInNode } from "../../sandbox/plugin.js";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostVethName } from "../../plugins/bridge/names.js";
import {
  addrsOf,
  BridgeLab,
  type CniCall,
  type Conf,
  labPath,
  linkNames,
  linkOf,
  nftRuleset,
  type Ns,
  nsRun,
  ping,
} from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

/** Run any plugin of the lab's bin directory in its node namespace, as BridgeLab.cni runs bridge. */
function plugin(
  lab: BridgeLab,
  name: string,
  cmd: string,
  conf: Conf,
  netns: string,
  containerID: string,
  ifname = "eth0",
): CniCall {
  const env = {
    PATH: labPath(sb),
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: containerID,
    CNI_NETNS: netns,
    CNI_IFNAME: ifname,
    CNI_PATH: lab.bin,
  };
  return runInNode(lab.node.name, join(lab.bin, name), env, JSON.stringify(conf));
}

/** Paths that are not network namespaces: an unmounted namespace's empty file, a directory, /dev/null. */
function deadPaths(label: string): Record<string, string> {
  const dir = sb.tmpdir(label);
  const empty = join(dir, "netns");
  writeFileSync(empty, "");
  const subdir = join(dir, "dir");
  mkdirSync(subdir);
  return { "an empty file": empty, "a directory": subdir, "/dev/null": "/dev/null" };
}

describe("DEL with a CNI_NETNS that is no longer a network namespace", () => {
  let lab: BridgeLab;
  let conf: Conf;
  beforeAll(() => {
    lab = new BridgeLab(sb, "dead");
    conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: "nftables",
      ipam: lab.hostLocal(["10.57.0.0/24"]),
    });
  });

  it.each(["an empty file", "a directory", "/dev/null"])(
    "bridge: DEL with %s succeeds, releases the address, removes the veth and the masquerade",
    (kind) => {
      const pod = lab.pod();
      const r = lab.add(conf, { pod });
      const cid = `ctr-${pod.name}`;
      const hostVeth = hostVethName(cid, "eth0");
      const addr = r.ips[0].address.split("/")[0];
      expect(lab.reservations()).toContain(addr);
      expect(nftRuleset(lab.node.name)).toContain(addr);
      const path = deadPaths("dead-del")[kind]!;
      const d = lab.cni("DEL", lab.withPrev(conf, r), { pod: path, containerID: cid });
      expect([d.status, d.stdout]).toEqual([0, ""]);
      expect(lab.reservations()).not.toContain(addr);
      expect(linkOf(lab.node.name, hostVeth)).toBeUndefined();
      expect(nftRuleset(lab.node.name)).not.toContain(addr);
      // The pod's end went with its host end.
      expect(linkNames(pod.name)).toEqual(["lo"]);
      // Repeated, as a runtime retries: still success.
      expect(lab.cni("DEL", lab.withPrev(conf, r), { pod: path, containerID: cid }).status).toBe(0);
    },
  );

  it("ADD and CHECK still refuse it (4) and change nothing", () => {
    const path = deadPaths("dead-add")["an empty file"]!;
    const before = lab.snapshot();
    for (const cmd of ["ADD", "CHECK"]) {
      const c = lab.cni(cmd, conf, { pod: path, containerID: "ctr-dead-add" });
      expect([c.status, c.out?.code], cmd).toEqual([1, 4]);
      expect(c.out?.msg).toMatch(/is not a network namespace/);
    }
    expect(lab.snapshot()).toEqual(before);
  });

  it("a chain's DEL in reverse order (portmap, routes, bridge, loopback) all succeed, and bridge's releases the address", () => {
    const pod = lab.pod();
    const cid = `ctr-${pod.name}`;
    const r = lab.add(conf, { pod });
    const routesConf = {
      cniVersion: "1.0.0",
      name: lab.network,
      type: "routes",
      addroutes: [{ dst: "10.88.0.0/16" }],
      prevResult: r,
    };
    const routed = plugin(lab, "routes", "ADD", routesConf, pod.path, cid);
    expect(routed.status, routed.stdout).toBe(0);
    const addr = r.ips[0].address.split("/")[0];
    const path = deadPaths("dead-chain")["an empty file"]!;
    const pm = {
      cniVersion: "1.0.0",
      name: lab.network,
      type: "portmap",
      backend: "nftables",
      runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] },
      prevResult: routed.out,
    };
    expect(plugin(lab, "portmap", "ADD", pm, pod.path, cid).status).toBe(0);
    expect(nftRuleset(lab.node.name)).toContain("18080");
    for (const [name, c] of [
      ["portmap", pm],
      ["routes", { ...routesConf, prevResult: routed.out }],
      ["bridge", lab.withPrev(conf, routed.out)],
      ["loopback", { cniVersion: "1.0.0", name: lab.network, type: "loopback" }],
    ] as const) {
      const d = plugin(lab, name, "DEL", c, path, cid, name === "loopback" ? "lo" : "eth0");
      expect([d.status, d.stdout], `${name} DEL: ${d.stdout}`).toEqual([0, ""]);
    }
    expect(lab.reservations()).not.toContain(addr);
    expect(nftRuleset(lab.node.name)).not.toContain("18080");
    expect(linkOf(lab.node.name, hostVethName(cid, "eth0"))).toBeUndefined();
  });

  it("host-local alone: DEL with an empty file releases the attachment's address", () => {
    const ipam = { cniVersion: "1.0.0", name: "hlnet", ipam: lab.hostLocal(["10.58.0.0/24"]) };
    const pod = lab.pod();
    const a = plugin(lab, "host-local", "ADD", ipam, pod.path, "hl-dead");
    expect(a.status, a.stdout).toBe(0);
    const path = deadPaths("dead-hl")["an empty file"]!;
    expect(plugin(lab, "host-local", "DEL", ipam, path, "hl-dead")).toMatchObject({ status: 0, stdout: "" });
    expect(plugin(lab, "host-local", "CHECK", ipam, pod.path, "hl-dead").out?.code).toBe(103);
  });

  it("our own namespace is still refused for DEL (8): nothing of the node is touched", () => {
    const before = lab.snapshot();
    for (const name of ["bridge", "routes", "loopback"]) {
      const d = plugin(
        lab,
        name,
        "DEL",
        name === "bridge" ? conf : { cniVersion: "1.0.0", name: lab.network, type: name },
        "/proc/self/ns/net",
        "ctr-self",
      );
      expect(d.out?.code, name).toBe(8);
    }
    expect(lab.snapshot()).toEqual(before);
  });
});

describe("DEL after a refused ADD leaves a live pod's interfaces alone", () => {
  let lab: BridgeLab;
  let conf: Conf;
  let pod: Ns;
  let live: Record<string, any>;
  const liveID = () => `ctr-${pod.name}`;
  beforeAll(() => {
    lab = new BridgeLab(sb, "foreign");
    conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: "nftables",
      macspoofchk: true,
      ipam: lab.hostLocal(["10.59.0.0/24"]),
    });
    pod = lab.pod();
    live = lab.add(conf, { pod });
  });

  /** The live pod is exactly as its ADD left it: interface, address, host veth, reservation, masquerade, reachability. */
  const expectLiveIntact = () => {
    const addr = live.ips[0].address as string;
    expect(linkOf(pod.name, "eth0")?.address).toBe(live.interfaces[2].mac);
    expect(addrsOf(pod.name, "eth0")).toEqual([addr]);
    expect(linkOf(lab.node.name, live.interfaces[1].name)?.address).toBe(live.interfaces[1].mac);
    expect(lab.reservations()).toEqual([addr.split("/")[0]]);
    expect(nftRuleset(lab.node.name)).toContain(addr.split("/")[0]);
    expect(lab.cni("CHECK", lab.withPrev(conf, live), { pod })).toMatchObject({ status: 0, stdout: "" });
    expect(ping(pod, "10.59.0.1", 3)).toBe(true);
  };

  it("ADD of c2 into the live pod's namespace is refused (102); the runtime's DEL of c2 succeeds and removes nothing of the live pod", () => {
    const a = lab.cni("ADD", conf, { pod, containerID: "c2-refused" });
    expect([a.status, a.out?.code]).toEqual([1, 102]);
    expectLiveIntact();
    const before = lab.snapshot();
    // Without prevResult (the ADD produced none), as runtimes send it.
    const d = lab.cni("DEL", conf, { pod, containerID: "c2-refused" });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(lab.snapshot()).toEqual(before);
    expectLiveIntact();
  });

  it("a DEL of c2 carrying a prevResult that is not the live pod's (other MACs) leaves it alone too", () => {
    const fake = JSON.parse(
      JSON.stringify(live)
        .replaceAll(live.interfaces[2].mac, "02:00:00:00:00:99")
        .replaceAll(live.interfaces[1].name, hostVethName("c2-refused", "eth0")),
    );
    const d = lab.cni("DEL", lab.withPrev(conf, fake), { pod, containerID: "c2-refused" });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expectLiveIntact();
  });

  it("the same container ID and ifname on another network: ADD refused (102); its DEL leaves the first network's veth, spoof check and address", () => {
    const other = { ...conf, name: "othernet", bridge: "cni1", ipam: lab.hostLocal(["10.60.0.0/24"]) };
    const a = lab.cni("ADD", other, { pod, containerID: liveID() });
    expect([a.status, a.out?.code], a.stdout).toEqual([1, 102]);
    const spoof = nsRun(lab.node.name, "nft", ["list", "table", "bridge", "cni_ts_spoof"]).stdout;
    expect(spoof).toContain(live.interfaces[1].name);
    const d = lab.cni("DEL", other, { pod, containerID: liveID() });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(nsRun(lab.node.name, "nft", ["list", "table", "bridge", "cni_ts_spoof"]).stdout).toBe(spoof);
    expectLiveIntact();
  });

  it("the live pod's own DEL still removes everything of it", () => {
    const d = lab.cni("DEL", lab.withPrev(conf, live), { pod });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(linkNames(pod.name)).toEqual(["lo"]);
    expect(linkOf(lab.node.name, live.interfaces[1].name)).toBeUndefined();
    expect(lab.reservations()).toEqual([]);
  });

  it("an attachment whose host veth has another name (as the reference makes it): DEL with its prevResult removes its pod interface by MAC", () => {
    const p = lab.pod();
    // What the reference leaves: a veth pair with a random host name on the bridge, the pod end eth0.
    nsRun(lab.node.name, "ip", ["link", "add", "vethref0001", "type", "veth", "peer", "name", "eth0", "netns", p.name]);
    nsRun(lab.node.name, "ip", ["link", "set", "vethref0001", "master", "cni0", "up"]);
    const mac = linkOf(p.name, "eth0")!.address;
    const prev = {
      cniVersion: "1.0.0",
      interfaces: [
        { name: "cni0", mac: "02:00:00:00:00:01" },
        { name: "vethref0001", mac: linkOf(lab.node.name, "vethref0001")!.address },
        { name: "eth0", mac, sandbox: p.path },
      ],
      ips: [],
    };
    const d = lab.cni("DEL", lab.withPrev(lab.conf({ isGateway: true }), prev), { pod: p, containerID: "ref-made" });
    expect([d.status, d.stdout]).toEqual([0, ""]);
    expect(linkNames(p.name)).toEqual(["lo"]);
    expect(linkOf(lab.node.name, "vethref0001")).toBeUndefined();
  });
});
