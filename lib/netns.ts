/**
 * Network namespaces named by a path (CNI_NETNS): `/var/run/netns/NAME`, `/proc/PID/ns/net`, a bind mount.
 * Entry is `nsenter --net=PATH`, which accepts all of them; no `ip netns` name is ever needed.
 */
import { type Stats, statfsSync, statSync } from "node:fs";
import { CniError, ErrorCode } from "./errors.js";
import { quoteInput } from "./validate.js";

const NSFS_MAGIC = 0x6e736673;

export type NetnsState = "ok" | "missing" | "not-netns" | "self";

/** What CNI_NETNS points at. "self" is the plugin's own namespace: acting there would change the node. */
export function inspectNetns(path: string): NetnsState {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR")
      return "missing";
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_NETNS ${quoteInput(path)} cannot be read`,
      String(e),
    );
  }
  try {
    if (statfsSync(path).type !== NSFS_MAGIC) return "not-netns";
  } catch {
    // statfs may be refused on another process's /proc/PID/ns/net (EACCES); nsenter will judge it.
  }
  const self = statSync("/proc/self/ns/net");
  if (st.dev === self.dev && st.ino === self.ino) return "self";
  return "ok";
}

/**
 * Throw the right CNI error unless CNI_NETNS is a usable namespace other than ours. `forDel` (DEL): a path that names
 * nothing, or names something that is no longer a network namespace (the empty file an unmounted namespace leaves
 * behind, a path reused for something else), is "already gone", not an error: DEL then releases what it owns from what
 * it knows (the attachment key, prevResult), and a runtime's retried DEL completes instead of failing forever.
 * ADD and CHECK still refuse both (3 and 4). Our own namespace is refused for every verb (8).
 */
export function requireUsableNetns(path: string, forDel: boolean): NetnsState {
  if (!path.startsWith("/")) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "CNI_NETNS must be an absolute path",
      `CNI_NETNS=${quoteInput(path)}`,
    );
  }
  const state = inspectNetns(path);
  switch (state) {
    case "missing":
      if (forDel) return state;
      throw new CniError(
        ErrorCode.UnknownContainer,
        `network namespace ${quoteInput(path)} does not exist`,
        "CNI_NETNS names no file",
      );
    case "not-netns":
      if (forDel) return state;
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        `CNI_NETNS ${quoteInput(path)} is not a network namespace`,
      );
    case "self":
      throw new CniError(
        ErrorCode.InvalidNetNS,
        "plugin's netns and netns from CNI_NETNS should not be the same",
        `CNI_NETNS=${quoteInput(path)}`,
      );
    default:
      return state;
  }
}

/** DEL's view of CNI_NETNS: "ok" when the pod's namespace can be entered, "gone" when it cannot (empty, missing, not a namespace). */
export function netnsForDel(path: string): "ok" | "gone" {
  if (path === "") return "gone";
  return requireUsableNetns(path, true) === "ok" ? "ok" : "gone";
}

/** argv prefix that runs a command inside the namespace at `path` (or in ours when path is undefined). */
export function inNetns(path: string | undefined, file: string, args: readonly string[]): [string, string[]] {
  if (path === undefined) return [file, [...args]];
  return ["nsenter", [`--net=${path}`, "--", file, ...args]];
}
