/**
 * The ifb device that carries a pod's egress limit. It lives in the node's namespace, named from the network and
 * the container ID as the reference names it (`bwp` + the first 12 hex digits of sha512(name + containerID)), so
 * DEL finds it from the attachment's identity alone, with the pod's namespace gone.
 *
 * @example
 *   ifbName("kubenet", "abc123") // "bwp" + 12 hex digits
 */
import { readFileSync } from "node:fs";
import { hashHex } from "../../lib/hash.js";
import { IpBatch } from "../../lib/ip/batch.js";
import type { LinkInfo } from "../../lib/ip/read.js";

/** The reference's getIfbDeviceName: 15 characters, so it always fits IFNAMSIZ. */
export function ifbName(network: string, containerID: string): string {
  return `bwp${hashHex("sha512", network + containerID)}`.slice(0, 15);
}

/**
 * Does a link of this name exist in our namespace? /proc/self/net/dev follows the reader's network namespace
 * (sysfs may show another one under a bare `nsenter --net`), and reading it costs no process.
 */
export function linkExists(name: string): boolean {
  try {
    return readFileSync("/proc/self/net/dev", "utf8")
      .split("\n")
      .some((l) => l.slice(0, l.indexOf(":")).trim() === name);
  } catch {
    return true; // cannot tell: let the caller's command find out
  }
}

/** Create the ifb (up, with the host veth's MTU, as the reference does) and return its MAC, in one `ip -batch`. */
export async function createIfb(name: string, mtu: number): Promise<string> {
  const shown = await new IpBatch()
    .cmd("link", "add", "name", name, "mtu", mtu, "up", "type", "ifb")
    .cmd("link", "show", "dev", name)
    .runJson<LinkInfo[]>(undefined, `create ifb ${name}`);
  return shown[0]?.address ?? "";
}

/** Delete the ifb (its tbf goes with it). */
export async function deleteIfb(name: string): Promise<void> {
  await new IpBatch().cmd("link", "del", "dev", name).run(undefined, `delete ifb ${name}`);
}
