/**
 * The one error type for "a plugin run went wrong": it keeps the plugin's own error object (code, msg,
 * details) apart from the runner's wording, so a conformance check can assert on exactly what the plugin said.
 *
 * Runner-side failures (bad config, plugin not found, cache I/O) are plain Errors; bad runtime parameters are
 * lib/errors CniErrors thrown by lib/validate.
 */

/** The verbs a runtime sends. */
export type Verb = "ADD" | "CHECK" | "DEL" | "GC" | "STATUS" | "VERSION";

/** What a PluginError is built from. */
export interface PluginErrorInit {
  /** The plugin `type`. */
  plugin: string;
  /** The plugin object's own `name`, when it has one (libcni names it in its wrapping too). */
  name?: string;
  verb: Verb;
  /** The error object's code; 0 when the plugin printed none (Go's zero-valued types.Error). */
  code: number;
  msg: string;
  details?: string;
  /** stdout exactly as printed. */
  raw: string;
  stderr?: string;
  timedOut?: boolean;
}

/**
 * A plugin exited non-zero, timed out, could not be started, or printed output that does not decode.
 * `message` is libcni's wrapped form: `plugin type="x" failed (add): msg; details`.
 */
export class PluginError extends Error {
  /** The plugin's error code (or 0 when it printed no error object, or 6 when its result did not decode). */
  readonly code: number;
  /** The plugin's `msg`, or the runner's description when there was no error object. */
  readonly msg: string;
  readonly details: string;
  /** Plugin `type`. */
  readonly plugin: string;
  readonly pluginName: string | undefined;
  readonly verb: Verb;
  /** Raw stdout. */
  readonly raw: string;
  readonly stderr: string;
  /** True when the deadline killed the plugin's process group. */
  readonly timedOut: boolean;

  constructor(init: PluginErrorInit) {
    const details = init.details ?? "";
    const named = init.name ? ` name=${JSON.stringify(init.name)}` : "";
    super(
      `plugin type=${JSON.stringify(init.plugin)}${named} failed (${init.verb.toLowerCase()}): ${goErrorString(init.msg, details)}`,
    );
    this.name = "PluginError";
    this.code = init.code;
    this.msg = init.msg;
    this.details = details;
    this.plugin = init.plugin;
    this.pluginName = init.name;
    this.verb = init.verb;
    this.raw = init.raw;
    this.stderr = init.stderr ?? "";
    this.timedOut = init.timedOut ?? false;
  }

  /** The error text Go's `types.Error.Error()` gives, which libcni compares against (VERSION probe). */
  get goError(): string {
    return goErrorString(this.msg, this.details);
  }
}

function goErrorString(msg: string, details: string): string {
  return details ? `${msg}; ${details}` : msg;
}

/** Message text of anything thrown, for the wrapping libcni does with `%w`. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
