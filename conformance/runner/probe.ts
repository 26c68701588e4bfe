/**
 * The VERSION probe exactly as libcni sends it (pkg/invoke `GetVersionInfo`, pkg/version `PluginDecoder`),
 * including its allowances for plugins older than the VERSION command.
 */
import { LATEST_VERSION } from "../../lib/version.js";
import { PluginError } from "./errors.js";
import { execPlugin, pluginEnv } from "./exec.js";
import { isObject } from "./json.js";

/** A plugin's VERSION answer. cniVersion is absent when the plugin predates VERSION and gave none. */
export interface VersionInfo {
  cniVersion?: string;
  supportedVersions: string[];
}

/** The answer of a plugin built on a skel that has no VERSION command. */
const LEGACY_ANSWER = "unknown CNI_COMMAND: VERSION";

/** libcni `PluginDecoder.Decode`: cniVersion is required; no supportedVersions is only allowed for "0.2.0". */
export function decodeVersionInfo(stdout: string): VersionInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (e) {
    throw new Error(`decoding version info: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new Error("decoding version info: not a JSON object");
  const { cniVersion, supportedVersions } = raw;
  if (cniVersion !== undefined && cniVersion !== null && typeof cniVersion !== "string")
    throw new Error("decoding version info: cniVersion must be a string");
  const supported = supportedVersions ?? [];
  if (!Array.isArray(supported) || supported.some((v) => typeof v !== "string"))
    throw new Error("decoding version info: supportedVersions must be an array of strings");
  if (!cniVersion) throw new Error("decoding version info: missing field cniVersion");
  if (supported.length === 0) {
    if (cniVersion === "0.2.0") return { cniVersion, supportedVersions: ["0.1.0", "0.2.0"] };
    throw new Error("decoding version info: missing field supportedVersions");
  }
  return { cniVersion, supportedVersions: supported as string[] };
}

/**
 * Run VERSION on one plugin file. The dummy NETNS/IFNAME/PATH satisfy skels that required them for every command;
 * an error whose text is exactly "unknown CNI_COMMAND: VERSION" means a pre-0.2.0 plugin: 0.1.0 only.
 */
export async function probeVersion(
  file: string,
  plugin: string,
  base: Record<string, string> | undefined,
  timeoutMs: number | undefined,
): Promise<VersionInfo> {
  const env = pluginEnv(base, { command: "VERSION", netns: "dummy", ifname: "dummy", path: "dummy" });
  const stdin = Buffer.from(JSON.stringify({ cniVersion: LATEST_VERSION }));
  let stdout: string;
  try {
    stdout = await execPlugin(file, stdin, env, {
      plugin,
      verb: "VERSION",
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });
  } catch (e) {
    if (e instanceof PluginError && e.goError === LEGACY_ANSWER) return { supportedVersions: ["0.1.0"] };
    throw e;
  }
  return decodeVersionInfo(stdout);
}
