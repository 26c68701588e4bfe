/**
 * The node list `routes sync` works from: a Kubernetes NodeList as `kubectl get nodes -o json` prints it (kind
 * "List" there, "NodeList" from the API). Only what routing needs is kept: name, pod CIDRs, InternalIPs.
 * Anything that makes the file unusable as a whole is an InputError (exit status 2, nothing changed); a single
 * node's odd data is judged later, per node (sync.ts), so one bad entry does not hold up the others.
 *
 * @example
 *   parseNodeList(readFileSync("nodes.json", "utf8"), "nodes.json") // [{ name: "node1", podCIDRs: ["10.244.1.0/24"], internalIPs: ["172.31.250.1"] }]
 */

/** Input that cannot be used at all: the CLI prints the message and exits with status 2. */
export class InputError extends Error {
  override name = "InputError";
}

/** What routing needs of one node of the list. */
export interface NodeEntry {
  name: string;
  /** spec.podCIDRs, or [spec.podCIDR] when the list is absent (clusters before dual-stack). Unvalidated text. */
  podCIDRs: string[];
  /** status.addresses of type InternalIP, in order. Unvalidated text. */
  internalIPs: string[];
}

const LIST_KINDS = ["NodeList", "List"];

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string" && s !== "") : [];
}

/** Parse the text of a node list; `source` names it in messages (a file name, or "stdin"). */
export function parseNodeList(text: string, source: string): NodeEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InputError(
      `${source} is not JSON (${(e as Error).message}); expected the output of \`kubectl get nodes -o json\``,
    );
  }
  const root = obj(doc);
  if (!root) throw new InputError(`${source} is not a JSON object; expected a NodeList`);
  if (root.kind !== undefined && !LIST_KINDS.includes(String(root.kind))) {
    throw new InputError(
      `${source} is a ${JSON.stringify(root.kind)}, not a NodeList; use \`kubectl get nodes -o json\` (not a single node)`,
    );
  }
  if (!Array.isArray(root.items)) throw new InputError(`${source} has no "items" array; expected a NodeList`);
  if (root.items.length === 0) throw new InputError(`${source} lists no nodes (items is empty)`);
  const seen = new Set<string>();
  return root.items.map((raw, i) => {
    const item = obj(raw);
    if (!item) throw new InputError(`${source}: items[${i}] is not an object`);
    const entry = parseNode(item, `${source}: items[${i}]`);
    if (seen.has(entry.name)) throw new InputError(`${source}: node ${JSON.stringify(entry.name)} is listed twice`);
    seen.add(entry.name);
    return entry;
  });
}

/**
 * One Node object (a list item, or the object of a watch event) as a NodeEntry. Only a missing name or a kind
 * other than Node is an InputError here: the values are judged per node by the sync plan.
 */
export function parseNode(item: Record<string, unknown>, where: string): NodeEntry {
  if (item.kind !== undefined && item.kind !== "Node")
    throw new InputError(`${where} is a ${JSON.stringify(item.kind)}, not a Node`);
  const name = obj(item.metadata)?.name;
  if (typeof name !== "string" || name === "") throw new InputError(`${where} has no metadata.name`);
  const spec = obj(item.spec) ?? {};
  const podCIDRs = strings(spec.podCIDRs);
  if (podCIDRs.length === 0 && typeof spec.podCIDR === "string" && spec.podCIDR !== "") podCIDRs.push(spec.podCIDR);
  const addresses = Array.isArray(obj(item.status)?.addresses) ? (obj(item.status)!.addresses as unknown[]) : [];
  const internalIPs = addresses
    .map(obj)
    .filter((a) => a?.type === "InternalIP" && typeof a.address === "string")
    .map((a) => a!.address as string);
  return { name, podCIDRs, internalIPs };
}
