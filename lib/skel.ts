/**
 * pluginMain: the CNI execution protocol around a plugin's verbs (the equivalent of the reference `skel`).
 *
 * It validates the environment per verb, reads and parses the config, negotiates the version, dispatches,
 * and prints the result (converted to the config's version) or one error object on stdout.
 * `runPlugin` does all of that without touching the process, so a delegate can run in-process
 * (lib/invoke) with exactly the behaviour it has as an executable.
 *
 * @example
 *   // plugins/example/main.ts
 *   export const example: PluginDefinition = { name: "example", about: "...", netns: "required", add, del, check };
 *   // cmd/cni-ts.ts: await pluginMain(example);
 */
import { writeSync } from "node:fs";
import { checkKnownArgs, splitCniArgs, type CniArgs } from "./cniargs.js";
import { CniError, ErrorCode, asCniError } from "./errors.js";
import { decodeGo, parseJsonText, type GoStruct } from "./gojson.js";
import { requireUsableNetns } from "./netns.js";
import { readStdin, stdinDeadline, stdinMayBeTerminal } from "./stdin.js";
import { PLUGIN_CONF_SHAPE, type Attachment, type NetConf, type Result } from "./types.js";
import { validateContainerID, validateIfname, validateNetworkName, quoteInput } from "./validate.js";
import { LATEST_VERSION, SUPPORTED_VERSIONS, formatResult, isSupportedVersion, versionAtLeast } from "./version.js";

/** package.json's version, embedded by every bundle of our code (esbuild `define`, scripts/package-facts.mjs). */
declare const CNI_TS_PACKAGE_VERSION: string | undefined;
/** The version of cni-ts (help text, user agent): package.json's, or "sources" where no bundler embedded it. */
export const CNI_TS_VERSION: string = typeof CNI_TS_PACKAGE_VERSION === "string" ? CNI_TS_PACKAGE_VERSION : "sources";

export type Verb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";
const VERBS: readonly Verb[] = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];

/** Everything a verb handler gets: validated environment, parsed config, negotiated version. */
export interface CmdContext {
  command: Exclude<Verb, "VERSION">;
  /** Empty for GC and STATUS. */
  containerID: string;
  /** Empty when the runtime gave none (allowed for DEL, GC, STATUS). */
  netns: string;
  ifname: string;
  args: CniArgs;
  /** CNI_PATH directories, empty entries dropped. */
  path: string[];
  /** The whole environment, passed on to delegates with CNI_COMMAND replaced. */
  env: Readonly<Record<string, string | undefined>>;
  config: NetConf;
  /** The config bytes exactly as received (delegates get them unchanged). */
  rawConfig: Buffer;
  /** The config's cniVersion: results are printed in exactly this version. */
  version: string;
}

export interface GcContext extends CmdContext {
  /** From `cni.dev/valid-attachments` (or the older `cni.dev/attachments`); undefined when the runtime sent neither. */
  validAttachments: Attachment[] | undefined;
}

export interface PluginDefinition {
  name: string;
  /** One line naming the plugin, printed for people. */
  about: string;
  /** "required": ADD/CHECK need CNI_NETNS to be a usable namespace (not ours). "ignored": only its presence is checked. */
  netns: "required" | "ignored";
  /** CNI_ARGS keys this plugin understands (others need IgnoreUnknown=1). */
  argsKeys?: readonly string[];
  /**
   * The Go shape of the reference's config struct (PLUGIN_CONF_SHAPE extended): keys that match a field
   * case-insensitively reach the verbs spelled as the field (lib/gojson.ts). Default: PLUGIN_CONF_SHAPE.
   */
  config?: GoStruct;
  /**
   * The oldest spec version the plugin serves (default 0.1.0, all of them). The reference's chained plugins that
   * need the interfaces of a prevResult start at 0.3.0; VERSION lists, and skel refuses with code 1, as theirs do.
   */
  firstVersion?: string;
  add(ctx: CmdContext): Promise<Result>;
  del(ctx: CmdContext): Promise<void>;
  check(ctx: CmdContext): Promise<void>;
  gc?(ctx: GcContext): Promise<void>;
  status?(ctx: CmdContext): Promise<void>;
  /**
   * Commands for people beside the CNI protocol (`routes sync ...`): when the first argument names one, the entry
   * point (cmd/cni-ts.ts) runs it with the arguments after the name, and its answer is the exit status.
   */
  subcommands?: Readonly<Record<string, Subcommand>>;
}

