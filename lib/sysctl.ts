/**
 * Network sysctls (/proc/sys/net/...). Keys are built from validated names only, and checked again here,
 * because a key is a path.
 *
 * The files under /proc/sys/net belong to the network namespace of the process that opens them: the plugin
 * writes the node's directly, and a pod's through a NetnsScript (lib/ip/script.ts) running inside the pod.
 *
 * @example
 *   writeSysctl("net.ipv6.conf.cni0.accept_ra", "0", { optional: true });
 */
import { readFileSync, writeFileSync } from "node:fs";
import { CniError, ErrorCode } from "./errors.js";

const PART = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * "net.ipv6.conf.eth0.accept_ra" -> /proc/sys/net/ipv6/conf/eth0/accept_ra. Interface names may contain dots,
 * so keys are given as parts when a name is involved: sysctlPath(["net", "ipv6", "conf", ifname, "accept_ra"]).
 */
export function sysctlPath(key: string | readonly string[]): string {
  const parts = typeof key === "string" ? key.split(".") : key;
  if (parts[0] !== "net" || parts.some((p) => !PART.test(p) || p === "..")) {
    throw new CniError(ErrorCode.Internal, `refusing sysctl key ${JSON.stringify(parts.join("."))}`);
  }
  return `/proc/sys/${parts.join("/")}`;
}

export interface SysctlOptions {
  /** A missing key (IPv6 disabled, an interface gone) is not an error. */
  optional?: boolean;
}

/** Write a sysctl of the plugin's own namespace (the node). */
export function writeSysctl(key: string | readonly string[], value: string, opts: SysctlOptions = {}): void {
  const path = sysctlPath(key);
  try {
    writeFileSync(path, value);
  } catch (e) {
    if (opts.optional) return;
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `cannot set ${path} to ${value}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
}

/** Read a sysctl of the plugin's own namespace; undefined when it does not exist. */
export function readSysctl(key: string | readonly string[]): string | undefined {
  try {
    return readFileSync(sysctlPath(key), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Set only when different: forwarding writes are cheap, but writing ip_forward resets other ipv4 settings. */
export function ensureSysctl(key: string | readonly string[], value: string): void {
  if (readSysctl(key) !== value) writeSysctl(key, value);
}
