/**
 * CNI_ARGS: `K=V;K=V` (SPEC.md "Parameters"; reference: cni pkg/types/args.go LoadArgs).
 *
 * Like the reference, an unknown key is an error unless `IgnoreUnknown` is 1/true. Unlike it, the keys every
 * Kubernetes runtime sends (K8S_POD_*) are always known, and empty segments (a trailing `;`) are tolerated.
 *
 * @example
 *   const args = parseCniArgs("IgnoreUnknown=1;IP=10.1.2.3", ["IP"]); // Map { IgnoreUnknown => "1", IP => "10.1.2.3" }
 */
import { CniError, ErrorCode } from "./errors.js";
import { quoteInput } from "./validate.js";

const KEY = /^[A-Za-z0-9_]+$/;
const ALWAYS_KNOWN = [
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
];
const MAX_ARGS_BYTES = 64 * 1024;

export type CniArgs = ReadonlyMap<string, string>;

/** Split CNI_ARGS into pairs; syntax errors are code 4 naming CNI_ARGS. Known-key checking is separate. */
export function splitCniArgs(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  if (Buffer.byteLength(raw) > MAX_ARGS_BYTES) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "CNI_ARGS is too long",
      `at most ${MAX_ARGS_BYTES} bytes`,
    );
  }
  for (const segment of raw.split(";")) {
    if (segment === "") continue;
    const kv = segment.split("=");
    if (kv.length !== 2 || !KEY.test(kv[0] ?? "")) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        "CNI_ARGS: invalid pair",
        `CNI_ARGS pair ${quoteInput(segment)} is not KEY=VALUE`,
      );
    }
    if (/[\x00-\x1f\x7f]/.test(kv[1] ?? "")) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        "CNI_ARGS: invalid value",
        `CNI_ARGS value of ${kv[0]} contains control characters`,
      );
    }
    out.set(kv[0]!, kv[1]!);
  }
  return out;
}

/** Reject keys the plugin does not understand unless IgnoreUnknown is set (the reference's rule). */
export function checkKnownArgs(args: CniArgs, knownKeys: readonly string[]): void {
  const ignore = /^(1|true)$/i.test(args.get("IgnoreUnknown") ?? "");
  if (ignore) return;
  const known = new Set([...ALWAYS_KNOWN, ...knownKeys]);
  const unknown = [...args.keys()].filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_ARGS: unknown args [${unknown.join(" ")}]`,
      `this plugin understands ${[...known].join(", ")}; add IgnoreUnknown=1 to pass others`,
    );
  }
}

/** Parse and check in one go. */
export function parseCniArgs(raw: string | undefined, knownKeys: readonly string[]): CniArgs {
  const args = splitCniArgs(raw);
  checkKnownArgs(args, knownKeys);
  return args;
}
