/**
 * The run's sandbox: every network namespace and temporary directory a conformance run creates carries the run's
 * unique id, is removed in `finally` and on SIGINT/SIGTERM, and `leftovers()` proves at the end that nothing is
 * left. The machine's root network namespace is never changed: links, addresses and routes all live in namespaces
 * of the run (`snapshotRoot()` is read-only and lets the harness prove that too).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** `ip` with argv, synchronously (also usable from signal handlers). Throws with stderr on failure. */
export function ipSync(args: string[], allowFail = false): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail) throw new Error(`ip ${args.join(" ")}: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout ?? "";
}

/** Names in /var/run/netns (what `ip netns list` shows). */
export function listNetns(): string[] {
  try {
    return readdirSync("/var/run/netns");
  } catch {
    return [];
  }
}

const live = new Set<RunSandbox>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (sig: NodeJS.Signals) => {
    for (const s of live) s.cleanupSync();
    console.error(`\nconformance: ${sig}: sandbox removed`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => {
    for (const s of live) s.cleanupSync();
  });
}

/** Everything one run creates. `id` is unique per run and prefixes every name. */
export class RunSandbox {
  readonly id: string;
  /** The run's temporary directory; everything on disk (configs, caches, dataDirs) lives under it. */
  readonly tmp: string;
  private readonly names = new Set<string>();

  constructor(prefix = "ctc") {
    this.id = `${prefix}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    this.tmp = mkdtempSync(join(tmpdir(), `${this.id}-`));
    live.add(this);
    installHandlers();
  }

  /** Create a namespace `<id>-<label>` with lo up; returns its name and path. */
  netns(label: string): { name: string; path: string } {
    const name = `${this.id}-${label}`;
    ipSync(["netns", "add", name]);
    this.names.add(name);
    ipSync(["-n", name, "link", "set", "lo", "up"]);
    return { name, path: `/var/run/netns/${name}` };
  }

  /** Delete one of the run's namespaces (the runtime deleting a pod's netns). Missing is fine. */
  delNetns(name: string): void {
    if (!name.startsWith(`${this.id}-`)) throw new Error(`refusing to delete namespace ${name}: not this run's`);
    ipSync(["netns", "del", name], true);
    this.names.delete(name);
  }

  /** Remove every namespace of the run (also those created outside `netns()`, by prefix) and the tmp dir. */
  cleanupSync(): void {
    for (const n of listNetns()) if (n.startsWith(`${this.id}-`)) ipSync(["netns", "del", n], true);
    this.names.clear();
    rmSync(this.tmp, { recursive: true, force: true });
    live.delete(this);
  }

  /** What is left of the run: namespaces with its prefix, its tmp dir. Empty after cleanupSync. */
  leftovers(): string[] {
    const left = listNetns().filter((n) => n.startsWith(`${this.id}-`)).map((n) => `namespace ${n}`);
    if (existsSync(this.tmp)) left.push(`directory ${this.tmp}`);
    for (const e of readdirSync(tmpdir())) if (e.startsWith(`${this.id}-`)) left.push(`directory ${join(tmpdir(), e)}`);
    return [...new Set(left)];
  }
}

/** A read-only fingerprint of the root namespace (link names, addresses, routes), to prove it was not changed. */
export function snapshotRoot(): string[] {
  const lines: string[] = [];
  for (const args of [["-o", "link", "show"], ["-o", "addr", "show"], ["route", "show", "table", "all"], ["-6", "route", "show", "table", "all"]]) {
    const out = ipSync(args, true);
    for (const l of out.split("\n")) {
      // Counters and link states of unrelated interfaces may change; keep the identity of each line only.
      const t = l.replace(/\s+(state|qlen|valid_lft|preferred_lft|expires)\s+\S+/g, "").replace(/\\\s+/g, " ").trim();
      if (t) lines.push(t.replace(/^\d+:\s*/, ""));
    }
  }
  return lines.sort();
}

/** Lines of `after` that are not in `before` and vice versa, as "+line" / "-line". */
export function diffRoot(before: string[], after: string[]): string[] {
  const b = new Set(before);
  const a = new Set(after);
  return [...after.filter((l) => !b.has(l)).map((l) => `+${l}`), ...before.filter((l) => !a.has(l)).map((l) => `-${l}`)];
}
