/**
 * The request configuration a plugin receives on stdin (SPEC.md section 3, libcni `buildOneConfig`,
 * `injectRuntimeConfig`, `InjectConf`).
 *
 * @example
 *   buildRequest(plugin, { name: "net", cniVersion: "1.1.0", prevResult }, { portMappings: [...] });
 */
import { sortKeysDeep } from "./json.js";

type Json = Record<string, unknown>;

/**
 * libcni `injectRuntimeConfig`: the capability args whose names the plugin enables in `capabilities`.
 * Undefined when nothing matched, so a static `runtimeConfig` written in the file survives.
 */
export function matchCapabilities(plugin: Json, capabilityArgs: Json | undefined): Json | undefined {
  const caps = plugin.capabilities;
  if (!capabilityArgs || caps === null || typeof caps !== "object") return undefined;
  const rc: Json = {};
  for (const [name, enabled] of Object.entries(caps as Json)) {
    if (enabled === true && Object.hasOwn(capabilityArgs, name)) rc[name] = capabilityArgs[name];
  }
  return Object.keys(rc).length > 0 ? rc : undefined;
}

/**
 * The stdin bytes for one plugin: the plugin object with `inject` set over it (name, cniVersion, prevResult,
 * cni.dev/* keys; undefined values are skipped) and, when `capabilityArgs` is given (ADD/CHECK/DEL), the
 * matched runtimeConfig. Key order follows libcni byte for byte in structure: every map is sorted, while a
 * prevResult keeps its result-type field order unless a runtimeConfig injection re-decoded it into a map.
 */
export function buildRequest(plugin: Json, inject: Json, capabilityArgs?: Json): Buffer {
  const conf: Json = { ...plugin };
  for (const [key, value] of Object.entries(inject)) if (value !== undefined) conf[key] = value;
  const rc = matchCapabilities(plugin, capabilityArgs);
  if (rc) conf.runtimeConfig = rc;
  const out: Json = {};
  for (const key of Object.keys(conf).sort()) {
    out[key] = key === "prevResult" && !rc ? conf[key] : sortKeysDeep(conf[key]);
  }
  return Buffer.from(JSON.stringify(out));
}
