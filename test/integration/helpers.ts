/**
 * Integration-test helpers: run the BUILT executables (dist/bin) with a clean environment whose PATH holds
 * only the tools a node has (no node), and build throwaway network namespaces that are always removed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DIST_BIN = join(ROOT, "dist/bin");
export const PLUGINS = ["bridge", "host-local", "routes", "loopback", "portmap", "firewall", "tuning", "bandwidth"] as const;

// What a node has: iproute2 (ip, bridge), util-linux (nsenter, flock), a shell, iptables/nft, ping.
const NODE_TOOLS = ["ip", "bridge", "nsenter", "flock", "sh", "cat", "tc", "iptables", "iptables-restore", "iptables-save", "ip6tables", "ip6tables-restore", "ip6tables-save", "nft", "ping", "sysctl"];

let toolDir: string | undefined;
/** A directory with links to the node tools only: proof that the executables need no Node.js on PATH. */
export function toolPath(): string {
  if (toolDir) return toolDir;
  toolDir = mkdtempSync(join(tmpdir(), "cni-ts-tools-"));
  const dir = toolDir;
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  for (const t of NODE_TOOLS) {
    for (const d of ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
      if (existsSync(join(d, t))) {
        symlinkSync(join(d, t), join(toolDir, t));
        break;
      }
    }
  }
  return toolDir;
}

export function requireBuilt(): void {
  if (!existsSync(join(DIST_BIN, "cni-ts"))) throw new Error("dist/bin/cni-ts is missing: run `npm run build` first (npm test does)");
}

export interface ExeResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as exactly one JSON value, or undefined when stdout is empty. Throws if it is not one JSON value. */
  json: Record<string, unknown> | undefined;
}

/** Run a built plugin by its full path with only `env` (plus the tools PATH). */
export function runExe(file: string, env: Record<string, string>, stdin = "", argv: string[] = []): ExeResult {
  const r = spawnSync(file, argv, { env: { PATH: toolPath(), ...env }, input: stdin, encoding: "utf8", timeout: 60_000 });
  const stdout = r.stdout ?? "";
  return { status: r.status, stdout, stderr: r.stderr ?? "", json: stdout.trim() === "" ? undefined : (JSON.parse(stdout) as Record<string, unknown>) };
}

export function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Network namespaces unique to this run. `node(...)` and `pod(...)` create them; `cleanup()` removes all of
 * them and must be called from afterEach/afterAll (it is also tied to process exit as a last resort).
 */
export class Sandbox {
  readonly id = `cts${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  private readonly names: string[] = [];
  private readonly dirs: string[] = [];

  constructor() {
    process.once("exit", () => this.cleanup());
  }

  /** Create a namespace; returns its name and path. */
  netns(label: string): { name: string; path: string } {
    const name = `${this.id}-${label}`;
    sh("ip", ["netns", "add", name]);
    this.names.push(name);
    sh("ip", ["-n", name, "link", "set", "lo", "up"]);
    return { name, path: `/var/run/netns/${name}` };
  }

  tmpdir(label: string): string {
    const d = mkdtempSync(join(tmpdir(), `${this.id}-${label}-`));
    this.dirs.push(d);
    return d;
  }

  /** Run a command inside namespace `name`. */
  exec(name: string, cmd: string, args: string[], allowFail = false): string {
    return sh("ip", ["netns", "exec", name, cmd, ...args], allowFail);
  }

  cleanup(): void {
    for (const n of this.names.splice(0)) sh("ip", ["netns", "del", n], true);
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** A fake /opt/cni/bin: links named after the plugins to the built executable, as an installed node has them. */
export function installInto(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const p of PLUGINS) symlinkSync(join(DIST_BIN, "cni-ts"), join(dir, p));
  return dir;
}
