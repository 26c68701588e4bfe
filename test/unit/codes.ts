import { CniError } from "../../lib/errors.js";

/** The CNI error code `f` throws (-1 for anything that is not a CniError), or undefined when it does not throw. */
export function codeOf(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CniError ? e.code : -1;
  }
  return undefined;
}
