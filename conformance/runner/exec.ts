/**
 * Invoking one plugin as libcni does (pkg/invoke: find.go, args.go, raw_exec.go): lookup in CNI_PATH, the CNI_*
 * environment, stdin, a deadline that kills the plugin's process group, and libcni's reading of a failure.
 *
 * @example
 *   const file = findInPath("bridge", ["/opt/cni/bin"]);
 *   const stdout = await execPlugin(file, stdin, pluginEnv({}, { command: "ADD", ... }), { plugin: "bridge", verb: "ADD" });
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { run, type RunResult } from "../../lib/exec.js";
import { ToolError } from "../../lib/tool-error.js";
import { PluginError, type Verb } from "./errors.js";

/** libcni's default PATH for plugins is whatever the runtime has; ours is fixed so runs do not depend on the shell. */
export const DEFAULT_PLUGIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** The spec's per-call deadline of CRI-O, and libcni callers' usual context. */
export const DEFAULT_TIMEOUT_MS = 60_000;

const TEXT_FILE_BUSY_RETRIES = 5;
const TEXT_FILE_BUSY_WAIT_MS = 1000;

/**
 * libcni `FindInPath`: the first directory holding a regular file named `type` (stat follows symlinks; the
 * execute bit is not checked, so a non-executable file is found and then fails to run, as in libcni).
 */
export function findInPath(type: string, paths: readonly string[]): string {
  if (type === "") throw new Error("no plugin name provided");
  if (type.includes("/")) throw new Error(`invalid plugin name: ${type}`);
  if (paths.length === 0) throw new Error("no paths provided");
  for (const dir of paths) {
    const candidate = join(dir, type);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // absent here: try the next directory
    }
  }
  throw new Error(`failed to find plugin "${type}" in path [${paths.join(" ")}]`);
}

/** The CNI_* parameters of one call (libcni `invoke.Args`); GC and STATUS send them all, empty. */
export interface CniParams {
  command: Verb;
  containerID?: string;
  netns?: string;
  ifname?: string;
  args?: ReadonlyArray<readonly [string, string]>;
  path: string;
}

/**
 * The plugin's environment: a small base (never the runner's own, so NODE_OPTIONS and the like cannot leak into a
 * Node-built plugin) with PATH defaulted, then the six CNI_* variables, which win over the base as in libcni.
 */
export function pluginEnv(base: Readonly<Record<string, string>> | undefined, p: CniParams): Record<string, string> {
  return {
    PATH: DEFAULT_PLUGIN_PATH,
    ...base,
    CNI_COMMAND: p.command,
    CNI_CONTAINERID: p.containerID ?? "",
    CNI_NETNS: p.netns ?? "",
    CNI_ARGS: (p.args ?? []).map(([k, v]) => `${k}=${v}`).join(";"),
    CNI_IFNAME: p.ifname ?? "",
    CNI_PATH: p.path,
  };
}

/** Who is being run, for the PluginError. */
export interface ExecTarget {
  plugin: string;
  name?: string;
  verb: Verb;
  timeoutMs?: number;
  /**
   * Command prefix the plugin is run through, e.g. `["nsenter", "--net=/var/run/netns/node1", "--"]` to run it
   * inside a node's network namespace (as a runtime on that node would). The deadline still kills the whole group.
   */
  wrapper?: readonly string[];
}

/** Go's `exec.ExitError` text, which libcni appends to its messages. */
function exitText(r: RunResult): string {
  return r.signal ? `signal: ${signalName(r.signal)}` : `exit status ${r.code ?? 1}`;
}

function signalName(s: NodeJS.Signals): string {
  return s === "SIGKILL" ? "killed" : s === "SIGTERM" ? "terminated" : s;
}

/** libcni `pluginErr`: the error object on stdout, or a description when there is none or it does not decode. */
export function decodeFailure(r: RunResult, target: ExecTarget): PluginError {
  const base = {
    plugin: target.plugin,
    verb: target.verb,
    raw: r.stdout,
    stderr: r.stderr,
    ...(target.name ? { name: target.name } : {}),
  };
  if (r.stdout.length === 0) {
    const msg =
      r.stderr.length === 0
        ? `netplugin failed with no error message: ${exitText(r)}`
        : `netplugin failed: ${JSON.stringify(r.stderr)}: ${exitText(r)}`;
    return new PluginError({ ...base, code: 0, msg });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(r.stdout);
  } catch (e) {
    return new PluginError({
      ...base,
      code: 0,
      msg: `netplugin failed but error parsing its diagnostic message ${JSON.stringify(r.stdout)}: ${(e as Error).message}`,
    });
  }
  if (obj === null) return new PluginError({ ...base, code: 0, msg: "" });
  const o = obj as Record<string, unknown>;
  const typesOk =
    typeof obj === "object" &&
    !Array.isArray(obj) &&
    isOptional(o.code, "number") &&
    isOptional(o.msg, "string") &&
    isOptional(o.details, "string");
  if (!typesOk) {
    return new PluginError({
      ...base,
      code: 0,
      msg: `netplugin failed but error parsing its diagnostic message ${JSON.stringify(r.stdout)}: not an error object`,
    });
  }
  return new PluginError({
    ...base,
    code: (o.code as number | undefined) ?? 0,
    msg: (o.msg as string | undefined) ?? "",
    details: (o.details as string | undefined) ?? "",
  });
}

function isOptional(v: unknown, type: "number" | "string"): boolean {
  return v === undefined || v === null || typeof v === type;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/**
 * Run the plugin file with stdin and env; resolve to its stdout on exit 0. Anything else is a PluginError: the
 * plugin's error object, libcni's "netplugin failed…" descriptions, a spawn failure (code 0), or the deadline
 * (timedOut, after the whole process group was killed). "Text file busy" is retried like libcni, 5 times 1 s apart.
 */
export async function execPlugin(
  file: string,
  stdin: Buffer,
  env: Record<string, string>,
  target: ExecTarget,
): Promise<string> {
  const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let r: RunResult;
  for (let attempt = 0; ; attempt++) {
    try {
      const [cmd, ...argv] = target.wrapper?.length ? [...target.wrapper, file] : [file];
      r = await run(cmd as string, argv, { input: stdin, env, timeoutMs });
      break;
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      if (attempt < TEXT_FILE_BUSY_RETRIES && e instanceof ToolError && e.kind === "busy") {
        await sleep(TEXT_FILE_BUSY_WAIT_MS);
        continue;
      }
      throw new PluginError({
        plugin: target.plugin,
        verb: target.verb,
        code: 0,
        msg: `netplugin failed with no error message: ${text}`,
        raw: "",
        ...(target.name ? { name: target.name } : {}),
      });
    }
  }
  if (r.timedOut) {
    const failure = decodeFailure(r, target);
    throw new PluginError({
      plugin: target.plugin,
      verb: target.verb,
      code: failure.code,
      msg: `timed out after ${timeoutMs} ms, process group killed${r.stdout || r.stderr ? ` (${failure.goError})` : ""}`,
      raw: r.stdout,
      stderr: r.stderr,
      timedOut: true,
      ...(target.name ? { name: target.name } : {}),
    });
  }
  if (r.code !== 0) throw decodeFailure(r, target);
  return r.stdout;
}
