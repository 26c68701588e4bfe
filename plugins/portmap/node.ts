/**
 * The two node settings portmap touches besides firewall rules, both as the reference does them.
 *
 * - route_localnet on the interface that routes to the pod: a connection to 127.0.0.1:hostPort is DNATed to the
 *   pod in OUTPUT, and the kernel refuses to route a 127/8 source off the loopback unless this is set; the
 *   masquerade then gives it the interface's address. Needed for either backend (it is routing, not firewalling).
 *   It also lets packets addressed to 127/8 in through that interface (CVE-2020-8558): kube-proxy drops those;
 *   see docs/portmap.md.
 * - UDP conntrack entries of the mapped host ports: a flow that started before the mapping existed would keep
 *   going wherever it went before. Deleted with conntrack-tools when the node has them; best effort.
 */
import type { Family } from "../../lib/cidr.js";
import { run } from "../../lib/exec.js";
import { ipJson } from "../../lib/ip/read.js";
import { log } from "../../lib/log.js";
import { hasExecutable } from "../../lib/exec.js";
import { readSysctl, writeSysctl } from "../../lib/sysctl.js";
import type { PortMapping } from "./config.js";

const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** The interface the node routes `ip` through, or undefined (no route: nothing to enable, as in the reference). */
export async function routeDevice(ip: string): Promise<string | undefined> {
  try {
    const routes = await ipJson<Array<{ dev?: string }>>(["route", "get", ip]);
    const dev = routes[0]?.dev;
    return dev !== undefined && IFNAME.test(dev) ? dev : undefined;
  } catch {
    return undefined;
  }
}

/** Set route_localnet on the interface towards the pod's IPv4 address; a no-op when it is set already. */
export async function enableLocalnet(podIPv4: string): Promise<string | undefined> {
  const dev = await routeDevice(podIPv4);
  if (dev === undefined) return undefined;
  const key = ["net", "ipv4", "conf", dev, "route_localnet"];
  if (readSysctl(key) !== "1") writeSysctl(key, "1");
  return dev;
}

/** Whether route_localnet is on for the interface towards `podIPv4` (CHECK). */
export async function localnetProblem(podIPv4: string): Promise<string | undefined> {
  const dev = await routeDevice(podIPv4);
  if (dev === undefined) return `no route to ${podIPv4} on the node`;
  return readSysctl(["net", "ipv4", "conf", dev, "route_localnet"]) === "1"
    ? undefined
    : `net.ipv4.conf.${dev}.route_localnet is not 1`;
}

/** Delete UDP conntrack entries whose original destination port is a mapped host port. */
export async function flushUdpConntrack(mappings: readonly PortMapping[], families: readonly Family[]): Promise<void> {
  const ports = [...new Set(mappings.filter((m) => m.protocol === "udp").map((m) => m.hostPort))];
  if (ports.length === 0) return;
  if (!hasExecutable("conntrack"))
    return log.debug("portmap: conntrack not in PATH; stale UDP flows to the mapped ports are not flushed");
  await Promise.all(
    families.flatMap((f) =>
      ports.map(async (p) => {
        // Exit 1 just means "nothing matched".
        const r = await run(
          "conntrack",
          ["-D", "-f", f === 4 ? "ipv4" : "ipv6", "-p", "udp", "--orig-port-dst", String(p)],
          { timeoutMs: 5000 },
        );
        if (r.code !== 0 && r.code !== 1) log.debug(`portmap: conntrack -D for udp/${p}: ${r.stderr.trim()}`);
      }),
    ),
  );
}
