/**
 * The node-mode command line: `routes sync --nodes FILE|- --node NAME [--dry-run] [--interval SECONDS]`, run by a
 * person or a systemd timer, never by a container runtime (cmd/cni-ts.ts sends argv[0] === "sync" here instead of
 * to the CNI protocol). Exit status: 0 in sync, 1 failure, 2 usage or input error (nothing changed).
 */
import { readFileSync } from "node:fs";
import { CniError } from "../../lib/errors.js";
import { InputError, parseNodeList, type NodeEntry } from "./nodelist.js";
import { syncOnce, type SyncOutput } from "./sync.js";
import { ROUTES_PROTO, SYNC_PROTO } from "./config.js";

/** The help text of `routes sync`, printed with --help and after a usage error. */
export const SYNC_USAGE = `usage: routes sync --nodes FILE|- --node NAME [--dry-run] [--interval SECONDS]

Ensure on this node a route "podCIDR via InternalIP" for every other node of a Kubernetes NodeList
(\`kubectl get nodes -o json > FILE\`), replace such routes it installed earlier when they changed, and delete
those whose node left the list. Its routes carry proto ${SYNC_PROTO}; no other route is ever changed.
(The CNI plugin's own routes carry proto ${ROUTES_PROTO}.)

  --nodes FILE|-      the NodeList; - reads stdin (not with --interval)
  --node NAME         this node's name in the list
  --dry-run           print the plan (add / replace / delete), change nothing
  --interval SECONDS  sync, sleep, repeat (re-reading FILE) until SIGINT or SIGTERM

Exit status: 0 in sync; 1 a change failed or a peer was left out for a problem; 2 usage or input error.
`;

interface SyncArgs {
  nodes: string;
  node: string;
  dryRun: boolean;
  intervalMs: number | undefined;
}

/** argv after "sync"; InputError on anything wrong, with the message to print. */
export function parseSyncArgs(argv: readonly string[]): SyncArgs | "help" {
  let nodes: string | undefined;
  let node: string | undefined;
  let dryRun = false;
  let interval: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new InputError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--nodes":
        nodes = value();
        break;
      case "--node":
        node = value();
        break;
      case "--dry-run":
        dryRun = true;
        break;
      case "--interval":
        interval = value();
        break;
      default:
        throw new InputError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (nodes === undefined || nodes === "") throw new InputError("--nodes FILE|- is required");
  if (node === undefined || node === "") throw new InputError("--node NAME is required");
  let intervalMs: number | undefined;
  if (interval !== undefined) {
    const s = Number(interval);
    if (!/^\d+(\.\d+)?$/.test(interval) || !(s >= 1) || s > 86400) throw new InputError(`--interval must be a number of seconds between 1 and 86400, got ${JSON.stringify(interval)}`);
    if (nodes === "-") throw new InputError("--interval re-reads the node list each time: give a file, not -");
    intervalMs = s * 1000;
  }
  return { nodes, node, dryRun, intervalMs };
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
async function once(args: SyncArgs, io: SyncOutput, looping: boolean): Promise<number> {
  try {
    return await syncOnce(await loadNodes(args.nodes), args.node, args.dryRun, io, looping);
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
async function loop(args: SyncArgs, io: SyncOutput, intervalMs: number): Promise<number> {
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
  out: (line) => void process.stdout.write(line + "\n"),
  err: (line) => void process.stderr.write(line + "\n"),
};

/** Entry for `routes ARGV...` with argv[0] === "sync"; resolves to the exit status. */
export async function routesCli(argv: readonly string[], io: SyncOutput = processIO): Promise<number> {
  if (argv[0] !== "sync") {
    io.err(SYNC_USAGE);
    return 2;
  }
  let args: SyncArgs | "help";
  try {
    args = parseSyncArgs(argv.slice(1));
  } catch (e) {
    io.err(`routes sync: ${(e as Error).message}\n\n${SYNC_USAGE}`);
    return 2;
  }
  if (args === "help") {
    io.out(SYNC_USAGE);
    return 0;
  }
  return args.intervalMs === undefined ? once(args, io, false) : loop(args, io, args.intervalMs);
}
