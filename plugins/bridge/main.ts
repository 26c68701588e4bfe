/** The `bridge` plugin's definition (the verbs arrive with the bridge issue). */
import type { PluginDefinition } from "../../lib/skel.js";
import { unimplementedVerbs } from "../../lib/unimplemented.js";

export const bridge: PluginDefinition = {
  name: "bridge",
  about: "CNI bridge plugin (cni-ts): a Linux bridge, a veth pair per pod, addresses from an IPAM plugin",
  netns: "required",
  argsKeys: ["MAC"],
  ...unimplementedVerbs("bridge"),
};
