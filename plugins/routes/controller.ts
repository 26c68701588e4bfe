/**
 * `routes sync --kubernetes`: the node controller. It lists and watches the Nodes of the API server
 * (lib/kube/listwatch.ts) and, on every change that matters to routing, runs the same plan and batch as
 * `routes sync --nodes` (sync.ts) against this node's kernel, one sync at a time (syncrunner.ts).
 *
 * What it never does: change a route without proto 208, act on an empty or failed answer (an unreachable API
 * means no sync at all, so the routes stay as they are), or remove its routes when it stops (SIGTERM: a
 * restarting DaemonSet pod must not blackhole the node's traffic; `routes sync --cleanup` does that on purpose).
 *
 * @example
 *   process.exitCode = await runController(parseSyncArgs(["--kubernetes", "--node", "node1"]) as KubernetesArgs);
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { Backoff } from "../../lib/kube/backoff.js";
import { ObjectCache } from "../../lib/kube/cache.js";
import { KubeClient } from "../../lib/kube/client.js";
import { resolveTarget, type KubeTarget } from "../../lib/kube/config.js";
import { ListWatch } from "../../lib/kube/listwatch.js";
import type { KubernetesArgs } from "./sync-args.js";
import { jsonLogger, type Logger } from "./jsonlog.js";
import { ControllerMetrics } from "./metrics.js";
import { parseNode, type NodeEntry } from "./nodelist.js";
import { startStatusServer } from "./statusserver.js";
import { describeChange, forwardChanges, syncNodes } from "./sync.js";
import { SyncRunner } from "./syncrunner.js";

function writeHealthFile(file: string, when: Date): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${when.toISOString()}\n`);
  renameSync(tmp, file);
}

/** Messages of the last sync, so that a refused node is logged when it appears, not on every sync. */
class Repeats {
  private seen = new Set<string>();
  /** The lines not in the previous call. */
  fresh(lines: readonly string[]): string[] {
    const out = lines.filter((l) => !this.seen.has(l));
    this.seen = new Set(lines);
    return out;
  }
}

