/**
 * The PATH a plugin gets in the sandbox: links to the tools a node has (iproute2, util-linux, a shell,
 * iptables/nft, ping) and nothing else, so no Node.js on it: proof that the executables need none.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findTool } from "./exec.js";
import type { Sandbox } from "./netns.js";

// What a node has: iproute2 (ip, bridge), util-linux (nsenter, flock), a shell, iptables/nft, ping.
const NODE_TOOLS = [
  "ip",
  "bridge",
  "nsenter",
  "flock",
  "sh",
  "cat",
  "tc",
  "iptables",
  "iptables-restore",
  "iptables-save",
  "ip6tables",
  "ip6tables-restore",
  "ip6tables-save",
  "nft",
  "ping",
  "sysctl",
];

/** Links named `tools` in `dir` to the system's tools of those names (a tool the machine lacks is left out). */
function linkTools(dir: string, tools: readonly string[]): void {
  for (const t of tools) {
    const real = findTool(t);
    if (real) symlinkSync(real, join(dir, t));
  }
}

let toolDir: string | undefined;
/** A directory with links to the node tools only (one per process, removed at exit). */
export function toolPath(): string {
  if (toolDir) return toolDir;
  toolDir = mkdtempSync(join(tmpdir(), "cni-ts-tools-"));
  const dir = toolDir;
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  linkTools(dir, NODE_TOOLS);
  return toolDir;
}

const labTools = new WeakMap<Sandbox, string>();
/**
 * PATH for the plugin: the node tools of toolPath(), plus, if that list lacks them, what a node's iproute2 and
 * util-linux also provide and the plugin uses: `bridge` (VLANs), `sh` (pod script), `flock`.
 */
export function labPath(sb: Sandbox): string {
  let path = labTools.get(sb);
  if (path) return path;
  const missing = ["bridge", "sh", "flock"].filter((t) => !existsSync(join(toolPath(), t)));
  path = toolPath();
  if (missing.length > 0) {
    const dir = sb.tmpdir("tools");
    linkTools(dir, missing);
    path = `${path}:${dir}`;
  }
  labTools.set(sb, path);
  return path;
}

/**
 * A PATH whose process-starting tools (ip, nsenter, flock, sh, the iptables and nft commands) are wrappers that note
 * each call in a file before running the real tool: `calls()` lists them, to prove a call started no process.
 */
export function recordingTools(sb: Sandbox): { path: string; calls: () => string[] } {
  const dir = sb.tmpdir("recording-tools");
  const log = join(dir, "calls");
  const tools = [
    "ip",
    "nsenter",
    "flock",
    "sh",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "iptables",
    "ip6tables",
    "nft",
    "conntrack",
  ];
  for (const tool of tools) {
    const real = findTool(tool);
    if (!real) continue;
    // The wrapper runs under /bin/sh by full path, so that wrapping sh itself does not recurse.
    writeFileSync(join(dir, tool), `#!/bin/sh\necho ${tool} >> ${log}\nexec ${real} "$@"\n`, { mode: 0o755 });
  }
  return {
    path: `${dir}:${labPath(sb)}`,
    calls: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : []),
  };
}
