/**
 * The run's sandbox: every network namespace and temporary directory a conformance run creates carries the run's
 * unique id, is removed in `finally` and on SIGINT/SIGTERM, and `leftovers()` proves at the end that nothing is
 * left. The machine's root network namespace is never changed: links, addresses and routes all live in namespaces
 * of the run (`snapshotRoot()` is read-only and lets the harness prove that too).
 */
import { ipSync } from "../../sandbox/exec.js";
import { Sandbox } from "../../sandbox/netns.js";

export { ipSync } from "../../sandbox/exec.js";
export { listNetns } from "../../sandbox/netns.js";

/**
 * Everything one conformance run creates: a toolkit sandbox that also cleans up on SIGINT/SIGTERM, with one
 * temporary directory for everything on disk (configs, caches, dataDirs).
 */
export class RunSandbox extends Sandbox {
  /** The run's temporary directory. */
  readonly tmp: string;

  constructor(prefix = "ctc") {
    super(prefix, { signals: "conformance" });
    this.tmp = this.tmpdir("run");
  }

  /** Remove every namespace of the run (also those created outside `netns()`, by prefix) and the tmp dir. */
  cleanupSync(): void {
    this.cleanup();
  }
}

/** A read-only fingerprint of the root namespace (link names, addresses, routes), to prove it was not changed. */
export function snapshotRoot(): string[] {
  const lines: string[] = [];
  for (const args of [
    ["-o", "link", "show"],
    ["-o", "addr", "show"],
    ["route", "show", "table", "all"],
    ["-6", "route", "show", "table", "all"],
  ]) {
    const out = ipSync(args, true);
    for (const l of out.split("\n")) {
      // Counters and link states of unrelated interfaces may change; keep the identity of each line only.
      const t = l
        .replace(/\s+(state|qlen|valid_lft|preferred_lft|expires)\s+\S+/g, "")
        .replace(/\\\s+/g, " ")
        .trim();
      if (t) lines.push(t.replace(/^\d+:\s*/, ""));
    }
  }
  return lines.sort();
}

/** Lines of `after` that are not in `before` and vice versa, as "+line" / "-line". */
export function diffRoot(before: string[], after: string[]): string[] {
  const b = new Set(before);
  const a = new Set(after);
  return [
    ...after.filter((l) => !b.has(l)).map((l) => `+${l}`),
    ...before.filter((l) => !a.has(l)).map((l) => `-${l}`),
  ];
}
