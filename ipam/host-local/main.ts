/** The `host-local` IPAM plugin's definition (the verbs arrive with the host-local issue). */
import type { PluginDefinition } from "../../lib/skel.js";
import { unimplementedVerbs } from "../../lib/unimplemented.js";

export const hostLocal: PluginDefinition = {
  name: "host-local",
  about: "CNI host-local IPAM plugin (cni-ts): addresses from ranges, reserved on local disk",
  netns: "ignored",
  argsKeys: ["IP"],
  ...unimplementedVerbs("host-local"),
};
