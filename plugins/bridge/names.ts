/**
 * Names and MAC addresses the bridge plugin chooses.
 *
 * The host end of a pod's veth is named from the attachment (`veth` + 8 hex of sha256(containerID, ifname)), not at
 * random as the reference does: DEL and GC can then find it with no netns, no prevResult and no scan.
 * MACs are chosen by us and set at creation (addr_assign_type "set"), so neither the kernel's bridge MAC
 * inheritance nor udev's MACAddressPolicy=persistent changes them after ADD (cni#943, kubernetes#63922).
 */
import { hashHex, randomBytes } from "../../lib/hash.js";

export function hostVethName(containerID: string, ifname: string): string {
  return "veth" + hashHex("sha256", `${containerID}\r\n${ifname}`).slice(0, 8);
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
