/**
 * The `loopback` plugin: brings `lo` up in the pod's namespace, the one thing a runtime (containerd's CRI layer,
 * Kubernetes the Hard Way's `99-loopback.conf`) asks of it for every sandbox. See docs/loopback.md.
 *
 * Like the reference, it works on `lo` whatever CNI_IFNAME says, answers with the loopback addresses the kernel
 * put on `lo` when it came up, and passes a prevResult through unchanged when it is chained.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { ipJson, type AddrInfo, type LinkInfo } from "../../lib/ip/read.js";
import { log } from "../../lib/log.js";
import { inspectNetns, netnsForDel, requireUsableNetns } from "../../lib/netns.js";
import type { CmdContext, PluginDefinition } from "../../lib/skel.js";
import type { IPConfig, Result } from "../../lib/types.js";
import { quoteInput } from "../../lib/validate.js";
import { ToolError } from "../../lib/tool-error.js";
import { parseResult } from "../../lib/version.js";

const LO = "lo";
/** The reference reports a loopback MAC of zeros (what the kernel shows for lo). */
const LO_MAC = "00:00:00:00:00:00";

type LoLink = LinkInfo & { addr_info?: AddrInfo[] };

const isLoopbackAddr = (a: AddrInfo): boolean => (a.family === "inet" ? a.local.startsWith("127.") : a.local === "::1");

/** lo's link and addresses in one `ip -json addr show dev lo`. */
async function readLo(netns: string): Promise<LoLink | undefined> {
  return (await ipJson<LoLink[]>(["addr", "show", "dev", LO], netns))[0];
}

/**
 * The addresses to report: the first loopback address of each family, in the kernel's order (the reference takes
 * the first of each family). Other addresses on lo are left out rather than failing the pod (the reference fails).
 */
export function loopbackIPs(addrs: readonly AddrInfo[]): IPConfig[] {
  const out: IPConfig[] = [];
  for (const family of ["inet", "inet6"] as const) {
    const first = addrs.find((a) => a.family === family && isLoopbackAddr(a));
    if (first) out.push({ address: `${first.local}/${first.prefixlen}`, interface: 0 });
  }
  return out;
}

async function add(ctx: CmdContext): Promise<Result> {
  requireUsableNetns(ctx.netns, false);
  // Everything the answer depends on is parsed before lo changes: a refused ADD (a malformed prevResult is 6) leaves
  // the pod exactly as it was.
  const chained =
    ctx.config.prevResult !== undefined && ctx.config.prevResult !== null
      ? parseResult(ctx.config.prevResult, ctx.version)
      : undefined;
  // Read after the link is up, in the same process: the kernel adds 127.0.0.1/8 and ::1/128 only then.
  const [lo] = await new IpBatch()
    .cmd("link", "set", "dev", LO, "up")
    .cmd("addr", "show", "dev", LO)
    .runJson<LoLink[]>(ctx.netns, `bringing ${LO} up in ${ctx.netns}`);
  if (!lo) throw new CniError(ErrorCode.KernelOperationFailed, `no ${LO} interface in ${quoteInput(ctx.netns)}`);
  const other = (lo.addr_info ?? []).filter((a) => !isLoopbackAddr(a));
  if (other.length > 0)
    log.warn(`loopback: ${LO} also has ${other.map((a) => a.local).join(", ")}; reporting only its loopback addresses`);
  // Chained after another plugin, the reference passes that plugin's result on untouched.
  if (chained) return chained;
  return { interfaces: [{ name: LO, mac: LO_MAC, sandbox: ctx.netns }], ips: loopbackIPs(lo.addr_info ?? []) };
}

/**
 * DEL: lo down. Nothing to do without a namespace, and a namespace already gone (or its mount point left empty by
 * the runtime) took lo with it; both are success so that a runtime's retried DEL always completes. Our own
 * namespace is refused (8): setting lo down there would cut the node's loopback.
 */
async function del(ctx: CmdContext): Promise<void> {
  if (netnsForDel(ctx.netns) === "gone") return;
  try {
    await new IpBatch().cmd("link", "set", "dev", LO, "down").run(ctx.netns, `setting ${LO} down in ${ctx.netns}`);
  } catch (e) {
    // The namespace can vanish between the look and nsenter (nsenter then fails, and the namespace no longer
    // inspects as one), or lo with it: both are the same "already gone".
    if (inspectNetns(ctx.netns) !== "ok" || (e instanceof ToolError && e.kind === "not-found")) return;
    throw e;
  }
}

/** CHECK: lo must be up (code 103 otherwise); the reference's message, a more telling code. */
async function check(ctx: CmdContext): Promise<void> {
  requireUsableNetns(ctx.netns, false);
  const lo = await readLo(ctx.netns);
  if (!lo) throw new CniError(ErrorCode.CheckFailed, `no ${LO} interface in ${quoteInput(ctx.netns)}`);
  if (!lo.flags.includes("UP"))
    throw new CniError(
      ErrorCode.CheckFailed,
      "loopback interface is down",
      `${LO} in ${ctx.netns} has flags ${lo.flags.join(",")}`,
    );
}

/** The loopback plugin definition for the multi-call executable. */
export const loopback: PluginDefinition = {
  name: "loopback",
  about: "CNI loopback plugin (cni-ts): brings lo up in the pod's network namespace",
  // The verbs judge CNI_NETNS themselves: DEL must succeed on a namespace that is gone or no longer mounted.
  netns: "ignored",
  add,
  del,
  check,
  // Nothing outlives the namespace, so there is nothing to collect, and nothing can keep ADD from working.
  gc: async () => {},
  status: async () => {},
};
