/**
 * `cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]] [--kubeconfig FILE]`: write a
 * node's conflist from a template and the node's pod subnets, the way kube-router and flannel write theirs from a
 * DaemonSet.
 *
 * The pod subnets come from --pod-cidrs, or from the Node object (spec.podCIDRs / spec.podCIDR) read from the API
 * with the client `routes sync --kubernetes` uses (lib/kube): the pod's service account, or --kubeconfig; the
 * node's name from NODE_NAME (the downward API) or --node. In the template, "__POD_CIDR__" becomes the first pod
 * subnet and "__RANGES__" (a JSON string, quotes included) becomes host-local `ranges` with one range set per subnet
 * (dual-stack). The output is written only if it changed, by rename, so the runtime never reads a half-written file.
 */
import { readFileSync, renameSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { parseCidr, isNetworkAddress } from "../lib/cidr.js";

/** The template with the node's pod subnets filled in; throws when the outcome is not a JSON object. */
export function renderConflist(template: string, podCIDRs: readonly string[]): string {
  if (podCIDRs.length === 0)
    throw new Error("the node has no pod subnet (spec.podCIDR): is the controller manager allocating node CIDRs?");
  for (const c of podCIDRs) {
    const p = parseCidr(c);
    if (!p || !isNetworkAddress(p)) throw new Error(`not a network address: ${JSON.stringify(c)}`);
  }
  const ranges = JSON.stringify(podCIDRs.map((subnet) => [{ subnet }]));
  const text = template.split('"__RANGES__"').join(ranges).split("__POD_CIDR__").join(podCIDRs[0]!);
  const parsed = JSON.parse(text) as unknown;
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    throw new Error("the rendered template is not a JSON object");
  return `${JSON.stringify(parsed, null, 2)}\n`;
}

/** The Node's pod subnets from the API server (the service account, or `kubeconfig`). */
export async function fetchPodCIDRs(node: string, kubeconfig: string | undefined): Promise<string[]> {
  // Loaded here, not at the top: only this command talks to the API, and a plugin call must not pay for it.
  const [{ KubeClient }, { resolveTarget }, { parseNode }, { isNodeName }] = await Promise.all([
    import("../lib/kube/client.js"),
    import("../lib/kube/config.js"),
    import("../plugins/routes/nodelist.js"),
    import("../plugins/routes/sync.js"),
  ]);
  if (!isNodeName(node)) throw new Error(`${JSON.stringify(node)} is not a node name: set NODE_NAME or pass --node`);
  const client = new KubeClient(resolveTarget(kubeconfig, process.env));
  const doc = await client.getJson(`/api/v1/nodes/${encodeURIComponent(node)}`, { timeoutMs: 10_000 });
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw new Error(`GET node ${node}: the answer is not an object`);
  return parseNode(doc as Record<string, unknown>, `node ${node}`).podCIDRs;
}

export async function conflistMain(argv: readonly string[]): Promise<number> {
  const opt = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k || !["--template", "--out", "--node", "--pod-cidrs", "--kubeconfig"].includes(k) || v === undefined) {
      process.stderr.write(
        "usage: cni-ts conflist --template FILE --out FILE [--node NAME] [--pod-cidrs CIDR[,CIDR]] [--kubeconfig FILE]\n",
      );
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
    const cidrs = opt.has("--pod-cidrs")
      ? opt.get("--pod-cidrs")!.split(",").filter(Boolean)
      : await fetchPodCIDRs(node, opt.get("--kubeconfig"));
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
