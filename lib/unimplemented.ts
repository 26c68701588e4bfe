/**
 * Verbs of a plugin whose issue has not landed yet: they answer VERSION and the about text like any plugin,
 * and every other verb says plainly that this build cannot do it (never a silent success).
 */
import { CniError, ErrorCode } from "./errors.js";
import type { PluginDefinition } from "./skel.js";

export function unimplementedVerbs(name: string): Pick<PluginDefinition, "add" | "del" | "check"> {
  const fail = async (): Promise<never> => {
    throw new CniError(ErrorCode.Internal, `${name}: not implemented in this build of cni-ts`, "use the reference plugin until cni-ts ships it");
  };
  return { add: fail, del: fail, check: fail };
}
