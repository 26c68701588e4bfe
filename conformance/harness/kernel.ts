/**
 * Reading kernel state inside one of the run's namespaces for the harness: the sandbox toolkit's concurrent
 * readers (sandbox/kernel-async.ts), under the names the engine uses.
 */
export {
  connect,
  type ConnectResult,
  inNs,
  type KLink,
  type KRoute,
  links,
  natMentions,
  natText,
  ping,
  routes,
  sysctls,
} from "../../sandbox/kernel-async.js";
export { NSENTER, type PingResult } from "../../sandbox/traffic.js";
