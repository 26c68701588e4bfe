// lib/kube: the pure parts of the Kubernetes client (backoff, kubeconfig reading, the watch stream, the cache).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "../../lib/kube/backoff.js";
import { ObjectCache } from "../../lib/kube/cache.js";
import { inCluster, KubeConfigError, loadKubeconfig, parseServer } from "../../lib/kube/config.js";
import { ProtocolError, WatchDecoder } from "../../lib/kube/watchstream.js";
import { parseYamlSubset, YamlSubsetError } from "../../lib/kube/yaml.js";
import { parseNode, type NodeEntry } from "../../plugins/routes/nodelist.js";

const dir = mkdtempSync(join(tmpdir(), "cni-ts-kube-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("backoff", () => {
  const p = { initialMs: 500, maxMs: 30_000, jitter: 0.5 };
  it("doubles from the initial delay up to the cap; jitter only shortens", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map((a) => backoffDelay(a, p, 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
    expect(backoffDelay(0, p, 0.999999)).toBe(250);
    expect(backoffDelay(10, p, 0.5)).toBe(22500);
    expect(backoffDelay(5000, p, 0)).toBe(30000);
  });
  it("counts failures and starts over after reset", () => {
    const b = new Backoff(p, () => 0);
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000]);
    expect(b.failures).toBe(3);
    b.reset();
    expect(b.next()).toBe(500);
  });
  it("jitter spreads a fleet of nodes over the interval", () => {
    const delays = Array.from({ length: 100 }, (_, i) => backoffDelay(3, p, i / 100));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4000);
    expect(new Set(delays).size).toBeGreaterThan(90);
  });
});

const KUBECONFIG = `apiVersion: v1
kind: Config
# written by kubeadm
clusters:
- cluster:
    certificate-authority-data: ${Buffer.from("CA PEM").toString("base64")}
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: "system:node:node1"
  name: default
- context:
    cluster: other
    user: x
  name: other
current-context: default
preferences: {}
users:
- name: 'system:node:node1'
  user:
    client-certificate: pki/node1.crt
    client-key: /KEYDIR/node1.key
`;