/** A plugin's extra command: the arguments after its name in, the process's exit status out. */
export type Subcommand = (argv: readonly string[]) => Promise<number>;

/** The subcommand `argv` asks `plugin` for (its first argument names it), or undefined. */
export function subcommandOf(plugin: PluginDefinition, argv: readonly string[]): Subcommand | undefined {
  const name = argv[0];
  if (name === undefined || !plugin.subcommands || !Object.hasOwn(plugin.subcommands, name)) return undefined;
  return plugin.subcommands[name];
}

export interface PluginIO {
  env: Readonly<Record<string, string | undefined>>;
  /** The config bytes; a function is called only when the verb needs them. */
  stdin: Buffer | (() => Promise<Buffer>);
}

export interface PluginOutcome {
  stdout: string;
  exitCode: number;
}

// The reference skel's required sets (cni-facts 1.4): stricter than the spec about CNI_PATH, and runtimes
// always send it, so a drop-in keeps them.
const REQUIRED_ENV: Record<Exclude<Verb, "VERSION">, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

/** Run one invocation of `plugin` against an environment and config bytes; never throws. */
export async function runPlugin(plugin: PluginDefinition, io: PluginIO): Promise<PluginOutcome> {
  let version = LATEST_VERSION;
  try {
    const command = parseCommand(io.env.CNI_COMMAND);
    if (command === "VERSION")
      return { stdout: versionAnswer(plugin, await loadStdin(io).catch(() => Buffer.alloc(0))), exitCode: 0 };
    // The reference skel's order: the environment, then stdin (JSON 6, name 7, cniVersion 6, version 1), then the
    // verb's version gate; only then what the plugin itself checks (CNI_ARGS, the netns).
    const base = validateEnv(command, io.env);
    const rawConfig = await loadStdin(io);
    const config = parseConfig(rawConfig, plugin.config);
    version = config.cniVersion;
    requirePluginVersion(plugin, version);
    gateVerb(command, version);
    const args = splitCniArgs(io.env.CNI_ARGS);
    checkKnownArgs(args, plugin.argsKeys ?? []);
    if (base.netns !== "" && plugin.netns === "required") requireUsableNetns(base.netns, command === "DEL");
    const ctx: CmdContext = { ...base, args, command, config, rawConfig, version };
    switch (command) {
      case "ADD": {
        const result = await plugin.add(ctx);
        return { stdout: JSON.stringify(formatResult(result, version), null, 4), exitCode: 0 };
      }
      case "DEL":
        await plugin.del(ctx);
        return { stdout: "", exitCode: 0 };
      case "CHECK":
        await plugin.check(ctx);
        return { stdout: "", exitCode: 0 };
      case "GC":
        if (plugin.gc) await plugin.gc({ ...ctx, validAttachments: parseValidAttachments(config) });
        return { stdout: "", exitCode: 0 };
      case "STATUS":
        if (plugin.status) await plugin.status(ctx);
        return { stdout: "", exitCode: 0 };
    }
  } catch (e) {
    const err = asCniError(e);
    return { stdout: JSON.stringify(err.toJSON(version), null, 4), exitCode: 1 };
  }
}

/** The text a person sees when running the executable by hand. */
export function aboutText(plugin: PluginDefinition): string {
  return (
    `${plugin.about}\ncni-ts version ${CNI_TS_VERSION}\nCNI protocol versions supported: ${pluginVersions(plugin).join(", ")}\n` +
    `Run by a container runtime with CNI_COMMAND (${VERBS.join(", ")}) in the environment and the network configuration on stdin.\n`
  );
}

