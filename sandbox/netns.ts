/**
 * The namespaces and directories of one run. Every name carries the run's unique id, so that runs at the same time
 * never meet and a crashed run's leftovers are recognisable; `cleanup()` removes them all (tracked ones and any
 * other namespace carrying the id), also at process exit and on SIGINT/SIGTERM when asked. The machine's root
 * namespace is never changed: everything a sandbox user creates lives in these namespaces.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MARKER_ROOT } from "../lib/marker.js";
import { ipSync, sh } from "./exec.js";

export const NETNS_DIR = "/var/run/netns";

/** A network namespace of the run: its name (for `ip -n`/`ip netns exec`) and path (for CNI_NETNS, nsenter). */
export interface Ns {
  name: string;
  path: string;
}

/** A run id: prefix, pid and 4 random characters (short: namespace names end up in link names and paths). */
export function runId(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Names in /var/run/netns (what `ip netns list` shows). */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/**
 * Remove the plugins' markers (lib/marker.ts) kept for the namespace `name`. They are filed under its inode, and the
 * kernel gives a new namespace the inode of a deleted one: a node made by a test would otherwise inherit the markers
 * of an earlier run's node (a firewall DEL would then keep rules for an address "still held" by a pod long gone).
 */
export function forgetMarkers(name: string): void {
  let ino: number;
  try {
    ino = statSync(netnsPath(name)).ino;
  } catch {
    return;
  }
  let kinds: string[];
  try {
    kinds = readdirSync(MARKER_ROOT);
  } catch {
    return;
  }
  for (const kind of kinds) rmSync(join(MARKER_ROOT, kind, String(ino)), { recursive: true, force: true });
}

/** Create namespace `name`, with lo up unless `lo` is false (a benchmark whose loopback plugin brings it up). */
export function addNetns(name: string, lo = true): Ns {
  ipSync(["netns", "add", name]);
  forgetMarkers(name);
  if (lo) ipSync(["-n", name, "link", "set", "lo", "up"]);
  return { name, path: netnsPath(name) };
}

export interface SandboxOpts {
  /** The run id to use instead of a fresh one (a lab that names itself). */
  id?: string;
  /** Remove everything when the process exits (default true; false for a lab kept up on purpose). */
  onExit?: boolean;
  /** Remove everything on SIGINT/SIGTERM and exit 130/143 (for command-line runs), saying so as `<signals>: SIG…`. */
  signals?: string;
}

const live = new Set<Sandbox>();
let signalsInstalled = false;

function installSignals(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const onSignal = (sig: NodeJS.Signals) => {
    const who = [...live].find((s) => s.signals)?.signals ?? "sandbox";
    for (const s of live) if (s.signals) s.cleanup();
    console.error(`\n${who}: ${sig}: sandbox removed`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/** Everything one run creates. `id` is unique per run and prefixes every name. */
export class Sandbox {
  readonly id: string;
  /** Who cleans up on SIGINT/SIGTERM (named in the message), or undefined when signals are left alone. */
  readonly signals: string | undefined;
  private readonly names: string[] = [];
  private readonly dirs: string[] = [];

  constructor(prefix = "cts", o: SandboxOpts = {}) {
    this.id = o.id ?? runId(prefix);
    this.signals = o.signals;
    live.add(this);
    if (o.onExit ?? true) process.once("exit", () => this.cleanup());
    if (this.signals) installSignals();
  }

  /** Create a namespace `<id>-<label>`, lo up unless `lo` is false; returns its name and path. */
  netns(label: string, lo = true): Ns {
    const ns = addNetns(`${this.id}-${label}`, lo);
    this.names.push(ns.name);
    return ns;
  }

  /** The namespaces created so far, in order. */
  get namespaces(): readonly string[] {
    return this.names;
  }

  /** Delete one of the run's namespaces (the runtime deleting a pod's netns). Missing is fine. */
  delNetns(name: string): void {
    if (!name.startsWith(`${this.id}-`)) throw new Error(`refusing to delete namespace ${name}: not this run's`);
    forgetMarkers(name);
    ipSync(["netns", "del", name], true);
    const i = this.names.indexOf(name);
    if (i >= 0) this.names.splice(i, 1);
  }

  /** A fresh directory `<tmp>/<id>-<label>-XXXXXX`, removed by cleanup(). */
  tmpdir(label: string): string {
    const d = mkdtempSync(join(tmpdir(), `${this.id}-${label}-`));
    this.dirs.push(d);
    return d;
  }

  /** Run a command inside namespace `name`. */
  exec(name: string, cmd: string, args: string[], allowFail = false): string {
    return sh("ip", ["netns", "exec", name, cmd, ...args], allowFail);
  }

  /**
   * Remove every namespace of the run (newest first; also those created outside `netns()`, by prefix) and its
   * directories. `leftovers()` tells afterwards what could not be removed.
   */
  cleanup(): void {
    const names = [...this.names.splice(0).reverse(), ...listNetns().filter((n) => n.startsWith(`${this.id}-`))];
    for (const n of new Set(names)) {
      forgetMarkers(n);
      ipSync(["netns", "del", n], true);
    }
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    live.delete(this);
  }

  /** What is left of the run: namespaces with its prefix, directories it made. Empty after cleanup(). */
  leftovers(): string[] {
    const left = listNetns()
      .filter((n) => n.startsWith(`${this.id}-`))
      .map((n) => `namespace ${n}`);
    for (const d of this.dirs) if (existsSync(d)) left.push(`directory ${d}`);
    for (const e of readdirSync(tmpdir())) if (e.startsWith(`${this.id}-`)) left.push(`directory ${join(tmpdir(), e)}`);
    return [...new Set(left)];
  }
}
