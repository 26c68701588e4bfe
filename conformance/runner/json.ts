/** JSON helpers shared by the runner's modules. */

/** A plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Sorted keys at every depth: Go marshals `map[string]interface{}` that way, and libcni passes configs, capability
 * args and cached results through such maps, so matching it keeps our bytes comparable with a libcni runtime's.
 */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeysDeep(value[key]);
    return out;
  }
  return value;
}
