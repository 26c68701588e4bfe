/**
 * Everything tuning does in the pod's namespace, as one process chain per verb.
 *
 * Sysctls under /proc/sys/net belong to the namespace of the process that opens them, and the interface lives there,
 * so the work runs under `nsenter --net=CNI_NETNS`. ADD: a fixed `sh` script checks that every sysctl exists (a
 * missing one stops it before anything is written), reads their old values with one `cat`, writes the new values,
 * and `exec`s one
 * `ip -json -batch -` that shows the interface (its attributes before the change) and sets every attribute in one
 * `link set`. Without sysctls there is no shell: `nsenter ip -json -batch -` alone. Nothing from the config is ever
 * part of the script's text: paths and values are its arguments, the batch lines come from validated tokens.
 *
 * What the process printed (old sysctl values, old attributes) is what ADD needs for the backup, and for undoing a
 * half-done change: when a write or the `link set` fails, the values written so far and the attributes are put back
 * (one more process, on the failure path only), so a refused config leaves the pod as it was.
 *
 * @example
 *   const before = await applyInPod("/var/run/netns/pod", "eth0", { sysctls: [{ path, value: "1" }], link: ["mtu", "1400"] });
 *   before.link?.mtu // 1500
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { run, timedOutError, type RunResult } from "../../lib/exec.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { log } from "../../lib/log.js";
import { inNetns } from "../../lib/netns.js";
import type { Backup } from "./backup.js";

/** The attributes of the pod interface tuning can change, as the kernel shows them. */
export interface LinkState {
  mac: string;
  mtu: number;
  promisc: boolean;
  allmulti: boolean;
  txQLen: number;
}

/** One change to the pod: sysctl files to write (in order) and `ip link set dev IFNAME ...` arguments. */
export interface PodChange {
  sysctls: ReadonlyArray<{ path: string; value: string }>;
  /** Tokens after `link set dev IFNAME`; undefined or empty: the interface is not touched (nor read). */
  link?: readonly string[];
}

/** The pod as it was before a change (or as it is, for CHECK). */
export interface PodState {
  /** The first line of each sysctl file, in the change's order. */
  sysctls: string[];
  link?: LinkState;
}

/** The line standing for a sysctl that exists but cannot be read (write-only `route.flush`, an unset `stable_secret`). */
const UNREADABLE = "cni-ts-tuning:unreadable";

// $1 count of sysctls, $2 1 when ip -batch follows (stdin), then the values, then the paths. The old values are read
// with one cat; only when some file cannot be read (the kernel refuses reads of a few), one cat per file.
const ADD_SCRIPT = `n=$1 b=$2
shift 2
command -v cat > /dev/null || exit 127
[ "$b" = 0 ] || command -v ip > /dev/null || exit 127
i=1
while [ "$i" -le "$n" ]; do eval "v_$i=\\$1"; shift; i=$((i + 1)); done
for p; do [ -e "$p" ] || { echo "cni-ts-tuning: no such sysctl: $p" >&2; exit 12; }; done
if olds=$(cat -- "$@" 2> /dev/null); then
  printf '%s\\n' "$olds"
else
  for p; do if o=$(cat -- "$p" 2> /dev/null); then printf '%s\\n' "$o"; else echo ${UNREADABLE}; fi; done
fi
i=1
for p; do
  eval "v=\\$v_$i"
  printf '%s' "$v" > "$p" || { echo "cni-ts-tuning: write $i failed" >&2; exit 13; }
  i=$((i + 1))
done
[ "$b" = 0 ] || exec ip -json -batch -
`;

// $1 the interface, then the sysctl paths.
const READ_SCRIPT = `ip -json link show dev "$1" || exit $(($? == 127 ? 127 : 11))
shift
exec cat -- "$@"
`;

const SH_NAME = "cni-ts-tuning";
const TIMEOUT_MS = 15_000;

