/**
 * Validation of every name that can reach a path, an `ip -batch` line, a firewall rule or a sysctl key.
 * One place, so that no deeper layer re-checks (or forgets to).
 *
 * @example
 *   validateIfname(env.CNI_IFNAME); // throws CniError code 4 on "../x", "eth 0", a 16-byte name, ...
 */
import { CniError, ErrorCode } from "./errors.js";

const SAFE_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Linux allows almost any byte in an interface name; we accept what real runtimes use and nothing that
 * iproute2's batch tokenizer treats specially (whitespace, quotes, `#`, `\`) or that reads as an option (`-x`). */
const SAFE_IFNAME = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/;
const MAX_ID_BYTES = 255;
const MAX_IFNAME_BYTES = 15;

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Printable form of untrusted input for an error message (bounded, control characters escaped). */
export function quoteInput(s: string, max = 64): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return JSON.stringify(cut);
}

/** CNI_CONTAINERID: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, at most 255 bytes (it becomes part of file names). */
export function validateContainerID(id: string | undefined): string {
  if (id === undefined || id === "") {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, "missing containerID", "CNI_CONTAINERID is empty");
  }
  if (byteLength(id) > MAX_ID_BYTES) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "containerID is too long",
      `CNI_CONTAINERID must be at most ${MAX_ID_BYTES} bytes`,
    );
  }
  if (!SAFE_ID.test(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "invalid characters in containerID",
      `CNI_CONTAINERID=${quoteInput(id)}`,
    );
  }
  return id;
}

/** An interface name (CNI_IFNAME, a bridge name, a veth name): the kernel's rules plus batch-safety. */
export function validateIfname(
  name: string | undefined,
  what = "CNI_IFNAME",
  code: number = ErrorCode.InvalidEnvironmentVariables,
): string {
  if (name === undefined || name === "") throw new CniError(code, "interface name is empty", `${what} must be set`);
  if (byteLength(name) > MAX_IFNAME_BYTES) {
    throw new CniError(code, "interface name is too long", `${what}: interface name should be less than 16 characters`);
  }
  if (name === "." || name === "..")
    throw new CniError(code, "interface name is . or ..", `${what}=${quoteInput(name)}`);
  if (/[\s/:]/.test(name)) {
    throw new CniError(code, "interface name contains / or : or whitespace characters", `${what}=${quoteInput(name)}`);
  }
  if (!SAFE_IFNAME.test(name)) {
    throw new CniError(
      code,
      "invalid characters in interface name",
      `${what}=${quoteInput(name)}: use letters, digits, '_', '.', '-' and do not start with '-' or '.'`,
    );
  }
  return name;
}

/** The network `name`: it becomes a directory and a file-name prefix, so it must be path-safe (code 7). */
export function validateNetworkName(name: unknown): string {
  if (name === undefined || name === null || name === "")
    throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name");
  if (typeof name !== "string") throw new CniError(ErrorCode.InvalidNetworkConfig, "network name must be a string");
  if (byteLength(name) > MAX_ID_BYTES) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "network name is too long", `at most ${MAX_ID_BYTES} bytes`);
  }
  if (!SAFE_ID.test(name)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "invalid characters found in network name",
      `name=${quoteInput(name)} must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$`,
    );
  }
  return name;
}

/** A plugin `type` (the executable name looked up in CNI_PATH): no separators, no traversal. */
export function validatePluginType(type: unknown, where = "type"): string {
  if (typeof type !== "string" || type === "")
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "no plugin name provided",
      `${where} must be a non-empty string`,
    );
  if (byteLength(type) > MAX_ID_BYTES || !SAFE_ID.test(type)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "invalid plugin name", `${where}=${quoteInput(type)}`);
  }
  return type;
}
