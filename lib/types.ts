/**
 * The one internal result model (spec 1.1 shape) and the config shapes every plugin shares.
 * Results are built in this model and converted to the config's version only on output (lib/version).
 */

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