/** Process entry: people get the about text; runtimes get the protocol. Sets process.exitCode. */
export async function pluginMain(
  plugin: PluginDefinition,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  if (
    argv.includes("--help") ||
    argv.includes("-h") ||
    argv.includes("--version") ||
    process.env.CNI_COMMAND === undefined
  ) {
    process.stderr.write(aboutText(plugin));
    process.exitCode = 0;
    return;
  }
  const stdinIsTty = stdinMayBeTerminal();
  const outcome = await runPlugin(plugin, {
    env: process.env,
    // VERSION does not need stdin and a runtime may not send any: read it only briefly there.
    stdin: () => (stdinIsTty ? Promise.resolve(Buffer.alloc(0)) : readStdin(undefined, stdinDeadline(process.env))),
  });
  await writeStdout(outcome.stdout);
  // Exit now: the answer is out, and waiting for the event loop to drain (closed child pipes, timers) only adds
  // milliseconds to every pod start.
  process.exit(outcome.exitCode);
}

// write(2) on fd 1 rather than `process.stdout`, whose creation loads net and stream (a few ms per process); a
// non-blocking pipe that is full (EAGAIN) gets the rest through the stream.
function writeStdout(text: string): Promise<void> {
  if (text === "") return Promise.resolve();
  let rest = Buffer.from(text, "utf8");
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(1, rest));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EINTR") continue;
      if (code !== "EAGAIN") return Promise.resolve(); // EPIPE, EBADF: nobody reads the answer.
      const left = rest;
      return new Promise((resolve) => process.stdout.write(left, () => resolve()));
    }
  }
  return Promise.resolve();
}

async function loadStdin(io: PluginIO): Promise<Buffer> {
  return typeof io.stdin === "function" ? io.stdin() : io.stdin;
}

function parseCommand(raw: string | undefined): Verb {
  if (raw === undefined || raw === "") {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, "required env variables [CNI_COMMAND] missing");
  }
  if (!(VERBS as readonly string[]).includes(raw)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `unknown CNI_COMMAND: ${raw.slice(0, 32)}`,
      `CNI_COMMAND must be one of ${VERBS.join(", ")}`,
    );
  }
  return raw as Verb;
}

function validateEnv(command: Exclude<Verb, "VERSION">, env: PluginIO["env"]) {
  const missing = REQUIRED_ENV[command].filter((k) => env[k] === undefined || env[k] === "");
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, `required env variables [${missing.join(" ")}] missing`);
  }
  const perAttachment = command === "ADD" || command === "DEL" || command === "CHECK";
  const containerID = perAttachment ? validateContainerID(env.CNI_CONTAINERID) : "";
  const ifname = perAttachment ? validateIfname(env.CNI_IFNAME) : "";
  const path = parseCniPath(env.CNI_PATH ?? "");
  const netns = perAttachment ? (env.CNI_NETNS ?? "") : "";
  return { containerID, ifname, path, netns, env };
}

/** CNI_PATH: absolute directories only; a relative entry would make the plugin run whatever sits in its cwd. */
export function parseCniPath(raw: string): string[] {
  const dirs = raw.split(":").filter((d) => d !== "");
  for (const d of dirs) {
    if (!d.startsWith("/") || d.includes("\0")) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        "CNI_PATH entries must be absolute paths",
        `CNI_PATH entry ${quoteInput(d)} is relative`,
      );
    }
  }
  return dirs;
}

/**
 * Parse the config bytes as the reference's skel does, in its order: JSON (code 6), `name` missing or invalid (7),
 * `cniVersion` (a wrong type is a decoding failure, 6; unsupported, 1). Keys are read with Go's rule into `shape`.
 */