interface IpLink {
  address?: string;
  mtu?: number;
  flags?: string[];
  txqlen?: number;
}

function linkState(line: string | undefined): LinkState | undefined {
  if (!line) return undefined;
  let links: IpLink[];
  try {
    links = JSON.parse(line) as IpLink[];
  } catch {
    return undefined;
  }
  const l = links[0];
  if (!l || typeof l.mtu !== "number") return undefined;
  const flags = l.flags ?? [];
  return {
    mac: (l.address ?? "").toLowerCase(),
    mtu: l.mtu,
    promisc: flags.includes("PROMISC"),
    allmulti: flags.includes("ALLMULTI"),
    txQLen: l.txqlen ?? 0,
  };
}

/** `ip link set` arguments that put `b`'s attributes back (the backup's, or the state before a failed ADD). */
export function restoreTokens(b: Backup): string[] {
  const t: string[] = [];
  if (b.mtu) t.push("mtu", String(b.mtu));
  if (b.mac) t.push("address", b.mac);
  if (b.promisc !== undefined) t.push("promisc", b.promisc ? "on" : "off");
  if (b.allmulti !== undefined) t.push("allmulticast", b.allmulti ? "on" : "off");
  if (b.txQLen !== undefined) t.push("txqueuelen", String(b.txQLen));
  return t;
}

function batchFor(ifname: string, link: readonly string[]): IpBatch {
  return new IpBatch().cmd("link", "show", "dev", ifname).cmd("link", "set", "dev", ifname, ...link);
}

async function exec(netns: string, file: string, args: string[], input: string): Promise<RunResult> {
  const [f, a] = inNetns(netns, file, args);
  const r = await run(f, a, { input, timeoutMs: TIMEOUT_MS });
  if (r.timedOut) throw timedOutError("tuning in the pod's namespace", r);
  return r;
}

/** sh could not find `cat` or `ip` (exit 127): the node lacks a tool tuning needs; nothing was written. */
const missingTool = (r: RunResult) =>
  new CniError(
    ErrorCode.Internal,
    "tuning needs cat (coreutils) and ip (iproute2) in PATH inside the pod's namespace",
    r.stderr.trim(),
  );

const stderrOf = (r: RunResult) =>
  r.stderr
    .replace(/cni-ts-tuning: .*\n?/g, "")
    .replace(/\s*Command failed -:\d+\s*/g, " ")
    .trim();

/**
 * Apply `change` in the namespace at `netns`; returns the state before it. On failure, undoes what was done and
 * throws: code 7 when a sysctl does not exist (nothing was written), 100 when the kernel refused a value.
 */
export async function applyInPod(netns: string, ifname: string, change: PodChange): Promise<PodState> {
  const link = change.link && change.link.length > 0 ? change.link : undefined;
  const n = change.sysctls.length;
  if (n === 0 && !link) return { sysctls: [] };
  const batch = link ? batchFor(ifname, link).text() : "";
  const r =
    n === 0
      ? await exec(netns, "ip", ["-json", "-batch", "-"], batch)
      : await exec(
          netns,
          "sh",
          [
            "-c",
            ADD_SCRIPT,
            SH_NAME,
            String(n),
            link ? "1" : "0",
            ...change.sysctls.map((s) => s.value),
            ...change.sysctls.map((s) => s.path),
          ],
          batch,
        );
  const lines = r.stdout.split("\n");
  const olds = n > 0 && lines.length > n ? lines.slice(0, n) : [];
  const before: PodState = { sysctls: olds, link: link ? linkState(lines[n]) : undefined };
  if (r.code === 0) {
    if (link && !before.link)
      throw new CniError(
        ErrorCode.DecodingFailure,
        `ip link show dev ${ifname}: unparsable output`,
        r.stdout.slice(0, 200),
      );
    return before;
  }
  if (r.code === 127) throw missingTool(r);
  if (r.code === 12) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "a sysctl of the config does not exist in the pod's namespace",
      r.stderr.replace("cni-ts-tuning: ", "").trim(),
    );
  }
  // Something was written: how much, and what must be put back.
  const wrote = r.code === 13 ? Number(/write (\d+) failed/.exec(r.stderr)?.[1] ?? n + 1) - 1 : n;
  const linkStep = r.code === 13 ? 0 : Number(/Command failed -:(\d+)/.exec(r.stderr)?.[1] ?? 0);
  await undo(netns, ifname, change, olds, wrote, linkStep === 2 ? before.link : undefined);
  if (r.code === 13) {
    const s = change.sysctls[wrote];
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `the kernel refused ${s ? `${JSON.stringify(s.value)} for ${s.path}` : "a sysctl value"}`,
      stderrOf(r),
    );
  }
  if (linkStep === 1)
    throw new CniError(
      ErrorCode.KernelOperationFailed,
      `failed to get ${JSON.stringify(ifname)} in the pod's namespace`,
      stderrOf(r),
    );
  throw new CniError(
    ErrorCode.KernelOperationFailed,
    `ip link set dev ${ifname} ${link?.join(" ") ?? ""}: ${stderrOf(r)}`.trim(),
  );
}

