/**
 * `routes sync`: on this node, `podCIDR via InternalIP` for every other node of a NodeList (kubenet / flannel
 * host-gw style), in one batch. Routes carry SYNC_PROTO; a route to a peer's podCIDR that does not is someone
 * else's and is never touched, and routes of ours whose node left the list are deleted.
 *
 * The decisions are pure (planSync) so they are unit-tested; syncOnce reads the node and applies.
 *
 * @example
 *   const plan = planSync(parseNodeList(text, "nodes.json"), "node1", await readRoutes(), await localNetworks());
 */
import {
  cidrContains,
  cidrsOverlap,
  formatIP,
  isNetworkAddress,
  parseCidr,
  parseIP,
  bigIntToIP,
  type Cidr,
} from "../../lib/cidr.js";
import { ipJson, type LinkAddrs } from "../../lib/ip/read.js";
import { applyOps } from "./apply.js";
import { SYNC_PROTO } from "./config.js";
import { planHost, type HostChange, type HostPlan, type WantedRoute } from "./hostplan.js";
import { readRoutes, type KernelRoute } from "../../lib/ip/routes.js";
import { describeKernel } from "./kernel.js";
import { InputError, type NodeEntry } from "./nodelist.js";
import { forwardCidrs, type ForwardPlan, type ForwardSpec } from "./forward.js";
import { syncForward } from "./forward-apply.js";

/** One address of this node with its prefix: the networks it reaches directly. */
export interface LocalNet {
  ifname: string;
  cidr: Cidr;
}

/** One sync's decisions: the node-route plan plus the peers left out and why. */
export interface SyncPlan {
  host: HostPlan;
  wanted: WantedRoute[];
  /** Nodes or pod CIDRs left out for an ordinary reason (no podCIDR yet, no InternalIP of that family). */
  skipped: string[];
  /** Left out because something is wrong (peer not directly reachable, bad CIDR, clash): exit status 1. */
  problems: string[];
}

/** This node's addresses that reach neighbours: not host-scope (lo) nor link-local, and not /32 or /128. */
export async function localNetworks(): Promise<LocalNet[]> {
  const links = await ipJson<LinkAddrs[]>(["addr", "show"]);
  const out: LocalNet[] = [];
  for (const l of links) {
    for (const a of l.addr_info) {
      if (a.scope === "host" || a.scope === "link" || a.scope === "254" || a.scope === "253") continue;
      const cidr = parseCidr(`${a.local}/${a.prefixlen}`);
      if (cidr) out.push({ ifname: l.ifname, cidr });
    }
  }
  return out;
}

