/**
 * Results on the runtime side: reading a plugin's ADD output (libcni `fixupResultVersion` + `create.Create`) and
 * re-expressing a cached result at the list's current version (`GetAsVersion`).
 *
 * Results are handled as JSON objects re-encoded the way Go re-marshals its typed results (lib/version), so what
 * the next plugin sees as prevResult, and what the cache holds, is what libcni would send and store.
 */
import { CniError, ErrorCode } from "../../lib/errors.js";
import { formatResult, parseResult } from "../../lib/version.js";
import { errorText } from "./errors.js";
import { normalizeVersion } from "./version.js";

type Json = Record<string, unknown>;

/** A result's own non-empty cniVersion string, if it has one. */
function ownVersion(obj: Json): string | undefined {
  return typeof obj.cniVersion === "string" && obj.cniVersion !== "" ? obj.cniVersion : undefined;
}

/**
 * Re-encode at `version` as Go's typed result would print. Go's same-version path is a copy, not a conversion,
 * so where our formatter refuses (a 0.1.0/0.2.0 result without addresses) the object is kept as it came.
 */
function reencode(obj: Json, from: string, to: string): Json {
  const model = parseResult(obj, from);
  try {
    return formatResult(model, to);
  } catch (e) {
    if (from === to) return { ...obj, cniVersion: to };
    throw e;
  }
}

/**
 * A plugin's ADD stdout as a result: `null` is an empty result; a missing, empty or non-string cniVersion is the
 * config's (cni#895). Throws CniError code 6 (not JSON, not an object, a malformed field) or code 1 (a version
 * we cannot read).
 */
export function decodeResult(stdout: string, confVersion: string): Json {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `failed to unmarshal raw result: ${errorText(e)}`);
  }
  if (raw === null) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new CniError(ErrorCode.DecodingFailure, "failed to unmarshal raw result: not a JSON object");
  const obj = raw as Json;
  const version = ownVersion(obj) ?? normalizeVersion(confVersion);
  return reencode({ ...obj, cniVersion: version }, version, version);
}

/**
 * A cached result (a cache's `result`, or a legacy cache file's whole content) converted to the list version,
 * as libcni does before CHECK and DEL. A result without cniVersion is 0.1.0 there (`CreateFromBytes`).
 * Throws when it cannot be read or converted; the caller decides whether that is fatal.
 */
export function convertCachedResult(raw: unknown, listVersion: string): Json {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new Error("cached result is not a JSON object");
  const obj = raw as Json;
  const from = ownVersion(obj) ?? "0.1.0";
  const to = normalizeVersion(listVersion);
  try {
    return reencode(obj, from, to);
  } catch (e) {
    throw new Error(`failed to convert cached result to config version "${listVersion}": ${errorText(e)}`);
  }
}
