/**
 * The controller's counters and gauges, in the Prometheus text format (version 0.0.4) that a scrape reads from
 * /metrics. Kept as plain numbers: a registry library would be the biggest dependency of the executable.
 *
 * @example
 *   const m = new ControllerMetrics();
 *   m.routesApplied.add++;
 *   m.render(); // "# HELP cni_ts_routes_sync_routes_applied_total ...\n..."
 */
import type { RestartReason } from "../../lib/kube/listwatch.js";
import type { WatchType } from "../../lib/kube/watchstream.js";

export class ControllerMetrics {
  readonly routesApplied = { add: 0, replace: 0, delete: 0 };
  syncs = 0;
  syncErrors = 0;
  readonly watchRestarts: Record<RestartReason, number> = { closed: 0, gone: 0, error: 0, resync: 0 };
  readonly watchEvents: Record<WatchType, number> = { ADDED: 0, MODIFIED: 0, DELETED: 0, BOOKMARK: 0, ERROR: 0 };
  lists = 0;
  /** Seconds since the epoch of the last sync that reached the kernel without error; 0 before the first. */
  lastSuccess = 0;
  nodes = 0;
  routes = 0;
  refused = 0;
  /** --forward-accept: restores that changed a family's forward rules, and syncs whose forward rules failed. */
  forwardApplied = 0;
  forwardErrors = 0;

  /** True once a sync has succeeded: the node's routes match the API as last seen. */
  get ready(): boolean {
    return this.lastSuccess > 0;
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: "counter" | "gauge", help: string, values: Array<[string, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of values) out.push(`${name}${labels} ${v}`);
    };
    const by = (label: string, rec: Record<string, number>): Array<[string, number]> =>
      Object.entries(rec).map(([k, v]) => [`{${label}="${k}"}`, v]);
    metric(
      "cni_ts_routes_sync_routes_applied_total",
      "counter",
      "Route changes applied to this node by routes sync (proto 208), by kind.",
      by("change", this.routesApplied),
    );
    metric(
      "cni_ts_routes_sync_syncs_total",
      "counter",
      "Syncs run (plan against the kernel, apply when something differs).",
      [["", this.syncs]],
    );
    metric(
      "cni_ts_routes_sync_errors_total",
      "counter",
      "Syncs that failed (the kernel refused the batch, or this node is not in the list); nothing changed by them.",
      [["", this.syncErrors]],
    );
    metric(
      "cni_ts_routes_sync_watch_restarts_total",
      "counter",
      "Watches of the Node API that ended and were started again, by reason.",
      by("reason", this.watchRestarts),
    );
    metric(
      "cni_ts_routes_sync_watch_events_total",
      "counter",
      "Watch events received, by type.",
      by("type", this.watchEvents),
    );
    metric(
      "cni_ts_routes_sync_lists_total",
      "counter",
      "Full lists of the Nodes read (start, 410 Gone, periodic resync).",
      [["", this.lists]],
    );
    metric(
      "cni_ts_routes_sync_last_success_timestamp_seconds",
      "gauge",
      "When the last successful sync finished (seconds since the epoch; 0: none yet).",
      [["", this.lastSuccess]],
    );
    metric("cni_ts_routes_sync_nodes", "gauge", "Nodes known from the API.", [["", this.nodes]]);
    metric("cni_ts_routes_sync_routes", "gauge", "Routes of routes sync in place on this node after the last sync.", [
      ["", this.routes],
    ]);
    metric(
      "cni_ts_routes_sync_nodes_refused",
      "gauge",
      "Problems found at the last sync (bad podCIDR or InternalIP, a claimed subnet, a conflict): those routes were not applied.",
      [["", this.refused]],
    );
    metric(
      "cni_ts_routes_sync_forward_changes_total",
      "counter",
      "Restores that changed this node's forward rules (--forward-accept; one per family and change).",
      [["", this.forwardApplied]],
    );
    metric(
      "cni_ts_routes_sync_forward_errors_total",
      "counter",
      "Syncs whose forward rules could not be read or written (--forward-accept); those rules did not change.",
      [["", this.forwardErrors]],
    );
    return `${out.join("\n")}\n`;
  }
}