describe("kubeconfig", () => {
  it("the YAML subset kubeconfigs use: mappings, sequences of mappings, quoted and plain scalars, comments", () => {
    expect(parseYamlSubset("a: 1\nb:\n- x\n- 'y''s'\nc:\n  d: \"e\\n\" # note\n  f: {}\ng: true\nh:\n")).toEqual({
      a: 1,
      b: ["x", "y's"],
      c: { d: "e\n", f: {} },
      g: true,
      h: null,
    });
    expect(parseYamlSubset("list:\n  - name: a\n    v: 1\n  - name: b\n")).toEqual({
      list: [{ name: "a", v: 1 }, { name: "b" }],
    });
  });
  it("refuses YAML it does not know instead of guessing", () => {
    for (const t of ["a: &x 1", "a: |\n  text", "a: {b: 1}", "a: [1, 2]", "a: 1\n   b: 2", "a: 1\na: 2", "- a\nb: 1"]) {
      expect(() => parseYamlSubset(t), t).toThrow(YamlSubsetError);
    }
  });
  it("the current context: server, CA data, client certificate and key files (relative to the kubeconfig)", () => {
    const keyDir = join(dir, "keys");
    const path = join(dir, "kubelet.conf");
    writeFileSync(path, KUBECONFIG.replace("/KEYDIR", keyDir));
    rmSync(join(dir, "pki"), { recursive: true, force: true });
    mkdirSync(join(dir, "pki"));
    mkdirSync(keyDir, { recursive: true });
    writeFileSync(join(dir, "pki/node1.crt"), "CERT");
    writeFileSync(join(keyDir, "node1.key"), "KEY");
    const t = loadKubeconfig(KUBECONFIG.replace("/KEYDIR", keyDir), path);
    expect(t.server.href).toBe("https://10.0.0.1:6443/");
    expect(t.ca?.toString()).toBe("CA PEM");
    expect(t.cert?.toString()).toBe("CERT");
    expect(t.key?.toString()).toBe("KEY");
    expect(t.token).toBeUndefined();
  });
  it("JSON kubeconfigs (kubectl config view --raw -o json), tokens and token files", () => {
    const doc = {
      kind: "Config",
      "current-context": "c",
      contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
      clusters: [{ name: "k", cluster: { server: "http://[fd00::1]:8080", "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { tokenFile: "token" } }],
    };
    const t = loadKubeconfig(JSON.stringify(doc), "/etc/k/kc.json");
    expect(t).toMatchObject({ tokenFile: "/etc/k/token", insecureSkipTLSVerify: true });
    expect(t.server.hostname).toBe("[fd00::1]");
    doc.users[0]!.user = { token: "abc" } as never;
    expect(loadKubeconfig(JSON.stringify(doc), "kc").token).toBe("abc");
  });
  it("refuses what it cannot or must not do: exec plugins, basic auth, a missing context, a server with a path, a lone key", () => {
    const base = (user: object, server = "https://h:6443", ctx = "c") =>
      JSON.stringify({
        "current-context": ctx,
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        clusters: [{ name: "k", cluster: { server } }],
        users: [{ name: "u", user }],
      });
    const cases: Array<[string, RegExp]> = [
      [base({ exec: { command: "aws" } }), /another program/],
      [base({ username: "a", password: "b" }), /basic authentication/],
      [base({}, "https://h:6443", "nope"), /no context named "nope"/],
      [base({}, "https://h:6443/prefix"), /has a path/],
      [base({}, "ftp://h"), /is not http\(s\)/],
      [base({ "client-key-data": "eA==" }), /without certificate/],
      ["kind: Pod\n", /not a kubeconfig/],
    ];
    for (const [text, msg] of cases) expect(() => loadKubeconfig(text, "kc"), text).toThrow(msg);
    expect(() => parseServer("https://u:p@h", "x")).toThrow(KubeConfigError);
  });
  it("in-cluster: the service host (IPv6 bracketed), the token file re-read per request, ca.crt", () => {
    writeFileSync(join(dir, "ca.crt"), "CA");
    const t = inCluster({ KUBERNETES_SERVICE_HOST: "fd00:96::1", KUBERNETES_SERVICE_PORT: "443" }, dir);
    expect(t.server.host).toBe("[fd00:96::1]");
    expect(t.tokenFile).toBe(join(dir, "token"));
    expect(() => inCluster({}, dir)).toThrow(/KUBERNETES_SERVICE_HOST is unset/);
    expect(() => inCluster({ KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "x" }, dir)).toThrow(/not a port/);
  });
});

describe("watch stream decoding", () => {
  const ev = (type: string, name: string, rv: string) =>
    JSON.stringify({ type, object: { kind: "Node", metadata: { name, resourceVersion: rv } } });
  it("events split anywhere across chunks come out whole and in order", () => {
    const text = `${ev("ADDED", "a", "1")}\n${ev("MODIFIED", "a", "2")}\n${ev("BOOKMARK", "", "3")}\n`;
    for (const cut of [1, 7, 50, text.length - 1]) {
      const d = new WatchDecoder();
      const out = [...d.push(text.slice(0, cut)), ...d.push(text.slice(cut)), ...d.end()];
      expect(out.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "BOOKMARK"]);
    }
  });
  it("a last event without newline counts; half an event, garbage and unknown types are protocol errors", () => {
    expect(new WatchDecoder().push(ev("DELETED", "a", "4")).length).toBe(0);
    const d = new WatchDecoder();
    d.push(ev("DELETED", "a", "4"));
    expect(d.end()[0]?.type).toBe("DELETED");
    const half = new WatchDecoder();
    half.push('{"type":"ADDED","obj');
    expect(() => half.end()).toThrow(ProtocolError);
    expect(() => new WatchDecoder().push("<html>\n")).toThrow(/not JSON/);
    expect(() => new WatchDecoder().push('{"type":"SOMETHING","object":{}}\n')).toThrow(/unknown type/);
    expect(() => new WatchDecoder().push('{"type":"ADDED"}\n')).toThrow(/without an object/);
  });
});

describe("the object cache", () => {
  const node = (name: string, podCIDR: string, ip: string, rv: string, extra: object = {}) => ({
    kind: "Node",
    metadata: { name, resourceVersion: rv },
    spec: { podCIDR },
    status: { addresses: [{ type: "InternalIP", address: ip }], ...extra },
  });
  const cache = () =>
    new ObjectCache<NodeEntry>((o) => {
      const n = parseNode(o, "a Node");
      return { name: n.name, value: n };
    });
  it("a list replaces everything; items without a name are refused, the rest kept", () => {
    const c = cache();
    expect(
      c.replace(
        [
          node("b", "10.1.2.0/24", "1.1.1.2", "5"),
          node("a", "10.1.1.0/24", "1.1.1.1", "4"),
          { kind: "Node", metadata: {} },
        ],
        "9",
      ),
    ).toEqual([{ name: undefined, message: "a Node has no metadata.name" }]);
    expect(c.values().map((n) => n.name)).toEqual(["a", "b"]);
    expect(c.resourceVersion).toBe("9");
    c.replace([node("c", "10.1.3.0/24", "1.1.1.3", "10")], "10");
    expect(c.values().map((n) => n.name)).toEqual(["c"]);
  });
  it("ADDED, MODIFIED, DELETED change it; a heartbeat MODIFIED (only status conditions) does not; BOOKMARK moves the resourceVersion", () => {
    const c = cache();
    c.replace([], "1");
    expect(c.apply({ type: "ADDED", object: node("a", "10.1.1.0/24", "1.1.1.1", "2") })).toEqual({
      kind: "changed",
      name: "a",
    });
    expect(
      c.apply({
        type: "MODIFIED",
        object: node("a", "10.1.1.0/24", "1.1.1.1", "3", { conditions: [{ type: "Ready" }] }),
      }),
    ).toEqual({ kind: "unchanged", name: "a" });
    expect(c.resourceVersion).toBe("3");
    expect(c.apply({ type: "MODIFIED", object: node("a", "10.1.1.0/24", "1.1.1.9", "4") })).toEqual({
      kind: "changed",
      name: "a",
    });
    expect(c.values()[0]?.internalIPs).toEqual(["1.1.1.9"]);
    expect(c.apply({ type: "BOOKMARK", object: { kind: "Node", metadata: { resourceVersion: "7" } } })).toEqual({
      kind: "unchanged",
    });
    expect(c.resourceVersion).toBe("7");
    expect(c.apply({ type: "DELETED", object: node("a", "10.1.1.0/24", "1.1.1.9", "8") })).toEqual({
      kind: "changed",
      name: "a",
    });
    expect(c.apply({ type: "DELETED", object: node("a", "10.1.1.0/24", "1.1.1.9", "9") })).toEqual({
      kind: "unchanged",
      name: "a",
    });
    expect(c.size).toBe(0);
  });
  it("an ERROR event says whether to list again (410 Expired) or not", () => {
    const c = cache();
    expect(
      c.apply({
        type: "ERROR",
        object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 5 (90)" },
      }),
    ).toMatchObject({ kind: "error", gone: true });
    expect(
      c.apply({ type: "ERROR", object: { kind: "Status", code: 500, reason: "InternalError", message: "etcd" } }),
    ).toMatchObject({ kind: "error", gone: false, code: 500 });
  });
  it("an event whose object cannot be read is refused, and the cache keeps what it had", () => {
    const c = cache();
    c.replace([node("a", "10.1.1.0/24", "1.1.1.1", "2")], "2");
    expect(
      c.apply({ type: "MODIFIED", object: { kind: "Pod", metadata: { name: "a", resourceVersion: "3" } } }),
    ).toMatchObject({ kind: "refused", name: "a" });
    expect(c.values()[0]?.podCIDRs).toEqual(["10.1.1.0/24"]);
    expect(c.resourceVersion).toBe("3");
  });
});
