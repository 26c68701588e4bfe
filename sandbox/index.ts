/**
 * The sandbox toolkit: everything tests, the conformance harness, the lab and the benchmarks need to run plugins
 * against the real kernel without touching the machine's own network namespace. Dev-only: nothing under lib/,
 * plugins/, ipam/ or cmd/ imports it, so it never reaches the executable.
 *
 * - netns.ts: run ids, namespaces and temporary directories of one run, removed on cleanup, exit and signals
 * - exec.ts: running tools on the machine and inside a namespace
 * - tools.ts: the node-like PATH a plugin gets (no Node.js on it), and a PATH that records each tool started
 * - plugin.ts: running a plugin inside a node namespace with CNI_* env and stdin, timed
 * - kernel.ts / kernel-async.ts: reading links, addresses, routes, sysctls, iptables and nft state
 * - traffic.ts: ping and a TCP/UDP listener with its client
 * - topology.ts: veth pairs, addresses, switches between namespaces
 */
export * from "./exec.js";
export * from "./kernel.js";
export * from "./netns.js";
export * from "./plugin.js";
export * from "./tools.js";
export * from "./topology.js";
export * from "./traffic.js";
