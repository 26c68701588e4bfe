// The Kubernetes client of `routes sync --kubernetes` and `cni-ts conflist` over HTTPS, as every real cluster
// serves its API: the built executable checks the API server's certificate against the kubeconfig's CA (file or
// data), authenticates with a token or a client certificate, and refuses a server its CA did not sign. Keys and
// certificates are made for this run with openssl; the API server's socket lives in a namespace of the run:
//
//   node1 eth1 172.31.251.1/24  ── veth ──  api eth1 172.31.251.250/24 (HTTPS on 6443)
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeApiServer, nodeObject } from "../../lab/kube-apiserver.js";
import { listenInNetns } from "../../lab/netns-listen.js";
import { DIST_BIN, Sandbox, requireBuilt } from "./helpers.js";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const TOKEN = "tls-token-4567";
const API_IP = "172.31.251.250";
const sb = new Sandbox();
let dir = "";
let node1 = "";
let apiPath = "";
const servers: FakeApiServer[] = [];

function sh(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A CA, and a certificate it signs (SAN: the API address for a server, a user name for a client). */
function makeCa(name: string): void {
  sh(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}
function makeCert(name: string, ca: string, ext: string): void {
  sh(
    "openssl",
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ],
    dir,
  );
  writeFileSync(join(dir, `${name}.ext`), ext);
  sh(
    "openssl",
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}
const file = (name: string) => readFileSync(join(dir, name));
const b64 = (name: string) => file(name).toString("base64");

/** A kubeconfig (JSON, which kubectl reads too) for the server on `port`. */
function kubeconfig(
  name: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  port: number,
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: `https://${API_IP}:${port}`, ...cluster } }],
      users: [{ name: "u", user }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  return path;
}

function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // Not spawnSync: the API server answering it lives in this process.
  return new Promise((resolve) => {
    const c = spawn("ip", ["netns", "exec", node1, "env", "-i", `PATH=${PATH}`, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

/** `cni-ts conflist` for node1 through `kc`: the ranges it wrote, or the failure. */
async function conflist(kc: string): Promise<{ status: number | null; stderr: string; ranges: unknown }> {
  const template = join(dir, "t.json");
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}.conflist`);
  writeFileSync(
    template,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "k8s",
      plugins: [{ type: "bridge", ipam: { type: "host-local", ranges: "__RANGES__" } }],
    }),
  );
  const r = await run([
    join(DIST_BIN, "cni-ts"),
    "conflist",
    "--template",
    template,
    "--out",
    out,
    "--node",
    "node1",
    "--kubeconfig",
    kc,
  ]);
  const ranges = existsSync(out)
    ? (JSON.parse(readFileSync(out, "utf8")) as { plugins: Array<{ ipam: { ranges: unknown } }> }).plugins[0]!.ipam
        .ranges
    : undefined;
  return { status: r.status, stderr: r.stderr, ranges };
}

async function serve(port: number, tls: { key: Buffer; cert: Buffer; clientCa?: Buffer }): Promise<void> {
  const api = new FakeApiServer({ token: TOKEN, tls });
  api.upsert(nodeObject("node1", ["10.244.1.0/24"], ["172.31.251.1"]));
  api.upsert(nodeObject("node2", ["10.244.2.0/24"], ["172.31.251.2"]));
  await api.start(() => listenInNetns(apiPath, API_IP, port));
  servers.push(api);
}

beforeAll(async () => {
  requireBuilt();
  dir = sb.tmpdir("tls");
  makeCa("ca");
  makeCa("other-ca");
  makeCert("server", "ca", `subjectAltName=IP:${API_IP}\nextendedKeyUsage=serverAuth\n`);
  makeCert("client", "ca", "extendedKeyUsage=clientAuth\n");
  node1 = sb.netns("node1").name;
  const api = sb.netns("api");
  apiPath = api.path;
  sh("ip", ["-n", node1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", api.name]);
  sh("ip", ["-n", node1, "addr", "add", "172.31.251.1/24", "dev", "eth1"]);
  sh("ip", ["-n", api.name, "addr", "add", `${API_IP}/24`, "dev", "eth1"]);
  sh("ip", ["-n", node1, "link", "set", "eth1", "up"]);
  sh("ip", ["-n", api.name, "link", "set", "eth1", "up"]);
  await serve(6443, { key: file("server.key"), cert: file("server.crt") });
  await serve(6444, { key: file("server.key"), cert: file("server.crt"), clientCa: file("ca.crt") });
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  sb.cleanup();
});

describe("the Kubernetes client over HTTPS (built executable)", () => {
  it("checks the server against certificate-authority (a file) and sends the token", async () => {
    const r = await conflist(
      kubeconfig("file.kubeconfig", { "certificate-authority": join(dir, "ca.crt") }, { token: TOKEN }, 6443),
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.ranges).toEqual([[{ subnet: "10.244.1.0/24" }]]);
  });

  it("takes certificate-authority-data and a client certificate from data instead of a token", async () => {
    const r = await conflist(
      kubeconfig(
        "data.kubeconfig",
        { "certificate-authority-data": b64("ca.crt") },
        { "client-certificate-data": b64("client.crt"), "client-key-data": b64("client.key") },
        6444,
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.ranges).toEqual([[{ subnet: "10.244.1.0/24" }]]);
  });

  it("refuses a server its CA did not sign, and writes nothing", async () => {
    const r = await conflist(
      kubeconfig("wrong-ca.kubeconfig", { "certificate-authority": join(dir, "other-ca.crt") }, { token: TOKEN }, 6443),
    );
    expect(r.status).not.toBe(0);
    expect(r.ranges).toBeUndefined();
    expect(r.stderr).toMatch(/certificate|self.signed|verify|issuer/i);
  });

  it("without a token or certificate the API answers 401, and the client says so", async () => {
    const r = await conflist(kubeconfig("anon.kubeconfig", { "certificate-authority": join(dir, "ca.crt") }, {}, 6443));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/401|Unauthorized/);
  });

  it("the controller routes the other node over HTTPS and keeps the route after SIGTERM", async () => {
    const kc = kubeconfig("ctl.kubeconfig", { "certificate-authority": join(dir, "ca.crt") }, { token: TOKEN }, 6443);
    const ctl = spawn(
      "ip",
      [
        "netns",
        "exec",
        node1,
        "env",
        "-i",
        `PATH=${PATH}`,
        join(DIST_BIN, "routes"),
        "sync",
        "--kubeconfig",
        kc,
        "--node",
        "node1",
        "--resync",
        "3600",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    ctl.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => ctl.on("exit", (code) => resolve(code)));
    const route = () => sh("ip", ["-n", node1, "route", "show", "proto", "208"]);
    try {
      const end = Date.now() + 20_000;
      while (!route().includes("10.244.2.0/24 via 172.31.251.2")) {
        if (Date.now() > end) throw new Error(`no route to node2 after 20 s; controller log:\n${log.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      ctl.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(route()).toContain("10.244.2.0/24 via 172.31.251.2");
  });
});
