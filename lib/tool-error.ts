/**
 * The error a kernel tool (ip, nsenter, iptables, nft, tc, a delegate) raises below the plugin boundary.
 *
 * Callers decide on `kind`, never on message text: "the link is already gone" is `kind === "not-found"` whichever
 * tool said it and however its version words it. Only a verb handler (or skel, for whatever reaches it) turns a
 * ToolError into a CNI error code, as the reference's skel turns a Go error into one.
 *
 * @example
 *   try {
 *     await runOk("ip", ["link", "del", "dev", name]);
 *   } catch (e) {
 *     if (!(e instanceof ToolError && e.kind === "not-found")) throw e;
 *   }
 */

/** What went wrong, as far as the tool's exit status and stderr tell. */
export type ToolErrorKind =
  /** The object (link, route, table, chain, file) is not there. */
  | "not-found"
  /** The object is there already (EEXIST). */
  | "exists"
  /** The object or a lock is in use (EBUSY, ETXTBSY, EAGAIN, xtables lock). */
  | "busy"
  /** Not allowed (EPERM, EACCES). */
  | "permission"
  /** The tool gave no answer within its deadline and was killed. */
  | "timeout"
  /** The tool itself could not be started (ENOENT, EACCES on the file). */
  | "not-started"
  /** Anything else: read `stderr`. */
  | "failed";

export interface ToolErrorInit {
  /** The program, as run (`ip`, `nft`, `iptables-restore`, a delegate's path). */
  tool: string;
  /** What was being done, for the message: `ip link add name cni0 type bridge`. */
  what: string;
  /** Exit status, or null when killed by a signal or never started. */
  status: number | null;
  stderr: string;
  kind?: ToolErrorKind;
  /** The message's text after `what: ` when stderr is not the story (a deadline, a spawn failure). */
  reason?: string;
  /** The spawn's errno code (ENOENT, EACCES, ETXTBSY) when the tool could not be started at all. */
  errno?: string;
  /** For a batch (`ip -batch`, `nft -f`): the line that failed, when the tool names it. */
  failedLine?: string;
  /** For a batch: how many lines before the failed one took effect (its 0-based index), when the tool names it. */
  failedIndex?: number;
}

export class ToolError extends Error {
  readonly tool: string;
  readonly what: string;
  readonly status: number | null;
  readonly stderr: string;
  readonly kind: ToolErrorKind;
  readonly failedLine: string | undefined;
  readonly failedIndex: number | undefined;
  readonly errno: string | undefined;

  constructor(init: ToolErrorInit) {
    const reason = init.reason ?? (init.stderr.trim() || (init.status === null ? "killed" : `exit ${init.status}`));
    super(`${init.what}: ${reason}`);
    this.name = "ToolError";
    this.tool = init.tool;
    this.what = init.what;
    this.status = init.status;
    this.stderr = init.stderr;
    this.kind = init.kind ?? classifyStderr(init.stderr);
    this.failedLine = init.failedLine;
    this.failedIndex = init.failedIndex;
    this.errno = init.errno;
  }
}

/**
 * The kind a spawn failure's errno names: ETXTBSY (the file is being written, a plugin being replaced) passes, so it
 * is `busy` and worth a retry; anything else (ENOENT, EACCES, ENOEXEC) means the tool cannot be run.
 */
export function classifySpawnErrno(errno: string | undefined): ToolErrorKind {
  return errno === "ETXTBSY" ? "busy" : "not-started";
}

/**
 * Whether the tool refused `option` itself (an older version without it), as opposed to failing at the job: the
 * caller can then go again without the option. iproute2 says `Option "-N" is unknown, try "ip -help".`
 */
export function rejectedOption(e: unknown, option: string): boolean {
  return e instanceof ToolError && e.stderr.includes(`Option "${option}" is unknown`);
}

/**
 * The kind an errno text in a tool's stderr names. iproute2, nft, iptables and the kernel's netlink answers all print
 * strerror(3) texts, plus a few tool-specific ones ("Cannot find device", "does not exist").
 */
export function classifyStderr(stderr: string): ToolErrorKind {
  if (/File exists|already exists/.test(stderr)) return "exists";
  if (/No such file or directory|No such process|Cannot find device|does not exist|No such device/.test(stderr))
    return "not-found";
  if (/Device or resource busy|Text file busy|ETXTBSY|Resource temporarily unavailable|xtables lock/.test(stderr))
    return "busy";
  if (/Operation not permitted|Permission denied/.test(stderr)) return "permission";
  return "failed";
}
