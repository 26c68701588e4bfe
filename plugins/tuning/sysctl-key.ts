/**
 * Sysctl keys of the tuning config: a key is a sysctl name under `net.`, nothing else, because it becomes a path
 * under /proc/sys that the plugin writes as root.
 *
 * The reference's reading (plugins tuning.go getSysctlFilename): every `.` becomes `/`, so both
 * `net.ipv4.conf.eth0.rp_filter` and `net/ipv4/conf/eth0/rp_filter` name the same file; then the first `IFNAME` is
 * replaced by CNI_IFNAME (after the dots, so an interface name with a dot, `eth0.100`, stays one path part). The
 * reference then lets `filepath.Join` clean the path and only checks the `/proc/sys/net/` prefix; here every part
 * must be a plain name: no empty part (`net..ipv4`, a leading or trailing separator), no `..`, no control
 * character, nothing but letters, digits, `_` and `-` (and the interface name's own characters where IFNAME stood).
 *
 * @example
 *   sysctlKeyPath("net.ipv4.conf.IFNAME.rp_filter", "eth0") // "/proc/sys/net/ipv4/conf/eth0/rp_filter"
 *   sysctlKeyPath("kernel.panic", "eth0")                   // throws CniError code 7
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { sysctlPath } from "../../lib/sysctl.js";
import { quoteInput } from "../../lib/validate.js";

/** A part of a key as written in the config (before IFNAME is replaced). */
const KEY_PART = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
/** Keys longer than this name no sysctl (the longest net sysctl paths are well under 128 bytes). */
export const MAX_SYSCTL_KEY_BYTES = 255;

const invalid = (key: string, why: string) =>
  new CniError(
    ErrorCode.InvalidNetworkConfig,
    `invalid net sysctl key ${quoteInput(key)}: ${why}`,
    "a key is a sysctl name under net. (dots or slashes between its parts), IFNAME standing for CNI_IFNAME",
  );

/**
 * The path parts of `key` with the first IFNAME replaced by `ifname` (already validated by skel), or a CniError
 * code 7 saying what is wrong with the key.
 */
export function sysctlKeyParts(key: string, ifname: string): string[] {
  if (key === "") throw invalid(key, "empty");
  if (Buffer.byteLength(key, "utf8") > MAX_SYSCTL_KEY_BYTES)
    throw invalid(key, `longer than ${MAX_SYSCTL_KEY_BYTES} bytes`);
  if (/[\x00-\x1f\x7f]/.test(key)) throw invalid(key, "contains a control character");
  if (key.includes("..")) throw invalid(key, "contains ..");
  const parts = key.replaceAll(".", "/").split("/");
  const bad = parts.find((p) => !KEY_PART.test(p));
  if (bad !== undefined)
    throw invalid(key, bad === "" ? "has an empty part" : `part ${quoteInput(bad)} is not a plain name`);
  if (parts[0] !== "net") throw invalid(key, "only sysctls under net. belong to the pod's network namespace");
  if (parts.length < 2) throw invalid(key, "names the whole net. tree, not one sysctl");
  const at = parts.findIndex((p) => p.includes("IFNAME"));
  if (at >= 0) parts[at] = parts[at]!.replace("IFNAME", ifname);
  return parts;
}

/** The file under /proc/sys/net that `key` names in the pod's namespace (see sysctlKeyParts). */
export function sysctlKeyPath(key: string, ifname: string): string {
  // lib/sysctl checks the parts once more (an interface name with odd characters would be refused there).
  return sysctlPath(sysctlKeyParts(key, ifname));
}
