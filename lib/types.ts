/**
 * The one internal result model (spec 1.1 shape) and the config shapes every plugin shares.
 * Results are built in this model and converted to the config's version only on output (lib/version).
 */
import { GO_ANY, goList, goMap, goStruct } from "./gojson.js";

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** CIDR: the address with its subnet prefix, e.g. "10.1.2.3/24". */
  address: string;
  gateway?: string;
  /** Index into Result.interfaces. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** The keys of a plugin configuration object every plugin understands (SPEC.md section 1 and 3). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: DNS;
  args?: { cni?: Record<string, unknown>; [key: string]: unknown };
  runtimeConfig?: Record<string, unknown>;
  /** Raw prevResult as received; parse it with lib/version parseResult. */
  prevResult?: unknown;
  [key: string]: unknown;
}

/** One attachment, as GC names them in cni.dev/valid-attachments. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

// The reference's struct layouts of these types, for Go's key rule (lib/gojson.ts): a key that matches a field
// case-insensitively is read as that field, as `encoding/json` reads it into the Go types named below.

/** `types.Route` (every spec 1.1 field). */
export const ROUTE_SHAPE = goStruct({
  dst: GO_ANY,
  gw: GO_ANY,
  mtu: GO_ANY,
  advmss: GO_ANY,
  priority: GO_ANY,
  table: GO_ANY,
  scope: GO_ANY,
});

/** `types.DNS`. */
export const DNS_SHAPE = goStruct({ nameservers: GO_ANY, domain: GO_ANY, search: GO_ANY, options: GO_ANY });

/** `allocator.Range` (host-local's `ranges` entries and the `ipRanges` capability). */
export const RANGE_SHAPE = goStruct({ subnet: GO_ANY, rangeStart: GO_ANY, rangeEnd: GO_ANY, gateway: GO_ANY });

/** A result of any version: the union of `types100.Result`, `types040.Result` and `types020.Result`. */
export const RESULT_SHAPE = goStruct({
  cniVersion: GO_ANY,
  interfaces: goList(
    goStruct({ name: GO_ANY, mac: GO_ANY, mtu: GO_ANY, sandbox: GO_ANY, socketPath: GO_ANY, pciID: GO_ANY }),
  ),
  ips: goList(goStruct({ version: GO_ANY, interface: GO_ANY, address: GO_ANY, gateway: GO_ANY })),
  routes: goList(ROUTE_SHAPE),
  dns: DNS_SHAPE,
  ip4: goStruct({ ip: GO_ANY, gateway: GO_ANY, routes: goList(ROUTE_SHAPE) }),
  ip6: goStruct({ ip: GO_ANY, gateway: GO_ANY, routes: goList(ROUTE_SHAPE) }),
});

/**
 * `types.PluginConf`, the keys every plugin reads; a plugin's own config extends it (`goExtend`). `capabilities` is
 * a map (keys exact); `prevResult` is a map too, read as RESULT_SHAPE by lib/version's parseResult.
 */
export const PLUGIN_CONF_SHAPE = goStruct({
  cniVersion: GO_ANY,
  name: GO_ANY,
  type: GO_ANY,
  capabilities: goMap(GO_ANY),
  ipam: goStruct({ type: GO_ANY }),
  dns: DNS_SHAPE,
  prevResult: GO_ANY,
  "cni.dev/valid-attachments": goList(goStruct({ containerID: GO_ANY, ifname: GO_ANY })),
});

/** The well-known capability arguments (CONVENTIONS.md) as `runtimeConfig` fields, for the plugins that read them. */
export const CAPABILITY_SHAPES = {
  portMappings: goList(goStruct({ hostPort: GO_ANY, containerPort: GO_ANY, protocol: GO_ANY, hostIP: GO_ANY })),
  ipRanges: goList(goList(RANGE_SHAPE)),
  bandwidth: goStruct({ ingressRate: GO_ANY, ingressBurst: GO_ANY, egressRate: GO_ANY, egressBurst: GO_ANY }),
  dns: goStruct({ servers: GO_ANY, searches: GO_ANY, options: GO_ANY }),
  ips: goList(GO_ANY),
  mac: GO_ANY,
} as const;