/** A Kubernetes object name (RFC 1123 subdomain): what the API itself allows as a Node name. */
export function isNodeName(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

/**
 * The routes this node should have, and why any node was left out. Every value that reaches a route (and so an
 * `ip -batch` line) is checked here, per node: a node with a bad value is refused with a message and the others go
 * on. Nodes are judged in the order given (sorted by name in the controller), so of two nodes that claim the
 * same or overlapping pod subnets, the first keeps it.
 */
export function wantedRoutes(
  nodes: readonly NodeEntry[],
  self: string,
  nets: readonly LocalNet[],
): Pick<SyncPlan, "wanted" | "skipped" | "problems"> {
  const wanted: WantedRoute[] = [];
  const skipped: string[] = [];
  const problems: string[] = [];
  // Pod subnets taken so far, by whom: this node's first, so that no peer can claim (part of) them.
  const owners: Array<{ cidr: Cidr; dst: string; node: string }> = [];
  const me = nodes.find((n) => n.name === self);
  for (const n of me?.podCIDRs ?? []) {
    const c = parseCidr(n);
    if (c) owners.push({ cidr: c, dst: `${bigIntToIP(c.family, c.network)}/${c.prefix}`, node: self });
  }
  for (const node of nodes) {
    if (node.name === self) continue;
    // Names reach logs and reports only, never a command; still, a name with a newline could forge a report line.
    if (!isNodeName(node.name)) {
      problems.push(`skip node ${JSON.stringify(node.name.slice(0, 80))}: not a valid node name`);
      continue;
    }
    if (node.podCIDRs.length === 0) {
      skipped.push(`skip node ${node.name}: no spec.podCIDR`);
      continue;
    }
    const badIP = node.internalIPs.find((a) => !parseIP(a));
    if (badIP !== undefined) {
      problems.push(`skip node ${node.name}: InternalIP ${JSON.stringify(badIP.slice(0, 80))} is not an IP address`);
      continue;
    }
    for (const text of node.podCIDRs) {
      const c = parseCidr(text);
      if (!c || !isNetworkAddress(c)) {
        problems.push(`skip node ${node.name}: podCIDR ${JSON.stringify(text.slice(0, 80))} is not a network CIDR`);
        continue;
      }
      const dst = `${bigIntToIP(c.family, c.network)}/${c.prefix}`;
      const ip = node.internalIPs.map((a) => parseIP(a)).find((a) => a?.family === c.family);
      if (!ip) {
        skipped.push(`skip node ${node.name}: no IPv${c.family} InternalIP for podCIDR ${dst}`);
        continue;
      }
      const gw = formatIP(ip);
      const clash = owners.find((o) => o.dst === dst);
      if (clash !== undefined) {
        problems.push(`skip node ${node.name}: podCIDR ${dst} is also node ${clash.node}'s`);
        continue;
      }
      const overlap = owners.find((o) => cidrsOverlap(o.cidr, c));
      if (overlap !== undefined) {
        problems.push(`skip node ${node.name}: podCIDR ${dst} overlaps node ${overlap.node}'s podCIDR ${overlap.dst}`);
        continue;
      }
      // A pod subnet over a network this node is on would steer (part of) that network to the peer.
      const onLink = nets.find((n) => n.cidr.family === c.family && cidrsOverlap(n.cidr, c));
      if (onLink !== undefined) {
        problems.push(
          `skip node ${node.name}: podCIDR ${dst} overlaps ${bigIntToIP(onLink.cidr.family, onLink.cidr.network)}/${onLink.cidr.prefix} on ${onLink.ifname}, a network of this node`,
        );
        continue;
      }
      if (nets.some((n) => n.cidr.family === ip.family && n.cidr.ip === ip.value)) {
        problems.push(`skip node ${node.name}: its InternalIP ${gw} is an address of this node`);
        continue;
      }
      // A gateway off every connected network cannot be a next hop: the kernel refuses the route, or (with
      // onlink) the packets vanish. Say so rather than blackhole the peer's pods.
      const direct = nets.some((n) => n.cidr.prefix < (n.cidr.family === 4 ? 32 : 128) && cidrContains(n.cidr, ip));
      if (!direct) {
        problems.push(
          `skip node ${node.name}: InternalIP ${gw} is not on a directly connected network of this node, so ${dst} via ${gw} would not work`,
        );
        continue;
      }
      owners.push({ cidr: c, dst, node: node.name });
      wanted.push({ route: { dst, gw }, label: `node ${node.name}` });
    }
  }
  return { wanted, skipped, problems };
}

/** The full plan for this node. Throws InputError when `self` is not in the list. */
export function planSync(
  nodes: readonly NodeEntry[],
  self: string,
  current: readonly KernelRoute[],
  nets: readonly LocalNet[],
): SyncPlan {
  if (!nodes.some((n) => n.name === self))
    throw new InputError(`node ${JSON.stringify(self)} is not in the node list (--node must name this node)`);
  const w = wantedRoutes(nodes, self, nets);
  const host = planHost(w.wanted, current, SYNC_PROTO, true, "no node in the list has this podCIDR any more");
  const conflicts = host.conflicts.map(
    (c) =>
      `conflict ${c.want.route.dst} via ${c.want.route.gw} (${c.want.label}): ${describeKernel(c.existing)} is in the way and was not installed by routes sync; left alone`,
  );
  return { host, ...w, problems: [...w.problems, ...conflicts] };
}

/** One line of the report: what a change does. */
export function describeChange(ch: HostChange): string {
  switch (ch.kind) {
    case "add":
      return `add ${ch.want.route.dst} via ${ch.want.route.gw} (${ch.want.label})`;
    case "replace":
      return `replace ${ch.want.route.dst} via ${ch.want.route.gw} (${ch.want.label}; was ${describeKernel(ch.old)})`;
    case "delete":
      return `delete ${describeKernel(ch.old)} (${ch.why})`;
  }
}

/** Where the report goes: changes to `out`, skips, problems and errors to `err`. */
export interface SyncOutput {
  out(line: string): void;
  err(line: string): void;
}

/** What one sync did: the plan, the changes that reached the kernel, and the exit status it stands for. */
export interface SyncResult {
  plan: SyncPlan;
  /** Changes applied (none with dryRun, none when the batch failed: it is undone as a whole). */
  applied: HostChange[];
  /** The batch failed (the kernel's reason); nothing changed. */
  error?: string;
  /** With --forward-accept: the forward rules' plans (applied unless dryRun or forwardError). */
  forward?: ForwardPlan[];
  /** The forward rules could not be read or written (the reason); that family's rules did not change. */
  forwardError?: string;
  /** 0 in sync, 1 a change failed or a peer was left out for a problem. */
  status: number;
}

/**
 * Plan against this node's routes and addresses and (unless dryRun) apply the plan in one batch. InputError
 * propagates (`self` not in the list).
 */
export async function syncNodes(
  nodes: readonly NodeEntry[],
  self: string,
  dryRun: boolean,
  forward?: ForwardSpec,
): Promise<SyncResult> {
  const [current, nets] = await Promise.all([readRoutes(), localNetworks()]);
  const plan = planSync(nodes, self, current, nets);
  const changes = plan.host.changes;
  // Routes and forward rules are independent (one ip batch, one restore per family): one failing leaves the other.
  const [routes, fwd] = await Promise.all([
    dryRun || changes.length === 0
      ? Promise.resolve({ applied: [] as HostChange[], error: undefined })
      : applyOps(
          changes.map((c) => c.op),
          undefined,
          "this node",
        ).then(
          () => ({ applied: [...changes], error: undefined }),
          (e: unknown) => ({ applied: [] as HostChange[], error: (e as Error).message }),
        ),
    forward === undefined
      ? Promise.resolve(undefined)
      : syncForward(forwardCidrs(forward, nodes), dryRun).then(
          (plans) => ({ plans, error: undefined }),
          (e: unknown) => ({ plans: [] as ForwardPlan[], error: (e as Error).message }),
        ),
  ]);
  const failed = routes.error !== undefined || fwd?.error !== undefined;
  const status = plan.problems.length > 0 || failed ? 1 : 0;
  return { plan, applied: routes.applied, error: routes.error, forward: fwd?.plans, forwardError: fwd?.error, status };
}

/** The report lines of the forward rules' changes (applied, or planned with --dry-run). */
export function forwardChanges(r: SyncResult): string[] {
  return (r.forward ?? []).flatMap((p) => p.changes);
}

/**
 * syncNodes, reported: skips and problems to `err`, one line per change and a summary to `out`. Returns the exit
 * status. InputError propagates (status 2 for the caller).
 */
export async function syncOnce(
  nodes: readonly NodeEntry[],
  self: string,
  dryRun: boolean,
  io: SyncOutput,
  quietWhenInSync = false,
  forward?: ForwardSpec,
): Promise<number> {
  const r = await syncNodes(nodes, self, dryRun, forward);
  const { plan } = r;
  for (const s of plan.skipped) io.err(s);
  for (const p of plan.problems) io.err(p);
  const changes = plan.host.changes;
  for (const ch of changes) io.out(describeChange(ch));
  const fwd = forwardChanges(r);
  for (const line of fwd) io.out(line);
  const rules =
    r.forward === undefined
      ? ""
      : fwd.length > 0
        ? `; forward rules: ${fwd.length} change(s)`
        : "; forward rules in place";
  if (dryRun) {
    io.out(
      `dry run: ${changes.length} change(s) planned, ${plan.host.unchanged.length} route(s) already in place${rules}; nothing changed`,
    );
  } else if (r.error !== undefined) {
    io.err(`routes sync failed, nothing changed: ${r.error}`);
  } else if (changes.length === 0 && fwd.length === 0) {
    if (!quietWhenInSync) io.out(`in sync: ${plan.host.unchanged.length} route(s) in place, nothing to change${rules}`);
  } else {
    io.out(`${changes.length} change(s) applied, ${plan.host.unchanged.length} route(s) already in place${rules}`);
  }
  if (r.forwardError !== undefined) io.err(`routes sync: forward rules failed, unchanged: ${r.forwardError}`);
  return r.status;
}

/**
 * `routes sync --cleanup`: delete every route of ours (proto SYNC_PROTO, main table) from this node, in one batch.
 * Routes of anyone else are not looked at.
 */
export async function cleanupPlan(): Promise<HostPlan> {
  return planHost([], await readRoutes(), SYNC_PROTO, true, "--cleanup");
}
