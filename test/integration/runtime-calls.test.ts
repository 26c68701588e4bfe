// A pod's life exactly as containerd, CRI-O and podman drive the plugins, fed to the BUILT executables and to the
// reference (/usr/lib/cni) side by side, in a node namespace of the run. The stdin of every call is what libcni
// builds from the runtime's own inputs, taken from their public source:
// - containerd (go-cni): the loopback network `{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":
//   "loopback"}]}` on ifname lo beside the conflist (opts.go WithLoNetwork); CNI_ARGS IgnoreUnknown=1 and the four
//   K8S_POD_* labels; capability arguments from Go structs WITHOUT JSON tags (types.go PortMapping, DNS), so the keys
//   arrive capitalised: `{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`. StopPodSandbox DELs
//   both networks, RemovePodSandbox DELs them again with CNI_NETNS empty (the cache is gone: no prevResult).
// - CRI-O (ocicni buildCNIRuntimeConf): CNI_ARGS IgnoreUnknown, K8S_POD_NAMESPACE, K8S_POD_NAME,
//   K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID in that order; tagged capability structs (`hostIP` always present, "" when
//   unset) and `ipRanges` as a list of range sets; lo is brought up by CRI-O itself, not by a plugin.
// - podman's CNI backend (containers/common libnetwork/cni getRuntimeConfig): CNI_ARGS IgnoreUnknown=1;K8S_POD_NAME,
//   plus IP= for one static address; tagged port mappings (hostIP omitted when empty); DEL from the cached config.
// Each step is checked in the kernel (addresses, lo, the hostPort answering real TCP from outside the node), and
// nothing may be left after the DELs.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addrsOf, binDir, labPath, linkOf, nsRun, type Ns, REFERENCE_BIN, wire } from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";
import { answer, POD_PORT, serve, stop, stopAll, talk } from "./traffic.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => {
  stopAll();
  sb.cleanup();
});

const NODE4 = "192.0.2.1";
const OUT4 = "192.0.2.2";

/** JSON text kept verbatim inside a marshalled map: a Go struct value, whose fields keep their declaration order. */
class GoStructText {
  constructor(readonly text: string) {}
}

