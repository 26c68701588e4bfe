/**
 * The node-mode command line, run by a person, a systemd unit or a DaemonSet, never by a container runtime
 * (cmd/cni-ts.ts sends argv[0] === "sync" here instead of to the CNI protocol):
 *
 *   routes sync --nodes FILE|- --node NAME [--dry-run] [--interval SECONDS]     from a NodeList file
 *   routes sync --kubernetes [--kubeconfig FILE] [--node NAME] ...             a controller watching the API
 *   ... [--forward-accept auto|CIDR[,CIDR]]                                    and the FORWARD accept rules
 *   routes sync --cleanup [--dry-run]                                          remove every route and rule of ours
 *
 * Exit status: 0 in sync (or stopped by a signal), 1 failure, 2 usage or input error (nothing changed).
 */
import { readFileSync } from "node:fs";
import { CniError } from "../../lib/errors.js";
import { normalJitPolicy } from "../../lib/runtime.js";
import { InputError, parseNodeList, type NodeEntry } from "./nodelist.js";
import { cleanupPlan, describeChange, isNodeName, syncOnce, type SyncOutput } from "./sync.js";
import { FORWARD_CHAIN, parseForwardAccept } from "./forward.js";
import { syncForward } from "./forward-apply.js";
import { applyOps } from "./apply.js";
import { ROUTES_PROTO, SYNC_PROTO } from "./config.js";
import type { FileArgs, SyncArgs } from "./sync-args.js";

/** The help text of `routes sync`, printed with --help and after a usage error. */
export const SYNC_USAGE = `usage: routes sync --nodes FILE|- --node NAME [--dry-run] [--interval SECONDS] [--forward-accept LIST]
       routes sync --kubernetes [--kubeconfig FILE] [--node NAME] [--resync SECONDS] [--listen ADDR:PORT]
                   [--health-file FILE] [--request-timeout SECONDS] [--dry-run] [--forward-accept LIST]
       routes sync --cleanup [--dry-run]

Ensure on this node a route "podCIDR via InternalIP" for every other node of a Kubernetes NodeList
(\`kubectl get nodes -o json > FILE\`), replace such routes it installed earlier when they changed, and delete
those whose node left the list. Its routes carry proto ${SYNC_PROTO}; no other route is ever changed.
(The CNI plugin's own routes carry proto ${ROUTES_PROTO}.)

  --nodes FILE|-      the NodeList; - reads stdin (not with --interval)
  --node NAME         this node's name in the list (with --kubernetes: default $NODE_NAME)
  --dry-run           print the plan (add / replace / delete), change nothing
  --interval SECONDS  sync, sleep, repeat (re-reading FILE) until SIGINT or SIGTERM
  --forward-accept auto|CIDR[,CIDR...]
                      also keep iptables/ip6tables rules (chain ${FORWARD_CHAIN} in the filter table, one jump at
                      the top of FORWARD) that accept forwarded traffic from and to these subnets; auto: every
                      node's podCIDRs as listed, following the cluster; "" : no forward rules (none touched)

  --kubernetes        list and watch the Nodes of the API server and sync on every change, until SIGINT or
                      SIGTERM (which leave the routes in place); in-cluster service account unless --kubeconfig
  --kubeconfig FILE   the API server and credentials from FILE's current context (implies --kubernetes)
  --resync SECONDS    list every Node again this often, whatever the watch said (default 300)
  --listen ADDR:PORT  serve /metrics (Prometheus), /healthz and /readyz over HTTP on this address
  --health-file FILE  write FILE after every successful sync (its time is the last success); removed at start
  --request-timeout SECONDS  for a list page or the start of a watch (default 30)

  --cleanup           delete every route with proto ${SYNC_PROTO} from this node's main table and the chain
                      ${FORWARD_CHAIN} with its jump (IPv4 and IPv6), and exit

Exit status: 0 in sync (or stopped by a signal); 1 a change failed or a peer was left out for a problem;
2 usage or input error.
`;

function seconds(flag: string, text: string, min: number, max: number): number {
  const s = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(s >= min) || s > max)
    throw new InputError(`${flag} must be a number of seconds between ${min} and ${max}, got ${JSON.stringify(text)}`);
  return s * 1000;
}

