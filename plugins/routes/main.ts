/** The `routes` plugin's definition (the verbs arrive with the routes issue). */
import type { PluginDefinition } from "../../lib/skel.js";
import { unimplementedVerbs } from "../../lib/unimplemented.js";

export const routes: PluginDefinition = {
  name: "routes",
  about: "CNI routes plugin (cni-ts): route shaping inside the pod and on the node",
  netns: "required",
  ...unimplementedVerbs("routes"),
};
