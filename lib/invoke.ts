/**
 * Delegation: find a plugin in CNI_PATH exactly like libcni, run it with the caller's environment and
 * CNI_COMMAND replaced, and parse its result or error. When the file found is this very executable
 * (the multi-call binary, through a link), the plugin runs in-process: same code, same config, same
 * result, one Node start saved.
 *
 * @example
 *   const ipam = await delegate("host-local", "ADD", ctx);            // Result in the internal model
 *   await delegate("host-local", "DEL", ctx);                         // its error answer: a CniError with its code, unchanged
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { msFromEnv } from "./env-ms.js";
import { CniError, ErrorCode } from "./errors.js";
import { run } from "./exec.js";
import { GO_ANY, decodeGo, goStruct, parseJsonText } from "./gojson.js";
import { runPlugin, type CmdContext, type PluginDefinition, type PluginOutcome } from "./skel.js";
import { ToolError } from "./tool-error.js";
import type { Result } from "./types.js";
import { validatePluginType } from "./validate.js";
import { parseResult } from "./version.js";

export type DelegateVerb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";

export interface DelegateOptions {
  /** The config bytes to send; default: the caller's config unchanged. */
  stdin?: Buffer;
  timeoutMs?: number;
  /** Variables to set (a string) or remove (undefined) in the delegate's environment, over the caller's. */
  env?: Readonly<Record<string, string | undefined>>;
}

const DEFAULT_DELEGATE_TIMEOUT_MS = 60_000;
const TIMEOUT_ENV = "CNI_TS_DELEGATE_TIMEOUT_MS";

/**
 * How long an executed delegate may take: CNI_TS_DELEGATE_TIMEOUT_MS from the runtime's environment (an operator
 * whose IPAM is slow, e.g. dhcp, or who wants a hung one cut short sooner), else 60 s. A value that is not a whole
 * number of ms between 100 and 600,000 is refused (code 4) rather than silently replaced.
 */
export function delegateTimeoutMs(env: Readonly<Record<string, string | undefined>>): number {
  return msFromEnv(env, TIMEOUT_ENV, DEFAULT_DELEGATE_TIMEOUT_MS);
}
const inProcess = new Map<string, () => Promise<PluginDefinition>>();

/**
 * Make the plugin `name` runnable in-process when CNI_PATH resolves that name to this executable. `load` gives its
 * definition when it is first needed (cmd/cni-ts.ts loads a plugin's modules only for the plugin that runs).
 */
export function registerInProcess(name: string, load: () => Promise<PluginDefinition>): void {
  inProcess.set(name, load);
}

/** libcni's lookup (pkg/invoke/find.go): the first CNI_PATH directory holding a regular file named `type`. */
export function findPlugin(type: string, path: readonly string[]): string {
  validatePluginType(type);
  for (const dir of path) {
    const candidate = join(dir, type);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to find plugin "${type}" in path [${path.join(" ")}]`);
}

/** Same file as the running executable (a symlink or a hard link to it), so it can run in-process. */
function isSelf(file: string): boolean {
  try {
    const a = statSync(file);
    const b = statSync(process.execPath);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** Run `type` for `verb`: ADD resolves to its parsed result, the other verbs to undefined. */
export async function delegate(type: string, verb: "ADD", ctx: CmdContext, opts?: DelegateOptions): Promise<Result>;
export async function delegate(
  type: string,
  verb: Exclude<DelegateVerb, "ADD">,
  ctx: CmdContext,
  opts?: DelegateOptions,
): Promise<undefined>;
export async function delegate(
  type: string,
  verb: DelegateVerb,
  ctx: CmdContext,
  opts: DelegateOptions = {},
): Promise<Result | undefined> {
  const file = findPlugin(type, ctx.path);
  const env: Record<string, string | undefined> = { ...ctx.env, ...opts.env, CNI_COMMAND: verb };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const stdin = opts.stdin ?? ctx.rawConfig;
  const load = inProcess.get(type);
  const outcome =
    load && isSelf(file)
      ? await runPlugin(await load(), { env, stdin })
      : await exec(file, type, env, stdin, opts.timeoutMs ?? delegateTimeoutMs(ctx.env));
  if (outcome.exitCode !== 0) throw delegateError(type, outcome.stdout);
  if (verb !== "ADD") return undefined;
  let raw: unknown;
  try {
    raw = parseJsonText(outcome.stdout);
  } catch {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${type} returned an unparsable result`,
      outcome.stdout.slice(0, 200),
    );
  }
  return parseResult(raw, ctx.version);
}

async function exec(
  file: string,
  type: string,
  env: Record<string, string | undefined>,
  stdin: Buffer,
  timeoutMs = DEFAULT_DELEGATE_TIMEOUT_MS,
): Promise<PluginOutcome> {
  // libcni retries "text file busy" (a plugin being replaced while we start it) up to 5 times, 1 s apart.
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await run(file, [], { env: env as NodeJS.ProcessEnv, input: stdin, timeoutMs });
      if (r.timedOut)
        throw new CniError(
          ErrorCode.TryAgainLater,
          `${type} did not answer within ${timeoutMs} ms`,
          "the delegate was killed",
        );
      if (r.code !== 0 && r.stdout.trim() === "") {
        return {
          exitCode: r.code ?? 1,
          stdout: JSON.stringify({
            code: ErrorCode.Internal,
            msg: `netplugin failed: ${JSON.stringify(r.stderr.trim().slice(0, 500))}`,
          }),
        };
      }
      return { exitCode: r.code ?? 1, stdout: r.stdout };
    } catch (e) {
      if (attempt < 4 && e instanceof ToolError && e.kind === "busy") {
        await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      throw e;
    }
  }
}

/** `types.Error`. */
const ERROR_SHAPE = goStruct({ code: GO_ANY, msg: GO_ANY, details: GO_ANY });

function delegateError(type: string, stdout: string): CniError {
  try {
    // libcni reads the error object into `types.Error` with Go's key rule ("Code" is code).
    const o = decodeGo(parseJsonText(stdout), ERROR_SHAPE) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof o.code === "number" && typeof o.msg === "string") {
      return new CniError(o.code, o.msg, typeof o.details === "string" ? o.details : "");
    }
  } catch {
    // fall through: not an error object
  }
  return new CniError(
    ErrorCode.DecodingFailure,
    `${type} failed but error parsing its diagnostic message`,
    stdout.slice(0, 200),
  );
}