/** "127.0.0.1:9808", "[fd00::1]:9808", ":9808" (every address). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535))
    throw new InputError(
      `--listen must be ADDR:PORT (e.g. 127.0.0.1:9808, [::1]:9808, :9808), got ${JSON.stringify(text)}`,
    );
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** argv after "sync"; InputError on anything wrong, with the message to print. */
export function parseSyncArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): SyncArgs | "help" {
  const v = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new InputError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--dry-run":
      case "--kubernetes":
      case "--cleanup":
        flags.add(flag);
        break;
      case "--nodes":
      case "--node":
      case "--interval":
      case "--kubeconfig":
      case "--resync":
      case "--listen":
      case "--health-file":
      case "--request-timeout":
      case "--forward-accept":
        v.set(flag, value());
        break;
      default:
        throw new InputError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  const dryRun = flags.has("--dry-run");
  const forward = v.has("--forward-accept") ? parseForwardAccept(v.get("--forward-accept")!) : undefined;
  const kube = flags.has("--kubernetes") || v.has("--kubeconfig");
  const only = (mode: string, allowed: string[]) => {
    const extra = [...v.keys(), ...flags].find((f) => f !== "--dry-run" && !allowed.includes(f));
    if (extra !== undefined) throw new InputError(`${extra} does not go with ${mode}`);
  };
  if (flags.has("--cleanup")) {
    only("--cleanup", ["--cleanup"]);
    return { mode: "cleanup", dryRun };
  }
  if (kube) {
    only("--kubernetes", [
      "--kubernetes",
      "--kubeconfig",
      "--node",
      "--resync",
      "--listen",
      "--health-file",
      "--request-timeout",
      "--forward-accept",
    ]);
    const node = v.get("--node") ?? env.NODE_NAME ?? "";
    if (node === "") throw new InputError("--node NAME (or NODE_NAME in the environment) is required");
    if (!isNodeName(node)) throw new InputError(`--node ${JSON.stringify(node)} is not a Kubernetes node name`);
    const kubeconfig = v.get("--kubeconfig");
    if (kubeconfig === "") throw new InputError("--kubeconfig needs a file");
    return {
      mode: "kubernetes",
      kubeconfig,
      node,
      dryRun,
      resyncMs: v.has("--resync") ? seconds("--resync", v.get("--resync")!, 10, 86400) : 300_000,
      requestTimeoutMs: v.has("--request-timeout")
        ? seconds("--request-timeout", v.get("--request-timeout")!, 1, 600)
        : 30_000,
      listen: v.has("--listen") ? parseListen(v.get("--listen")!) : undefined,
      healthFile: v.get("--health-file") || undefined,
      forward,
    };
  }
  only("--nodes", ["--nodes", "--node", "--interval", "--forward-accept"]);
  const nodes = v.get("--nodes");
  const node = v.get("--node");
  if (nodes === undefined || nodes === "")
    throw new InputError("--nodes FILE|- is required (or --kubernetes, or --cleanup)");
  if (node === undefined || node === "") throw new InputError("--node NAME is required");
  let intervalMs: number | undefined;
  const interval = v.get("--interval");
  if (interval !== undefined) {
    intervalMs = seconds("--interval", interval, 1, 86400);
    if (nodes === "-") throw new InputError("--interval re-reads the node list each time: give a file, not -");
  }
  return { mode: "file", nodes, node, dryRun, intervalMs, forward };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === "string" ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString("utf8");
}

async function loadNodes(source: string): Promise<NodeEntry[]> {
  let text: string;
  try {
    text = source === "-" ? await readAll(process.stdin) : readFileSync(source, "utf8");
  } catch (e) {
    throw new InputError(`cannot read ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseNodeList(text, source === "-" ? "stdin" : source);
}

/** One sync: the exit status it stands for; messages go to io. */
async function once(args: FileArgs, io: SyncOutput, looping: boolean): Promise<number> {
  try {
    return await syncOnce(await loadNodes(args.nodes), args.node, args.dryRun, io, looping, args.forward);
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`routes sync: ${e.message}`);
      return 2;
    }
    const details = e instanceof CniError && e.details ? ` (${e.details})` : "";
    io.err(`routes sync: ${(e as Error).message}${details}`);
    return 1;
  }
}

/** Run until SIGINT/SIGTERM. The first round's input errors end it (a misconfigured unit should fail at once);
 * later ones are reported and retried, since the file may be mid-rewrite. A signal never interrupts a batch. */
async function loop(args: FileArgs, io: SyncOutput, intervalMs: number): Promise<number> {
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    let first = true;
    while (!stopped) {
      const status = await once(args, io, !first);
      if (first && status === 2) return 2;
      first = false;
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    io.err("routes sync: stopped");
    return 0;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

const processIO: SyncOutput = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/** Entry for `routes sync ARGV...` (argv: what follows "sync"); resolves to the exit status. */
export async function syncMain(argv: readonly string[], io: SyncOutput = processIO): Promise<number> {
  let args: SyncArgs | "help";
  try {
    args = parseSyncArgs(argv, process.env);
  } catch (e) {
    io.err(`routes sync: ${(e as Error).message}\n\n${SYNC_USAGE}`);
    return 2;
  }
  if (args === "help") {
    io.out(SYNC_USAGE);
    return 0;
  }
  switch (args.mode) {
    case "cleanup":
      return cleanup(args.dryRun, io);
    case "kubernetes": {
      // A controller stays: the JIT the build turns down for plugin calls pays for itself here.
      normalJitPolicy();
      // Loaded only on this path: the controller, the Kubernetes client and the HTTP server stay out of every
      // plugin call's start-up (cmd/cni-ts.ts bundles them, but nothing runs them until here).
      const { runController } = await import("./controller.js");
      return runController(args);
    }
    case "file":
      if (args.intervalMs === undefined) return once(args, io, false);
      normalJitPolicy();
      return loop(args, io, args.intervalMs);
  }
}

/** `--cleanup`: every route of ours goes, in one batch, and our forward chain with its jump, one restore per
 * family; nothing else is looked at. */
async function cleanup(dryRun: boolean, io: SyncOutput): Promise<number> {
  try {
    const [plan, rules] = await Promise.all([cleanupPlan(), syncForward({ 4: [], 6: [] }, true)]);
    for (const ch of plan.changes) io.out(describeChange(ch));
    for (const r of rules) for (const line of r.changes) io.out(line);
    const chains = rules.filter((r) => r.lines.length > 0).length;
    if (dryRun) {
      io.out(
        `dry run: ${plan.changes.length} route(s) of routes sync would be deleted, ${chains} forward chain(s); nothing changed`,
      );
      return 0;
    }
    await applyOps(
      plan.changes.map((c) => c.op),
      undefined,
      "this node",
    );
    if (chains > 0) await syncForward({ 4: [], 6: [] }, false);
    io.out(`${plan.changes.length} route(s) of routes sync deleted, ${chains} forward chain(s)`);
    return 0;
  } catch (e) {
    const details = e instanceof CniError && e.details ? ` (${e.details})` : "";
    io.err(`routes sync --cleanup failed: ${(e as Error).message}${details}`);
    return 1;
  }
}
