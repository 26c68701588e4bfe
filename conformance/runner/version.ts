/**
 * Version arithmetic as the runtime side needs it: libcni reads versions more loosely than a plugin does
 * ("" is 0.1.0, "1.0" is 1.0.0), and the list version is negotiated from cniVersion and cniVersions.
 */
import { compareVersions, SUPPORTED_VERSIONS } from "../../lib/version.js";

const GO_VERSION = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

/**
 * Go's `version.ParseVersion` as x.y.z: "" means 0.1.0 (a config without cniVersion), missing parts are 0.
 * Throws on anything else, with libcni's wording.
 */
export function normalizeVersion(v: string): string {
  if (v === "") return "0.1.0";
  const m = GO_VERSION.exec(v);
  if (!m) throw new Error(`invalid version ${JSON.stringify(v)}`);
  return `${Number(m[1])}.${Number(m[2] ?? 0)}.${Number(m[3] ?? 0)}`;
}

/** libcni's `GreaterThanOrEqualTo(v, min)`, the gate of CHECK (0.4.0), DEL's prevResult (0.4.0), GC and STATUS (1.1.0). */
export function versionGate(v: string, min: string): boolean {
  return compareVersions(normalizeVersion(v), min) >= 0;
}

/** Like versionGate, but an unparsable version is simply "too old" (libcni ignores the error for GC and STATUS). */
export function versionGateLenient(v: string, min: string): boolean {
  try {
    return versionGate(v, min);
  } catch {
    return false;
  }
}

/**
 * The list version: the highest of cniVersion and cniVersions that we support (lib SUPPORTED_VERSIONS).
 * Without cniVersions, cniVersion is taken as written, even an unsupported one, so a conformance run can send a
 * plugin a version it must refuse. When nothing in the union is supported, cniVersion stays as written (libcni's
 * fallback when every entry is newer than it).
 */
export function negotiateVersion(cniVersion: string, cniVersions: readonly string[] | undefined): string {
  if (cniVersions === undefined) return cniVersion;
  const candidates = [...cniVersions, ...(cniVersion !== "" ? [cniVersion] : [])].filter((v) =>
    SUPPORTED_VERSIONS.includes(v),
  );
  if (candidates.length === 0) return cniVersion;
  return candidates.reduce((best, v) => (compareVersions(v, best) > 0 ? v : best));
}
