/**
 * The pod's host-side veth, found as the reference finds it: the peer of CNI_IFNAME in the pod's namespace must be
 * one of prevResult's host-side interfaces (no `sandbox`). The pod side costs one `ip` in the pod's namespace; the
 * host side is read from sysfs without a process when sysfs shows this namespace (the link there carries the MAC
 * prevResult gives it), else one `ip -json link show`.
 *
 * @example
 *   const host = await hostVeth(prev, "eth0", "/var/run/netns/pod"); // { name: "veth1a2b3c4d", mtu: 1500 }
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import { ipJson, type LinkInfo } from "../../lib/ip/read.js";
import type { Interface, Result } from "../../lib/types.js";
import { validateIfname } from "../../lib/validate.js";

export interface HostVeth {
  name: string;
  mtu: number;
}

const GONE = /Cannot find device|does not exist|No such device/;

/** The ifindex of the pod interface's peer (the host veth), or why there is none. */
async function peerIndex(ifname: string, netns: string): Promise<number> {
  let links: LinkInfo[];
  try {
    links = await ipJson<LinkInfo[]>(["link", "show", "dev", ifname], netns);
  } catch (e) {
    if (e instanceof CniError && GONE.test(e.message))
      throw new CniError(
        ErrorCode.KernelOperationFailed,
        `container interface ${ifname} has no veth peer: Link not found`,
      );
    throw e;
  }
  const index = links[0]?.link_index;
  if (typeof index !== "number" || index <= 0)
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `container interface ${ifname} has no veth peer`,
      "the pod interface is not a veth",
    );
  return index;
}

/** A host link's ifindex and MTU from sysfs, if sysfs shows this namespace's link of that name (its MAC matches). */
function fromSysfs(iface: Interface): { ifindex: number; mtu: number } | undefined {
  if (!iface.mac) return undefined;
  try {
    const dir = `/sys/class/net/${iface.name}`;
    if (readFileSync(`${dir}/address`, "utf8").trim().toLowerCase() !== iface.mac.toLowerCase()) return undefined;
    return { ifindex: Number(readFileSync(`${dir}/ifindex`, "utf8")), mtu: Number(readFileSync(`${dir}/mtu`, "utf8")) };
  } catch {
    return undefined;
  }
}

/** The host veth of the attachment (code 7 when prevResult has no interfaces, 100 when the kernel shows no match). */
export async function hostVeth(prev: Result, ifname: string, netns: string): Promise<HostVeth> {
  const interfaces = prev.interfaces ?? [];
  if (interfaces.length === 0)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "no interfaces provided", "prevResult lists no interfaces");
  const candidates = interfaces.filter((i) => !i.sandbox);
  // Host-side names reach sysfs paths and tc lines.
  for (const c of candidates) validateIfname(c.name, "prevResult interface name", ErrorCode.InvalidNetworkConfig);
  const peer = await peerIndex(ifname, netns);
  for (const c of candidates) {
    const seen = fromSysfs(c);
    if (seen && seen.ifindex === peer) return { name: c.name, mtu: seen.mtu };
  }
  const links = await ipJson<LinkInfo[]>(["link", "show"]);
  const link = links.find((l) => l.ifindex === peer);
  if (!link) throw new CniError(ErrorCode.KernelOperationFailed, `veth peer with index ${peer} is not in host ns`);
  if (!candidates.some((c) => c.name === link.ifname))
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      "no veth peer of container interface found in host ns",
      `the peer is ${link.ifname}, not a host interface of prevResult`,
    );
  return { name: link.ifname, mtu: link.mtu };
}
