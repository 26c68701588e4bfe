/**
 * Which netfilter front end a plugin uses: "iptables" or "nftables", as configs name them (`ipMasqBackend`,
 * portmap's `backend`), and the node's default when a config names none. Looks at PATH only: no process.
 *
 * @example
 *   const backend = configured ?? defaultBackend() ?? "iptables";
 *   requireTool("nft", "portmap");
 */
import { CniError, ErrorCode } from "../errors.js";
import { hasExecutable } from "../exec.js";

/** The two ways of writing firewall state. */
export type NetfilterBackend = "iptables" | "nftables";

/**
 * The reference's default: iptables if an iptables binary exists, else nftables if nft exists, else undefined.
 * iptables first because kube-proxy and friends may still program iptables, and an operator expects to find our
 * rules next to theirs.
 */
export function defaultBackend(): NetfilterBackend | undefined {
  if (hasExecutable("iptables")) return "iptables";
  if (hasExecutable("nft")) return "nftables";
  return undefined;
}

/**
 * STATUS of a plugin writing firewall state: code 50 (not available: ADD could not work) when the program of its
 * backend is not installed.
 */
export function requireBackendTool(backend: NetfilterBackend, who: string): void {
  const tool = backend === "nftables" ? "nft" : "iptables-restore";
  if (!hasExecutable(tool))
    throw new CniError(ErrorCode.NotAvailable, `${who}: ${tool} not found in PATH`, `the ${backend} backend needs it`);
}

/** Throw code 100 naming the program when it is not installed: better than nsenter's "exit 127". */
export function requireTool(name: string, who: string): void {
  if (!hasExecutable(name)) {
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `${who}: ${name} not found in PATH`,
      `PATH=${process.env.PATH ?? ""}`,
    );
  }
}
