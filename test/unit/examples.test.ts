// examples/: each conflist is the very file a conformance case runs, and the DaemonSet is a coherent manifest whose
// template renders into a config our plugins accept.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderConflist } from "../../cmd/conflist.js";
import { parseSyncArgs } from "../../plugins/routes/cli.js";
import { loadHostLocalConfig } from "../../ipam/host-local/config.js";
import type { NetConf } from "../../lib/types.js";
import { loadBridgeConfig } from "../../plugins/bridge/config.js";

const root = join(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(join(root, p), "utf8");

describe("example conflists", () => {
  const pairs: Array<[string, string]> = [
    ["examples/kubenet/10-kubenet.conflist", "conformance/cases/kubenet-style/net.d/10-kubenet.conflist"],
    ["examples/kube-router/10-kuberouter.conflist", "conformance/cases/kube-router-style/net.d/10-kuberouter.conflist"],
    ["examples/flannel/10-flannel.conflist", "conformance/cases/flannel-style/net.d/10-flannel.conflist"],
    ["examples/kubernetes-the-hard-way/10-bridge.conf", "conformance/cases/kthw-10-bridge/net.d/10-bridge.conf"],
    ["examples/kubernetes-the-hard-way/99-loopback.conf", "conformance/cases/kthw-10-bridge/net.d/99-loopback.conf"],
  ];
  it.each(pairs)("%s is what conformance runs", (example, caseFile) => {
    expect(read(example)).toBe(read(caseFile));
  });
});

type Obj = Record<string, unknown>;

describe("the DaemonSet manifest", () => {
  const list = JSON.parse(read("examples/kubernetes/cni-ts-daemonset.json")) as { kind: string; items: Obj[] };
  const byKind = (k: string) => list.items.find((i) => i.kind === k) as Obj;
  const ds = byKind("DaemonSet") as { spec: { template: { spec: Obj } } };
  const pod = ds.spec.template.spec as {
    initContainers: Obj[];
    containers: Obj[];
    volumes: Obj[];
    serviceAccountName: string;
    hostNetwork: boolean;
  };

  it("lists what it needs: service account, RBAC to read nodes, the template, the DaemonSet", () => {
    expect(list.kind).toBe("List");
    expect(list.items.map((i) => i.kind).sort()).toEqual([
      "ClusterRole",
      "ClusterRoleBinding",
      "ConfigMap",
      "DaemonSet",
      "ServiceAccount",
    ]);
    expect((byKind("ClusterRole") as { rules: Obj[] }).rules).toEqual([
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    ]);
    expect(pod.serviceAccountName).toBe("cni-ts");
    expect(pod.hostNetwork).toBe(true);
  });

  it("installs into the host's /opt/cni/bin and writes the conflist into /etc/cni/net.d", () => {
    const [install, conflist] = pod.initContainers as Array<{
      command: string[];
      volumeMounts: Array<{ name: string; mountPath: string }>;
    }>;
    expect(install?.command).toEqual(["/cni-ts", "install", "--dir", "/host/opt/cni/bin", "--force"]);
    expect(conflist?.command.slice(0, 2)).toEqual(["/cni-ts", "conflist"]);
    const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v])) as Record<
      string,
      { hostPath?: { path: string } }
    >;
    expect(vols["cni-bin"]?.hostPath?.path).toBe("/opt/cni/bin");
    expect(vols["cni-conf"]?.hostPath?.path).toBe("/etc/cni/net.d");
    for (const c of [...pod.initContainers, ...pod.containers] as Array<{ volumeMounts?: Array<{ name: string }> }>) {
      for (const m of c.volumeMounts ?? []) expect(Object.keys(vols)).toContain(m.name);
    }
  });

  it("runs the routes controller: routes sync --kubernetes with NODE_NAME, NET_ADMIN only, probes and metrics on the node's address", () => {
    const c = (pod.containers as Array<Record<string, any>>).find((x) => x.name === "routes")!;
    expect(c.command).toEqual([
      "/cni-ts",
      "routes",
      "sync",
      "--kubernetes",
      "--listen",
      "$(NODE_IP):9808",
      "--forward-accept",
      "$(FORWARD_ACCEPT)",
    ]);
    // The arguments a kubelet would pass parse as a controller's (NODE_NAME from the downward API); FORWARD_ACCEPT
    // empty, as shipped, is no forward rules; "auto" turns them on.
    const kubelet = (forward: string) =>
      c.command.slice(3).map((a: string) => a.replace("$(NODE_IP)", "10.0.0.5").replace("$(FORWARD_ACCEPT)", forward));
    const env = Object.fromEntries(
      (c.env as Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>).map((e) => [
        e.name,
        e.valueFrom?.fieldRef.fieldPath ?? e.value,
      ]),
    );
    expect(env).toEqual({ NODE_NAME: "spec.nodeName", NODE_IP: "status.hostIP", FORWARD_ACCEPT: "" });
    expect(parseSyncArgs(kubelet(env.FORWARD_ACCEPT!), { NODE_NAME: "node1" })).toMatchObject({
      mode: "kubernetes",
      node: "node1",
      kubeconfig: undefined,
      listen: { host: "10.0.0.5", port: 9808 },
      forward: undefined,
    });
    expect(parseSyncArgs(kubelet("auto"), { NODE_NAME: "node1" })).toMatchObject({
      forward: { auto: true, cidrs: [] },
    });
    expect(c.securityContext).toEqual({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"], add: ["NET_ADMIN"] },
    });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: 9808 });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: 9808 });
    expect(c.volumeMounts).toBeUndefined();
    expect(pod.hostNetwork).toBe(true);
  });

  it("its template renders into a config bridge and host-local accept, single- and dual-stack", () => {
    const template = (byKind("ConfigMap") as { data: Record<string, string> }).data["10-cni-ts.conflist.template"]!;
    for (const cidrs of [["10.244.3.0/24"], ["10.244.3.0/24", "fd00:10:244:3::/64"]]) {
      const list = JSON.parse(renderConflist(template, cidrs)) as { name: string; cniVersion: string; plugins: Obj[] };
      const conf = { ...list.plugins[0], name: list.name, cniVersion: list.cniVersion } as NetConf;
      expect(loadBridgeConfig(conf, new Map()).bridge).toBe("cbr0");
      expect(loadHostLocalConfig(conf, undefined).rangeSets).toHaveLength(cidrs.length);
    }
  });
});

describe("cni-ts conflist rendering", () => {
  it("fills __POD_CIDR__ and __RANGES__", () => {
    const t = '{"name":"n","ipam":{"subnet":"__POD_CIDR__","ranges":"__RANGES__"}}';
    expect(JSON.parse(renderConflist(t, ["10.1.0.0/24", "fd01::/64"]))).toEqual({
      name: "n",
      ipam: { subnet: "10.1.0.0/24", ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd01::/64" }]] },
    });
  });
  it("refuses a node without pod subnet, a subnet with host bits, and a template that is not JSON", () => {
    expect(() => renderConflist("{}", [])).toThrow(/no pod subnet/);
    expect(() => renderConflist("{}", ["10.1.0.5/24"])).toThrow(/not a network address/);
    expect(() => renderConflist("[__POD_CIDR__", ["10.1.0.0/24"])).toThrow();
  });
});