export async function runController(
  args: KubernetesArgs,
  log: Logger = jsonLogger(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let target: KubeTarget;
  try {
    target = resolveTarget(args.kubeconfig, env);
  } catch (e) {
    log.error((e as Error).message);
    return 2;
  }
  const client = new KubeClient(target);
  const cache = new ObjectCache<NodeEntry>((o) => {
    const n = parseNode(o, "a Node");
    return { name: n.name, value: n };
  });
  const metrics = new ControllerMetrics();
  const stop = new AbortController();
  const onSignal = (sig: string) => () => {
    if (stop.signal.aborted) return;
    log.info(`${sig}: stopping; the routes stay in place`);
    stop.abort();
  };
  const onTerm = onSignal("SIGTERM");
  const onInt = onSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);

  let listed = false;
  // Set below, once the sync exists; the dry run lists without one.
  let runner: SyncRunner | undefined;
  const lw = new ListWatch<NodeEntry>({
    client,
    path: "/api/v1/nodes",
    cache,
    resyncMs: args.resyncMs,
    requestTimeoutMs: args.requestTimeoutMs,
    onChange: (why) => {
      listed = true;
      runner?.request(why);
    },
    onEvent: (ev) => void metrics.watchEvents[ev.type]++,
    onList: (items, rv, refused) => {
      metrics.lists++;
      log.info("listed nodes", { nodes: items, resourceVersion: rv });
      for (const r of refused) log.warn(`refused a node of the list: ${r.message}`, { node: r.name });
    },
    onRestart: (reason, detail, delayMs) => {
      metrics.watchRestarts[reason]++;
      if (reason === "error") log.warn(`watch failed: ${detail}`, { reason, retryInMs: delayMs });
      else log.info(`watch restarted: ${detail}`, { reason, retryInMs: delayMs });
    },
    onRefused: (name, message) => log.warn(`refused a watch event: ${message}`, { node: name }),
  });

  if (args.dryRun) {
    try {
      await lw.list(stop.signal);
      const r = await syncNodes(cache.values(), args.node, true, args.forward);
      for (const s of [...r.plan.skipped, ...r.plan.problems]) log.warn(s);
      if (r.forwardError !== undefined) log.error(`forward rules: ${r.forwardError}`);
      for (const ch of r.plan.host.changes) process.stdout.write(`${describeChange(ch)}\n`);
      for (const line of forwardChanges(r)) process.stdout.write(`${line}\n`);
      process.stdout.write(
        `dry run: ${r.plan.host.changes.length} change(s) planned, ${r.plan.host.unchanged.length} route(s) already in place; nothing changed\n`,
      );
      return r.status;
    } catch (e) {
      log.error((e as Error).message);
      return 1;
    } finally {
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
    }
  }

  if (args.healthFile) rmSync(args.healthFile, { force: true });
  const repeats = new Repeats();
  const sync = async (why: string): Promise<boolean> => {
    if (!listed) return true;
    const nodes = cache.values();
    metrics.syncs++;
    metrics.nodes = nodes.length;
    const started = Date.now();
    try {
      const r = await syncNodes(nodes, args.node, false, args.forward);
      for (const line of repeats.fresh([...r.plan.skipped, ...r.plan.problems])) log.warn(line);
      metrics.refused = r.plan.problems.length;
      // Forward rules are restored per family whatever the routes did; count what reached the kernel first.
      for (const p of r.forward ?? []) {
        if (p.lines.length === 0) continue;
        metrics.forwardApplied++;
        for (const line of p.changes) log.info(line, { change: "forward", family: p.family });
      }
      if (r.forwardError !== undefined) metrics.forwardErrors++;
      if (r.error !== undefined || r.forwardError !== undefined) {
        metrics.syncErrors++;
        if (r.error !== undefined) log.error(`sync failed, nothing changed: ${r.error}`, { why });
        if (r.forwardError !== undefined) log.error(`forward rules failed, unchanged: ${r.forwardError}`, { why });
        return false;
      }
      for (const ch of r.applied) {
        metrics.routesApplied[ch.kind]++;
        log.info(describeChange(ch), { change: ch.kind, dst: ch.kind === "delete" ? ch.old.dst : ch.want.route.dst });
      }
      const routes = r.plan.host.unchanged.length + r.applied.filter((c) => c.kind !== "delete").length;
      metrics.routes = routes;
      const first = metrics.lastSuccess === 0;
      const now = new Date();
      metrics.lastSuccess = now.getTime() / 1000;
      if (args.healthFile) writeHealthFile(args.healthFile, now);
      if (first || r.applied.length > 0)
        log.info("in sync", { why, changes: r.applied.length, routes, nodes: nodes.length, ms: Date.now() - started });
      return true;
    } catch (e) {
      metrics.syncErrors++;
      log.error(`sync failed, nothing changed: ${(e as Error).message}`, { why });
      return false;
    }
  };
  runner = new SyncRunner(sync, new Backoff({ initialMs: 1000, maxMs: 30_000 }), (delayMs) =>
    log.info("sync will be retried", { retryInMs: delayMs }),
  );

  let server: import("node:http").Server | undefined;
  if (args.listen) {
    try {
      server = await startStatusServer(args.listen, metrics);
    } catch (e) {
      log.error(`cannot listen on ${args.listen.host}:${args.listen.port}: ${(e as Error).message}`);
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      return 2;
    }
  }
  log.info("started", {
    node: args.node,
    server: target.server.origin,
    from: target.source,
    resyncSeconds: args.resyncMs / 1000,
    listen: args.listen ? `${args.listen.host}:${args.listen.port}` : undefined,
  });
  try {
    await lw.run(stop.signal);
  } finally {
    // A sync in flight finishes: a batch is never cut in half by a signal.
    await runner?.stop();
    server?.close();
    server?.closeAllConnections();
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
  }
  log.info("stopped");
  return 0;
}
