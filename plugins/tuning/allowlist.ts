/**
 * The node's sysctl allowlist (the newer reference's `/etc/cni/tuning/allowlist.conf`): when the file exists, every
 * sysctl key of a config must match one of its regular expressions (one a line, blank lines ignored, unanchored as
 * Go's regexp.MatchString is); when it does not exist, any `net.` sysctl is allowed. It lets a node owner limit what
 * pods' configs (args, annotations) may set.
 *
 * @example
 *   checkAllowlist(["net.ipv4.conf.IFNAME.rp_filter"], ["^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$"]); // passes
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { quoteInput } from "../../lib/validate.js";

export const ALLOWLIST_FILE = "/etc/cni/tuning/allowlist.conf";

/** The allowlist's patterns, or undefined when the node has none. An unreadable file is an error (code 5). */
export function readAllowlist(file = ALLOWLIST_FILE): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CniError(
      ErrorCode.IOFailure,
      `cannot read the sysctl allowlist ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** Throw code 7 for the first key no pattern matches (keys as configured, before IFNAME is replaced). */
export function checkAllowlist(keys: readonly string[], patterns: readonly string[] | undefined): void {
  if (patterns === undefined) return;
  const res = patterns.map((p) => {
    try {
      return new RegExp(p, "u");
    } catch {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `the sysctl allowlist ${ALLOWLIST_FILE} has an invalid pattern ${quoteInput(p)}`,
      );
    }
  });
  const refused = keys.find((k) => !res.some((re) => re.test(k)));
  if (refused !== undefined) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `Sysctl ${quoteInput(refused)} is not allowed`,
      `the node's ${ALLOWLIST_FILE} allows only: ${patterns.join(" ")}`,
    );
  }
}