export function parseConfig(raw: Buffer, shape: GoStruct = PLUGIN_CONF_SHAPE): NetConf {
  if (raw.length === 0)
    throw new CniError(
      ErrorCode.DecodingFailure,
      "error unmarshall network config: empty input",
      "the network configuration is expected on stdin",
    );
  let parsed: unknown;
  try {
    parsed = parseJsonText(raw.toString("utf8"));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `error unmarshall network config: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new CniError(ErrorCode.DecodingFailure, "error unmarshall network config: not a JSON object");
  }
  const conf = decodeGo(parsed, shape) as Record<string, unknown>;
  if (conf.name !== undefined && conf.name !== null && typeof conf.name !== "string") {
    throw new CniError(
      ErrorCode.DecodingFailure,
      "error unmarshall network config: name must be a string",
      `got ${quoteInput(JSON.stringify(conf.name))}`,
    );
  }
  const name = validateNetworkName(conf.name);
  // A config without cniVersion is a 0.1.0 config (SPEC.md; the reference answers 0.1.0).
  const cniVersion =
    conf.cniVersion === undefined || conf.cniVersion === null || conf.cniVersion === "" ? "0.1.0" : conf.cniVersion;
  if (typeof cniVersion !== "string")
    throw new CniError(
      ErrorCode.DecodingFailure,
      "cniVersion must be a string",
      `got ${quoteInput(JSON.stringify(cniVersion))}`,
    );
  if (!isSupportedVersion(cniVersion)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "incompatible CNI versions",
      `config is ${quoteInput(cniVersion)}, plugin supports [${SUPPORTED_VERSIONS.join(" ")}]`,
    );
  }
  return { ...conf, cniVersion, name } as NetConf;
}

/** The spec versions `plugin` serves: SUPPORTED_VERSIONS from its firstVersion on. */
export function pluginVersions(plugin: PluginDefinition): readonly string[] {
  const first = plugin.firstVersion;
  return first === undefined ? SUPPORTED_VERSIONS : SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, first));
}

/** A version the executable knows but this plugin does not serve: code 1, as the reference skel answers it. */
function requirePluginVersion(plugin: PluginDefinition, version: string): void {
  const versions = pluginVersions(plugin);
  if (versions.includes(version)) return;
  throw new CniError(
    ErrorCode.IncompatibleVersion,
    "incompatible CNI versions",
    `config is ${quoteInput(version)}, plugin supports [${versions.join(" ")}]`,
  );
}

function gateVerb(command: Exclude<Verb, "VERSION">, version: string): void {
  if (command === "CHECK" && !versionAtLeast(version, "0.4.0")) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "config version does not allow CHECK",
      `CHECK needs cniVersion 0.4.0 or later, config is ${version}`,
    );
  }
  if ((command === "GC" || command === "STATUS") && !versionAtLeast(version, "1.1.0")) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `config version does not allow ${command}`,
      `${command} needs cniVersion 1.1.0 or later, config is ${version}`,
    );
  }
}

/** GC's list of live attachments. Both keys exist in the wild (cni#1101); libcni sends both. */
export function parseValidAttachments(config: NetConf): Attachment[] | undefined {
  const raw = config["cni.dev/valid-attachments"] ?? config["cni.dev/attachments"];
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw))
    throw new CniError(ErrorCode.InvalidNetworkConfig, "cni.dev/valid-attachments must be an array");
  return raw.map((a: unknown, i) => {
    const o = a as Record<string, unknown> | null;
    if (!o || typeof o.containerID !== "string" || typeof o.ifname !== "string") {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `cni.dev/valid-attachments[${i}] must be {containerID, ifname} strings`,
      );
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

/** VERSION: the input's cniVersion echoed (SPEC.md), our newest when the input has none or is not JSON. */
function versionAnswer(plugin: PluginDefinition, stdin: Buffer): string {
  let cniVersion = LATEST_VERSION;
  try {
    const v = (JSON.parse(stdin.toString("utf8")) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === "string" && /^\d{1,4}\.\d{1,4}\.\d{1,4}$/.test(v)) cniVersion = v;
  } catch {
    // The reference ignores stdin for VERSION entirely; garbage is not an error here either.
  }
  return `${JSON.stringify({ cniVersion, supportedVersions: pluginVersions(plugin) })}\n`;
}
