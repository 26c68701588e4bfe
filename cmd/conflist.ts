/**
 * `cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]]`: write a node's conflist from a
 * template and the node's pod subnets, the way kube-router and flannel write theirs from a DaemonSet.
 *
 * The pod subnets come from --pod-cidrs, or from the Node object (spec.podCIDRs / spec.podCIDR) read from the
 * in-cluster API with the pod's service account (NODE_NAME from the downward API, or --node). In the template,
 * "__POD_CIDR__" becomes the first pod subnet and "__RANGES__" (a JSON string, quotes included) becomes host-local
 * `ranges` with one range set per subnet (dual-stack). The output is written only if it changed, by rename, so the
 * runtime never reads a half-written file.
 */
import { readFileSync, renameSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { parseCidr, isNetworkAddress } from "../lib/cidr.js";

const SA = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The template with the node's pod subnets filled in; throws when the outcome is not a JSON object. */
export function renderConflist(template: string, podCIDRs: readonly string[]): string {
  if (podCIDRs.length === 0) throw new Error("the node has no pod subnet (spec.podCIDR): is the controller manager allocating node CIDRs?");
  for (const c of podCIDRs) {
    const p = parseCidr(c);
    if (!p || !isNetworkAddress(p)) throw new Error(`not a network address: ${JSON.stringify(c)}`);
  }
  const ranges = JSON.stringify(podCIDRs.map((subnet) => [{ subnet }]));
  const text = template.split('"__RANGES__"').join(ranges).split("__POD_CIDR__").join(podCIDRs[0]!);
  const parsed = JSON.parse(text) as unknown;
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the rendered template is not a JSON object");
  return JSON.stringify(parsed, null, 2) + "\n";
}

/** The Node's pod subnets from the API server, with the pod's service account. */
export async function fetchPodCIDRs(node: string): Promise<string[]> {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host) throw new Error("not in a cluster (KUBERNETES_SERVICE_HOST unset): pass --pod-cidrs");
  const token = readFileSync(`${SA}/token`, "utf8").trim();
  const ca = readFileSync(`${SA}/ca.crt`);
  // Loaded here, not at the top: TLS costs every plugin process ~16 ms of CPU at start, and only this command needs it.
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path: `/api/v1/nodes/${encodeURIComponent(node)}`, headers: { authorization: `Bearer ${token}`, accept: "application/json" }, ca, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (b: Buffer) => chunks.push(b));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) return reject(new Error(`GET node ${node}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
          try {
            const spec = (JSON.parse(body) as { spec?: { podCIDR?: string; podCIDRs?: string[] } }).spec ?? {};
            resolve(spec.podCIDRs?.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : []);
          } catch (e) {
            reject(new Error(`GET node ${node}: ${(e as Error).message}`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("the API server did not answer within 10 s")));
    req.on("error", reject);
    req.end();
  });
}

export async function conflistMain(argv: readonly string[]): Promise<number> {
  const opt = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k || !["--template", "--out", "--node", "--pod-cidrs"].includes(k) || v === undefined) {
      process.stderr.write("usage: cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]]\n");
      return 2;
    }
    opt.set(k, v);
  }
  const template = opt.get("--template");
  const out = opt.get("--out");
  if (!template || !out) {
    process.stderr.write("cni-ts conflist: --template and --out are required\n");
    return 2;
  }
  try {
    const node = opt.get("--node") ?? process.env.NODE_NAME ?? "";
    const cidrs = opt.has("--pod-cidrs") ? opt.get("--pod-cidrs")!.split(",").filter(Boolean) : await fetchPodCIDRs(node);
    const text = renderConflist(readFileSync(template, "utf8"), cidrs);
    if (existsSync(out) && readFileSync(out, "utf8") === text) {
      process.stdout.write(`${out} is up to date (${cidrs.join(", ")})\n`);
      return 0;
    }
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, text, { mode: 0o644 });
      renameSync(tmp, out);
    } finally {
      rmSync(tmp, { force: true });
    }
    process.stdout.write(`wrote ${out} (${cidrs.join(", ")})\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`cni-ts conflist: ${(e as Error).message}\n`);
    return 1;
  }
}
