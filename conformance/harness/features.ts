/**
 * What a plugin directory claims (per plugin: present, VERSION answer) and what the machine offers (nft, iptables,
 * IPv6), and the decision "can this case run here" from a case's `requires` words.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { run } from "../../lib/exec.js";
import { decodeVersionInfo, execPlugin, pluginEnv } from "../runner/index.js";

export interface PluginSet {
  dir: string;
  /** "cni-ts", "reference" (containernetworking/plugins) or "unknown"; decides byImpl and known-differences. */
  impl: string;
  /** First line of the bridge (or first plugin's) about text. */
  about: string;
  /** Plugin type -> the versions its VERSION answer lists; absent when the file is missing or VERSION fails. */
  versions: Record<string, string[]>;
}

export interface MachineFeatures {
  nft: boolean;
  iptables: boolean;
  /** python3, for the `connect` checks' listener and client. */
  python3: boolean;
  ipv6: boolean;
}

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** The implementation name from a plugin's about text (printed when run without CNI_COMMAND). */
export function implFromAbout(about: string): string {
  if (/\(cni-ts\)|cni-ts version/.test(about)) return "cni-ts";
  if (/^CNI \S+ plugin (version|v\d)/m.test(about)) return "reference";
  return "unknown";
}

/** Probe each named plugin in `dir` with VERSION (and the about text of the first one present). */
export async function detectPluginSet(dir: string, types: string[], impl?: string): Promise<PluginSet> {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new Error(`plugin directory ${abs} does not exist`);
  const versions: Record<string, string[]> = {};
  let about = "";
  for (const t of types) {
    const file = join(abs, t);
    if (!existsSync(file)) continue;
    try {
      const out = await execPlugin(
        file,
        Buffer.from('{"cniVersion":"1.1.0"}'),
        pluginEnv({ PATH }, { command: "VERSION", path: abs }),
        { plugin: t, verb: "VERSION", timeoutMs: 20_000 },
      );
      versions[t] = decodeVersionInfo(out).supportedVersions;
    } catch {
      continue;
    }
    if (!about || t === "bridge") {
      const r = await run(file, [], { env: { PATH }, timeoutMs: 20_000 });
      about = (r.stderr || r.stdout).trim();
    }
  }
  return { dir: abs, impl: impl ?? implFromAbout(about), about: about.split("\n")[0] ?? "", versions };
}

export function detectMachine(): MachineFeatures {
  const has = (f: string) => ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => existsSync(join(d, f)));
  let ipv6 = false;
  try {
    ipv6 =
      existsSync("/proc/net/if_inet6") &&
      readFileSync("/proc/sys/net/ipv6/conf/default/disable_ipv6", "utf8").trim() === "0";
  } catch {
    ipv6 = existsSync("/proc/net/if_inet6");
  }
  return { nft: has("nft"), iptables: has("iptables") && has("iptables-save"), python3: has("python3"), ipv6 };
}

/** Plugin types a case uses: every `type` and `ipam.type` in its config files (parsed loosely; bad files skipped). */
export function caseTypes(confDirs: string[]): string[] {
  const types = new Set<string>();
  for (const d of confDirs) {
    let files: string[] = [];
    try {
      files = readdirSync(d);
    } catch {
      continue;
    }
    for (const f of files) {
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(join(d, f), "utf8"));
      } catch {
        continue;
      }
      const plugins =
        raw && typeof raw === "object" && Array.isArray((raw as Record<string, unknown>).plugins)
          ? ((raw as Record<string, unknown>).plugins as unknown[])
          : [raw];
      for (const p of plugins) {
        if (!p || typeof p !== "object") continue;
        const o = p as Record<string, unknown>;
        if (typeof o.type === "string" && o.type) types.add(o.type);
        const ipam = o.ipam as Record<string, unknown> | undefined;
        if (ipam && typeof ipam.type === "string" && ipam.type) types.add(ipam.type);
      }
    }
  }
  return [...types];
}

/**
 * Why `requires` cannot be met by this plugin set on this machine, or undefined when it can.
 * - spec:X      every plugin the case uses (that the directory has) lists X in its VERSION answer;
 * - verb:GC|STATUS  the same plugins speak 1.1.0 (the verbs exist only there);
 * - plugin:NAME the directory has NAME and it answers VERSION (whether its verbs work is seen at run time);
 * - tool:nft|iptables|python3, ipv6  the machine has them;  impl:NAME  the set is that implementation.
 */
export function unmet(
  requires: readonly string[],
  used: readonly string[],
  set: PluginSet,
  machine: MachineFeatures,
): string | undefined {
  const present = used.filter((t) => set.versions[t]);
  for (const r of requires) {
    const [kind, arg = ""] = r.split(":", 2) as [string, string?];
    if (kind === "spec" || kind === "verb") {
      const v = kind === "spec" ? arg : "1.1.0";
      const lacking = present.filter((t) => !set.versions[t]!.includes(v));
      if (lacking.length > 0) {
        const t = lacking[0]!;
        const vs = set.versions[t]!;
        return `needs ${r}: ${t} speaks ${vs[0]}…${vs[vs.length - 1]}${kind === "verb" ? ` (${arg} exists from spec 1.1.0)` : ""}`;
      }
    } else if (kind === "plugin") {
      if (!set.versions[arg]) return `needs ${r}: no working ${arg} in ${set.dir}`;
    } else if (kind === "tool") {
      if (!(machine as unknown as Record<string, boolean>)[arg]) return `needs ${r}: ${arg} is not installed`;
    } else if (kind === "ipv6") {
      if (!machine.ipv6) return "needs ipv6: IPv6 is disabled on this machine";
    } else if (kind === "impl") {
      if (set.impl !== arg) return `needs ${r}: the plugins under test are ${set.impl}`;
    }
  }
  return undefined;
}