/** json.Marshal of a map[string]interface{} tree: object keys sorted, Go struct values as they are. */
function goMarshal(v: unknown): string {
  if (v instanceof GoStructText) return v.text;
  if (Array.isArray(v)) return `[${v.map(goMarshal).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${goMarshal(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

type Plugin = Record<string, unknown> & { type: string; capabilities?: Record<string, boolean> };
interface Network {
  name: string;
  cniVersion: string;
  plugins: Plugin[];
}

/** The stdin libcni gives one plugin of a list: the plugin's object, name, cniVersion, runtimeConfig, prevResult. */
function libcniStdin(net: Network, plugin: Plugin, caps: Record<string, GoStructText>, prevResult?: unknown): string {
  const conf: Record<string, unknown> = { ...plugin, name: net.name, cniVersion: net.cniVersion };
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {}))
    if (on && caps[cap] !== undefined) rc[cap] = caps[cap];
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return goMarshal(conf);
}

interface Call {
  status: number | null;
  out: Record<string, any> | undefined;
  raw: string;
}

interface Pod {
  ns: Ns;
  id: string;
  args: string;
}

/** One node: its namespace, an outside host wired to it, a data dir, and the plugin directory under test. */
class Node {
  readonly node: Ns;
  readonly outside: Ns;
  readonly dataDir: string;
  constructor(
    label: string,
    readonly bin: string,
  ) {
    this.node = sb.netns(`${label}-node`);
    this.outside = sb.netns(`${label}-out`);
    this.dataDir = sb.tmpdir(`${label}-data`);
    wire(this.node, this.outside, "ext0", `${NODE4}/24`, "2001:db8:1::1/64", `${OUT4}/24`, "2001:db8:1::2/64");
  }

  call(command: string, type: string, pod: Pod, ifname: string, stdin: string, netns = pod.ns.path): Call {
    const env = {
      PATH: labPath(sb),
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.id,
      CNI_NETNS: netns,
      CNI_IFNAME: ifname,
      CNI_ARGS: pod.args,
      CNI_PATH: this.bin,
    };
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        this.node.name,
        "env",
        "-i",
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        join(this.bin, type),
      ],
      { input: stdin, encoding: "utf8", timeout: 60_000 },
    );
    const raw = r.stdout ?? "";
    return {
      status: r.status,
      out: raw.trim() ? (JSON.parse(raw) as Record<string, any>) : undefined,
      raw: `${raw} ${r.stderr ?? ""}`,
    };
  }

  /** AddNetworkList: every plugin in order, each given the previous result; the final result. */
  addList(net: Network, pod: Pod, ifname: string, caps: Record<string, GoStructText>): Record<string, any> {
    let prev: unknown;
    for (const p of net.plugins) {
      const r = this.call("ADD", p.type, pod, ifname, libcniStdin(net, p, caps, prev));
      expect(r.status, `${net.name} ${p.type} ADD: ${r.raw}`).toBe(0);
      prev = r.out;
    }
    return prev as Record<string, any>;
  }

  /** DelNetworkList: every plugin in reverse order, with the cached result (if any) as prevResult. */
  delList(
    net: Network,
    pod: Pod,
    ifname: string,
    caps: Record<string, GoStructText>,
    cached: unknown,
    netns: string,
  ): void {
    for (const p of [...net.plugins].reverse()) {
      const r = this.call("DEL", p.type, pod, ifname, libcniStdin(net, p, caps, cached), netns);
      expect(r.status, `${net.name} ${p.type} DEL (netns ${JSON.stringify(netns)}): ${r.raw}`).toBe(0);
    }
  }

  reservations(net: string): string[] {
    const r = spawnSync("ls", [join(this.dataDir, net)], { encoding: "utf8" });
    return (r.stdout ?? "").split("\n").filter((f) => f !== "" && f !== "lock" && !f.startsWith("last_reserved_ip."));
  }

  natMentions(ip: string): boolean {
    const ipt = nsRun(this.node.name, "iptables-save", ["-t", "nat"], true).stdout;
    const nft = nsRun(this.node.name, "nft", ["list", "ruleset"], true).stdout;
    return ipt.includes(ip) || nft.includes(ip);
  }
}

const LOOPBACK: Network = { cniVersion: "0.3.1", name: "cni-loopback", plugins: [{ type: "loopback" }] };

interface Runtime {
  /** The conflist as the runtime's documentation or generator writes it (dataDir added for the sandbox). */
  network(dataDir: string): Network;
  caps: Record<string, GoStructText>;
  args(id: string): string;
  /** containerd runs the loopback plugin; CRI-O and podman bring lo up themselves. */
  loopbackPlugin: boolean;
  hostPort: number;
  /** The pod's address must fall in this range (an ipRanges capability), else the network's subnet. */
  expectIn: RegExp;
}

const RUNTIMES: Record<string, Runtime> = {
  containerd: {
    // containerd's script/setup/install-cni conflist (IPv4 part), as a node installed by its docs has it.
    network: (dataDir): Network => ({
      cniVersion: "1.0.0",
      name: "containerd-net",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          promiscMode: true,
          ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "10.88.0.0/16" }]], routes: [{ dst: "0.0.0.0/0" }] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }),
    // go-cni PortMapping and DNS have no JSON tags.
    caps: {
      portMappings: new GoStructText('[{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]'),
      dns: new GoStructText(
        '{"Servers":["10.96.0.10"],"Searches":["default.svc.cluster.local"],"Options":["ndots:5"]}',
      ),
    },
    args: (id) =>
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=7d3c9a4e-0b1f-4e8a-9d2c-5f6e7a8b9c0d`,
    loopbackPlugin: true,
    hostPort: 18080,
    expectIn: /^10\.88\.\d+\.\d+\/16$/,
  },
  "containerd (ipRanges through go-cni's WithCapability, untagged keys)": {
    network: (dataDir): Network => ({
      cniVersion: "1.0.0",
      name: "containerd-net",
      plugins: [
        // No static ranges: the pod subnet comes from the runtime (as kubelet's podCIDR reaches CRI-O).
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          capabilities: { ipRanges: true },
          ipam: { type: "host-local", dataDir, routes: [{ dst: "0.0.0.0/0" }] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }),
    caps: {
      ipRanges: new GoStructText(
        '[[{"Subnet":"10.77.0.0/24","RangeStart":"10.77.0.50","RangeEnd":"10.77.0.59","Gateway":"10.77.0.1"}]]',
      ),
      portMappings: new GoStructText('[{"HostPort":18081,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]'),
    },
    args: (id) =>
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=1b2c3d4e-0000-4000-8000-000000000001`,
    loopbackPlugin: true,
    hostPort: 18081,
    expectIn: /^10\.77\.0\.5\d\/24$/,
  },
  "CRI-O": {
    // CRI-O's contrib/cni/11-crio-ipv4-bridge.conflist, with portmap chained for hostPorts.
    network: (dataDir): Network => ({
      cniVersion: "1.0.0",
      name: "crio",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: "host-local", dataDir, routes: [{ dst: "0.0.0.0/0" }], ranges: [[{ subnet: "10.85.0.0/16" }]] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }),
    caps: { portMappings: new GoStructText('[{"hostPort":18082,"containerPort":80,"protocol":"tcp","hostIP":""}]') },
    args: (id) =>
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=2b2c3d4e-0000-4000-8000-000000000002`,
    loopbackPlugin: false,
    hostPort: 18082,
    expectIn: /^10\.85\.\d+\.\d+\/16$/,
  },
  "CRI-O (ipRanges from the node's pod CIDR, tagged keys)": {
    network: (dataDir): Network => ({
      cniVersion: "1.0.0",
      name: "crio",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          capabilities: { ipRanges: true },
          ipam: { type: "host-local", dataDir, routes: [{ dst: "0.0.0.0/0" }] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }),
    caps: {
      portMappings: new GoStructText('[{"hostPort":18084,"containerPort":80,"protocol":"tcp","hostIP":""}]'),
      ipRanges: new GoStructText('[[{"subnet":"10.85.3.0/24"}]]'),
    },
    args: (id) =>
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=3b2c3d4e-0000-4000-8000-000000000003`,
    loopbackPlugin: false,
    hostPort: 18084,
    expectIn: /^10\.85\.3\.\d+\/24$/,
  },
  podman: {
    // The bridge network podman's CNI backend generates (bridge, portmap; its firewall and tuning steps are the
    // node-chain issue's), with a static IP the way podman asks for one: CNI_ARGS IP=.
    network: (dataDir): Network => ({
      cniVersion: "1.0.0",
      name: "podman",
      plugins: [
        {
          type: "bridge",
          bridge: "cni-podman0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir,
            routes: [{ dst: "0.0.0.0/0" }],
            ranges: [[{ subnet: "10.89.0.0/24", gateway: "10.89.0.1" }]],
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }),
    caps: { portMappings: new GoStructText('[{"hostPort":18083,"containerPort":80,"protocol":"tcp"}]') },
    args: () => "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.89.0.42",
    loopbackPlugin: false,
    hostPort: 18083,
    expectIn: /^10\.89\.0\.42\/24$/,
  },
};

const IMPLS: Array<[string, () => string]> = [
  ["cni-ts", () => binDir(sb, "rt-bin")],
  ["reference", () => REFERENCE_BIN],
];

let n = 0;
describe.each(Object.entries(RUNTIMES))("%s: a pod's life", (_name, rt) => {
  const results: Record<string, Record<string, any>> = {};
  it.each(IMPLS)("through %s: sandbox start, hostPort traffic, stop, remove", async (impl, bin) => {
    const node = new Node(`rt${++n}`, bin());
    const net = rt.network(node.dataDir);
    const ns = sb.netns(`rt${n}-pod`);
    const pod: Pod = { ns, id: `${sb.id}rt${n}`, args: "" };
    pod.args = rt.args(pod.id);

    // RunPodSandbox.
    if (rt.loopbackPlugin) {
      nsRun(ns.name, "ip", ["link", "set", "lo", "down"]);
      node.addList(LOOPBACK, pod, "lo", rt.caps);
      expect(linkOf(ns.name, "lo")?.flags).toContain("UP");
    }
    const result = node.addList(net, pod, "eth0", rt.caps);
    results[impl] = result;
    const address = (result.ips as Array<{ address: string }>)[0]!.address;
    expect(address).toMatch(rt.expectIn);
    expect(addrsOf(ns.name, "eth0")).toContain(address);
    const podIP = address.split("/")[0]!;

    const server = await serve(ns);
    try {
      // The hostPort answers from outside the node, the pod seeing the client's own address.
      expect(talk(node.outside, NODE4, rt.hostPort, "tcp")).toBe(answer("tcp", OUT4));
      expect(talk(node.outside, NODE4, rt.hostPort + 100, "tcp")).toBeUndefined();

      // StopPodSandbox: DEL of every network, with the cached result, netns still there.
      node.delList(net, pod, "eth0", rt.caps, result, ns.path);
      if (rt.loopbackPlugin) node.delList(LOOPBACK, pod, "lo", rt.caps, undefined, ns.path);
      expect(talk(node.outside, NODE4, rt.hostPort, "tcp")).toBeUndefined();
    } finally {
      stop(server);
    }
    // RemovePodSandbox: the same DELs again, CNI_NETNS empty, no cache left, so no prevResult.
    node.delList(net, pod, "eth0", rt.caps, undefined, "");
    if (rt.loopbackPlugin) node.delList(LOOPBACK, pod, "lo", rt.caps, undefined, "");

    expect(node.reservations(net.name)).toEqual([]);
    expect(node.natMentions(podIP)).toBe(false);
    expect(linkOf(ns.name, "eth0")).toBeUndefined();
  });

  it("ours answers with the reference's shape (interfaces, addresses, routes)", () => {
    const shape = (r: Record<string, any> | undefined) => ({
      cniVersion: r?.cniVersion,
      interfaces: (r?.interfaces as Array<{ name: string }> | undefined)?.length,
      ips: (r?.ips as Array<{ address: string; gateway?: string; interface?: number }> | undefined)?.map((ip) => ({
        gateway: ip.gateway,
        interface: ip.interface,
        prefix: ip.address.split("/")[1],
      })),
      routes: r?.routes,
    });
    expect(shape(results["cni-ts"])).toEqual(shape(results.reference));
  });
});

// The stdin containerd sends, byte for byte (keys sorted as Go marshals a map; the port mapping struct untagged),
// once more on its own: the call that failed every hostPort pod on containerd before the key rule.
it("portmap takes containerd's exact stdin (capitalised port mapping keys) and the port answers", async () => {
  const node = new Node(`rt${++n}`, binDir(sb, "rt-bin-exact"));
  const ns = sb.netns(`rt${n}-pod`);
  const pod: Pod = {
    ns,
    id: `${sb.id}exact`,
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${sb.id}exact;K8S_POD_UID=x`,
  };
  const bridge = node.call(
    "ADD",
    "bridge",
    pod,
    "eth0",
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "containerd-net",
      type: "bridge",
      bridge: "cni0",
      isGateway: true,
      ipMasq: true,
      ipam: {
        type: "host-local",
        dataDir: node.dataDir,
        ranges: [[{ subnet: "10.88.0.0/16" }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    }),
  );
  expect(bridge.status, bridge.raw).toBe(0);
  const stdin = `{"capabilities":{"portMappings":true},"cniVersion":"1.0.0","name":"containerd-net","prevResult":${JSON.stringify(bridge.out)},"runtimeConfig":{"portMappings":[{"HostPort":18090,"ContainerPort":${POD_PORT},"Protocol":"tcp","HostIP":""}]},"type":"portmap"}`;
  const pm = node.call("ADD", "portmap", pod, "eth0", stdin);
  expect(pm.status, pm.raw).toBe(0);
  const server = await serve(ns);
  try {
    expect(talk(node.outside, NODE4, 18090, "tcp")).toBe(answer("tcp", OUT4));
  } finally {
    stop(server);
  }
  expect(node.call("DEL", "portmap", pod, "eth0", stdin).status).toBe(0);
  expect(talk(node.outside, NODE4, 18090, "tcp")).toBeUndefined();
});

// The reference skel's order (environment, stdin JSON, name, cniVersion, the verb's version gate, and only then
// what the plugin checks, such as the netns): the built executables answer these combined faults with the
// reference's code. Before, ours checked CNI_NETNS first and answered 3 to all of them.
describe("the reference's order of checks, ours beside the reference", () => {
  const faults: Array<[string, string, string, number]> = [
    ["truncated JSON and a missing netns", "ADD", '{"cniVersion":"1.0.0","name":"n","type":"bridge"', 6],
    ["cniVersion 9.9.9 and a missing netns", "ADD", '{"cniVersion":"9.9.9","name":"n","type":"bridge"}', 1],
    ["CHECK at 0.3.1 and a missing netns", "CHECK", '{"cniVersion":"0.3.1","name":"n","type":"bridge"}', 1],
    ["a name that is not a string", "ADD", '{"cniVersion":"1.0.0","name":5,"type":"bridge"}', 6],
  ];
  for (const type of ["bridge", "host-local", "portmap", "loopback"]) {
    it.each(faults)(`${type}: %s`, (_what, command, stdin, code) => {
      const ours = new Node(`ord${++n}`, binDir(sb, `ord-bin-${n}`));
      const pod: Pod = { ns: { name: "gone", path: "/nonexistent/cni-ts-netns" }, id: "c1", args: "" };
      const mine = ours.call(command, type, pod, "eth0", stdin.replace('"bridge"', JSON.stringify(type)));
      const ref = new Node(`ord${++n}`, REFERENCE_BIN).call(
        command,
        type,
        pod,
        "eth0",
        stdin.replace('"bridge"', JSON.stringify(type)),
      );
      expect(ref.out?.code, `reference: ${ref.raw}`).toBe(code);
      expect(mine.out?.code, `cni-ts: ${mine.raw}`).toBe(code);
    });
  }
});
