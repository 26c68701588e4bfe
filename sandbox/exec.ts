/**
 * Running tools synchronously for the sandbox toolkit: a command on the machine (only `ip netns …` and other
 * commands that create, enter or read namespaces of a run), or a command inside one of the run's namespaces.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Where a node keeps its system tools; also the PATH of every tool the toolkit starts. */
export const SYSTEM_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] as const;
export const SYSTEM_PATH = SYSTEM_DIRS.join(":");

/** The full path of a system tool, or undefined when the machine lacks it. */
export function findTool(name: string): string | undefined {
  return SYSTEM_DIRS.map((d) => join(d, name)).find((f) => existsSync(f));
}

/** Run `cmd` and return its stdout; throws with stderr (or stdout) unless it exits 0 or `allowFail`. */
export function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail)
    throw new Error(`${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout || r.error?.message || "").trim()}`);
  return r.stdout ?? "";
}

/** `ip` with argv (also usable from signal handlers, being synchronous). */
export function ipSync(args: string[], allowFail = false): string {
  return sh("ip", args, allowFail);
}

/** What a command inside a namespace did. */
export interface NsRunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command inside namespace `nsName` (`ip netns exec`); throws on failure unless allowFail. */
export function nsRun(nsName: string, cmd: string, args: string[], allowFail = false, input?: string): NsRunResult {
  const r = spawnSync("ip", ["netns", "exec", nsName, cmd, ...args], { encoding: "utf8", input, timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`[${nsName}] ${cmd} ${args.join(" ")}: ${r.stderr}`);
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
