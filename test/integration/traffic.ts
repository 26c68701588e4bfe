/**
 * Real traffic for integration tests: the sandbox toolkit's listener (TCP and UDP on one dual-stack port) in a pod
 * namespace, and its one-shot client in any namespace. Every answer names the protocol and the address the pod
 * saw, so a test can tell a masqueraded connection from a direct one.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import type { Ns } from "../../sandbox/netns.js";
import { clientArgv, type Proto, startListener, stopAllListeners, stopListener } from "../../sandbox/traffic.js";

export type { Proto } from "../../sandbox/traffic.js";

/** The port the listener binds in the pod. */
export const POD_PORT = 80;

/** Kill every listener still running (afterAll). */
export const stopAll = stopAllListeners;
export const stop = stopListener;

/** Start the listener in a pod; resolves once it is bound. */
export function serve(pod: Ns): Promise<ChildProcess> {
  return startListener(pod.path, POD_PORT);
}

/** One request from namespace `ns` to host:port; the pod's answer ("hello tcp from 1.2.3.4"), or undefined. */
export function talk(ns: Ns, host: string, port: number, proto: Proto): string | undefined {
  const r = spawnSync("ip", ["netns", "exec", ns.name, ...clientArgv(host, port, proto, "hello")], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const answer = (proto: Proto, from: string) => `hello ${proto} from ${from}`;