/** Put back the first `wrote` sysctls and, when given, the interface's attributes; failures are only logged. */
async function undo(
  netns: string,
  ifname: string,
  change: PodChange,
  olds: string[],
  wrote: number,
  link: LinkState | undefined,
): Promise<void> {
  const sysctls =
    olds.length === change.sysctls.length
      ? change.sysctls
          .slice(0, wrote)
          .flatMap((s, i) => (olds[i] === UNREADABLE ? [] : [{ path: s.path, value: olds[i]! }]))
      : [];
  const tokens = link ? restoreTokens(link) : undefined;
  if (sysctls.length === 0 && !tokens) return;
  try {
    await applyInPod(netns, ifname, { sysctls: sysctls.reverse(), link: tokens });
  } catch (e) {
    log.warn(`tuning: undoing a failed ADD: ${(e as Error).message}`);
  }
}

/** The interface's attributes and the first line of each sysctl file, read in one process chain (CHECK). */
export async function readPod(netns: string, ifname: string, paths: readonly string[]): Promise<PodState> {
  const r =
    paths.length === 0
      ? await exec(netns, "ip", ["-json", "link", "show", "dev", ifname], "")
      : await exec(netns, "sh", ["-c", READ_SCRIPT, SH_NAME, ifname, ...paths], "");
  if (r.code === 127) throw missingTool(r);
  const lines = r.stdout.split("\n");
  const link = linkState(lines[0]);
  if (!link) throw new CniError(ErrorCode.CheckFailed, `Cannot find container link ${ifname}`, r.stderr.trim());
  if (r.code !== 0)
    throw new CniError(
      ErrorCode.CheckFailed,
      "a sysctl of the config cannot be read in the pod's namespace",
      r.stderr.trim(),
    );
  return { link, sysctls: lines.slice(1, 1 + paths.length) };
}

/**
 * `ip link set dev IFNAME tokens` in the pod (DEL's restore). Returns "gone" when the interface no longer exists
 * (nothing to restore), and throws code 100 on any other refusal.
 */
export async function setLinkInPod(netns: string, ifname: string, tokens: readonly string[]): Promise<"done" | "gone"> {
  if (tokens.length === 0) return "done";
  const batch = new IpBatch().cmd("link", "set", "dev", ifname, ...tokens).text();
  const r = await exec(netns, "ip", ["-batch", "-"], batch);
  if (r.code === 0) return "done";
  if (/Cannot find device|does not exist/.test(r.stderr)) return "gone";
  throw new CniError(ErrorCode.KernelOperationFailed, `ip link set dev ${ifname} ${tokens.join(" ")}: ${stderrOf(r)}`);
}
