// The controller's pure parts: one sync at a time with retries, the metrics text, structured logs, the flags.
import { describe, expect, it } from "vitest";
import { Backoff } from "../../lib/kube/backoff.js";
import { parseListen, parseSyncArgs } from "../../plugins/routes/cli.js";
import { jsonLogger } from "../../plugins/routes/jsonlog.js";
import { ControllerMetrics } from "../../plugins/routes/metrics.js";
import { InputError } from "../../plugins/routes/nodelist.js";
import { SyncRunner } from "../../plugins/routes/syncrunner.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("SyncRunner", () => {
  it("never runs two syncs at once, and folds a burst of requests into one more sync", async () => {
    const calls: string[] = [];
    let release: () => void = () => {};
    let running = 0;
    let maxRunning = 0;
    const r = new SyncRunner(
      async (why) => {
        calls.push(why);
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((res) => (release = res));
        running--;
        return true;
      },
      new Backoff({ initialMs: 10, maxMs: 10 }),
    );
    r.request("list");
    await tick();
    r.request("ADDED n4");
    r.request("MODIFIED n2");
    r.request("ADDED n4");
    release();
    await tick();
    await tick();
    release();
    await r.idle();
    expect(calls).toEqual(["list", "ADDED n4, MODIFIED n2"]);
    expect(maxRunning).toBe(1);
  });

  it("a failed sync is retried after the backoff; success resets it; stop() cancels a pending retry", async () => {
    const results = [false, false, true];
    const calls: string[] = [];
    const delays: number[] = [];
    const r = new SyncRunner(
      async (why) => {
        calls.push(why);
        return results.shift() ?? true;
      },
      new Backoff({ initialMs: 5, maxMs: 40, jitter: 0 }),
      (d) => delays.push(d),
    );
    r.request("list");
    for (let i = 0; i < 50 && calls.length < 3; i++) await new Promise((res) => setTimeout(res, 5));
    expect(calls).toEqual(["list", "retry", "retry"]);
    expect(delays).toEqual([5, 10]);
    const r2 = new SyncRunner(async () => false, new Backoff({ initialMs: 60_000, maxMs: 60_000 }));
    r2.request("x");
    await r2.stop();
    r2.request("y");
    await r2.idle();
  });
});

describe("metrics", () => {
  it("renders counters and gauges in the Prometheus text format", () => {
    const m = new ControllerMetrics();
    expect(m.ready).toBe(false);
    m.routesApplied.add += 3;
    m.watchRestarts.gone++;
    m.lastSuccess = 1700000000.5;
    const text = m.render();
    expect(text).toContain(
      '# TYPE cni_ts_routes_sync_routes_applied_total counter\ncni_ts_routes_sync_routes_applied_total{change="add"} 3\n',
    );
    expect(text).toContain('cni_ts_routes_sync_watch_restarts_total{reason="gone"} 1\n');
    expect(text).toContain("cni_ts_routes_sync_last_success_timestamp_seconds 1700000000.5\n");
    expect(text).toContain("cni_ts_routes_sync_errors_total 0\n");
    // Every sample line is "name{labels} number"; every metric has HELP and TYPE.
    for (const line of text.trim().split("\n"))
      expect(line).toMatch(/^(# (HELP|TYPE) cni_ts_routes_sync_\w+ .+|cni_ts_routes_sync_\w+(\{\w+="\w+"\})? [\d.]+)$/);
    expect(m.ready).toBe(true);
  });
});

describe("structured logs", () => {
  it("one JSON object per line; a value with a newline cannot forge a line; fields cannot overwrite time/level/msg", () => {
    const lines: string[] = [];
    const log = jsonLogger(
      (l) => lines.push(l),
      () => new Date(0),
    );
    log.warn("refused", { node: 'a\n{"level":"info"}', level: "x", n: 2, none: undefined });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith("\n")).toBe(true);
    expect(lines[0]!.trimEnd().includes("\n")).toBe(false);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: "1970-01-01T00:00:00.000Z",
      level: "warn",
      msg: "refused",
      node: 'a\n{"level":"info"}',
      n: 2,
    });
  });
});

describe("routes sync --kubernetes / --cleanup flags", () => {
  it("kubernetes mode: defaults, NODE_NAME, every option", () => {
    expect(parseSyncArgs(["--kubernetes"], { NODE_NAME: "node1" })).toEqual({
      mode: "kubernetes",
      kubeconfig: undefined,
      node: "node1",
      dryRun: false,
      resyncMs: 300_000,
      requestTimeoutMs: 30_000,
      listen: undefined,
      healthFile: undefined,
    });
    expect(
      parseSyncArgs([
        "--kubeconfig=/k",
        "--node",
        "n2",
        "--resync",
        "60",
        "--listen",
        "[::1]:9808",
        "--health-file",
        "/run/h",
        "--request-timeout",
        "5",
        "--dry-run",
      ]),
    ).toEqual({
      mode: "kubernetes",
      kubeconfig: "/k",
      node: "n2",
      dryRun: true,
      resyncMs: 60_000,
      requestTimeoutMs: 5000,
      listen: { host: "::1", port: 9808 },
      healthFile: "/run/h",
    });
    expect(parseSyncArgs(["--cleanup"])).toEqual({ mode: "cleanup", dryRun: false });
    expect(parseListen(":9808")).toEqual({ host: "0.0.0.0", port: 9808 });
    expect(parseListen("172.31.250.11:80")).toEqual({ host: "172.31.250.11", port: 80 });
  });
  const bad: Array<[string[], RegExp]> = [
    [["--kubernetes"], /NODE_NAME/],
    [["--kubernetes", "--node", "Bad_Name"], /not a Kubernetes node name/],
    [["--kubernetes", "--node", "n", "--nodes", "f"], /--nodes does not go with --kubernetes/],
    [["--kubernetes", "--node", "n", "--interval", "5"], /--interval does not go with --kubernetes/],
    [["--kubernetes", "--node", "n", "--resync", "1"], /--resync must be a number of seconds between 10/],
    [["--kubernetes", "--node", "n", "--listen", "9808"], /--listen must be ADDR:PORT/],
    [["--kubernetes", "--node", "n", "--listen", "1.2.3.4:70000"], /--listen must be ADDR:PORT/],
    [["--cleanup", "--node", "n"], /--node does not go with --cleanup/],
    [["--nodes", "f", "--node", "n", "--listen", ":1"], /--listen does not go with --nodes/],
  ];
  for (const [argv, msg] of bad) {
    it(`${argv.join(" ")}: usage error`, () => {
      expect(() => parseSyncArgs(argv, {})).toThrow(InputError);
      expect(() => parseSyncArgs(argv, {})).toThrow(msg);
    });
  }
});
