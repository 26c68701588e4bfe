// Property: the config parsers never throw anything but a CniError, with a code the protocol documents for them,
// whatever JSON they get: random values, and valid configs with random mutations (deep keys included), through the
// same path a plugin takes (stdin bytes -> skel parseConfig -> the plugin's loader). Seeded (test/reliability/gen.ts):
// a failure names its seed and run; CNI_TS_SEED=<seed> replays it.
import { describe, expect, it } from "vitest";
import { loadHostLocalConfig, loadStoreLocation } from "../../ipam/host-local/config.js";
import { splitCniArgs } from "../../lib/cniargs.js";
import { CniError } from "../../lib/errors.js";
import { parseConfig } from "../../lib/skel.js";
import type { NetConf } from "../../lib/types.js";
import { loadBridgeConfig } from "../../plugins/bridge/config.js";
import { loadRoutesConfig } from "../../plugins/routes/config.js";
import { Gen, PROPERTY_RUNS, PROPERTY_SEED, report } from "../reliability/gen.js";

const BRIDGE = {
  cniVersion: "1.0.0",
  name: "net1",
  type: "bridge",
  bridge: "cni0",
  isGateway: true,
  isDefaultGateway: false,
  ipMasq: true,
  ipMasqBackend: "nftables",
  mtu: 1500,
  hairpinMode: true,
  vlanTrunk: [{ id: 5 }, { minID: 10, maxID: 20 }],
  portIsolation: "true",
  dns: { nameservers: ["10.0.0.10"], search: ["svc.cluster.local"], domain: "cluster.local" },
  runtimeConfig: { mac: "02:42:ac:11:00:02", ips: ["10.1.2.15/24"], ipRanges: [[{ subnet: "10.9.0.0/24" }]] },
  args: { cni: { ips: ["10.1.2.16"], mac: "02:42:ac:11:00:03" } },
  ipam: {
    type: "host-local",
    dataDir: "/var/lib/cni/networks",
    ranges: [
      [{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.20", gateway: "10.1.2.1" }],
      [{ subnet: "fd00::/64" }],
    ],
    routes: [{ dst: "0.0.0.0/0", gw: "10.1.2.1", mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }],
    gcGraceSeconds: 60,
  },
};

const ROUTES = {
  cniVersion: "1.1.0",
  name: "net1",
  type: "routes",
  addroutes: [
    { dst: "10.96.0.0/12", gw: "10.1.2.1", mtu: 1400, priority: 10, table: 100, scope: 0 },
    { dst: "fd00:96::/108" },
  ],
  delroutes: [{ dst: "0.0.0.0/0" }],
  flushroutes: false,
  flushgateway: true,
  skipcheck: false,
  interface: "eth0",
  hostRoutes: [
    { dst: "10.200.0.0/16", dev: "cni0" },
    { dst: "10.201.0.0/16", gw: "10.1.2.1" },
  ],
  args: { cni: { addroutes: [{ dst: "10.97.0.0/16" }], flushgateway: false } },
};

const KEYS = [
  ...new Set([
    ...Object.keys(BRIDGE),
    ...Object.keys(BRIDGE.ipam),
    ...Object.keys(ROUTES),
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "dst",
    "gw",
    "mtu",
    "advmss",
    "priority",
    "table",
    "scope",
    "dev",
    "id",
    "minID",
    "maxID",
    "nameservers",
    "ips",
    "mac",
    "cni",
    "prevResult",
    "cni.dev/valid-attachments",
    "resolvConf",
    "vlan",
    "enabledad",
    "disableContainerInterface",
    "macspoofchk",
    "promiscMode",
    "forceAddress",
    "__proto__",
  ]),
];

/** Run `f`: it must return, or throw a CniError whose code is in `codes`. Returns "ok" or the code. */
function only(codes: readonly number[], f: () => unknown, label: string): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (!(e instanceof CniError))
      throw new Error(`${label}: threw ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
    if (!codes.includes(e.code))
      throw new Error(`${label}: CniError code ${e.code} (${e.message}), expected one of ${codes.join(", ")}`);
    return String(e.code);
  }
}

describe(`config parsers on generated input (${PROPERTY_RUNS} runs each, seed ${PROPERTY_SEED})`, () => {
  it("stdin bytes -> parseConfig -> loadBridgeConfig / loadHostLocalConfig / loadStoreLocation / loadRoutesConfig: only CniErrors", {
    timeout: 900_000,
  }, () => {
    const g = new Gen(PROPERTY_SEED);
    const tally: Record<string, Record<string, number>> = {};
    const count = (parser: string, outcome: string) => {
      const t = tally[parser] ?? {};
      tally[parser] = t;
      t[outcome] = (t[outcome] ?? 0) + 1;
    };
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const label = `seed ${PROPERTY_SEED} run ${run}`;
      const r = g.next();
      const value = r < 0.45 ? g.mutate(BRIDGE, KEYS) : r < 0.8 ? g.mutate(ROUTES, KEYS) : g.json(4, KEYS);
      let text = JSON.stringify(value);
      if (g.chance(0.05)) text = text.slice(0, g.int(0, text.length)); // truncated
      let conf: NetConf | undefined;
      count(
        "parseConfig",
        only([1, 6, 7], () => (conf = parseConfig(Buffer.from(text))), `${label} parseConfig ${text.slice(0, 300)}`),
      );
      const args = (() => {
        try {
          return splitCniArgs(
            g.chance(0.5) ? undefined : g.chance(0.5) ? `IP=${g.string()};MAC=${g.string()}` : g.string(),
          );
        } catch (e) {
          expect(e).toBeInstanceOf(CniError);
          return new Map<string, string>();
        }
      })();
      // The loaders get what a plugin gives them: parseConfig's output. loadHostLocalConfig/loadStoreLocation take
      // `unknown`, so they also get the raw value.
      if (conf) {
        const c = conf;
        count(
          "loadBridgeConfig",
          only([2, 4, 7], () => loadBridgeConfig(c, args), `${label} loadBridgeConfig ${text.slice(0, 300)}`),
        );
        count(
          "loadRoutesConfig",
          only([2, 7], () => loadRoutesConfig(c), `${label} loadRoutesConfig ${text.slice(0, 300)}`),
        );
        count(
          "loadHostLocalConfig",
          only([7], () => loadHostLocalConfig(c, args.get("IP")), `${label} loadHostLocalConfig ${text.slice(0, 300)}`),
        );
      }
      count(
        "loadHostLocalConfig(raw)",
        only(
          [7],
          () => loadHostLocalConfig(value, g.chance(0.5) ? undefined : g.string()),
          `${label} loadHostLocalConfig(raw) ${text.slice(0, 300)}`,
        ),
      );
      count(
        "loadStoreLocation(raw)",
        only([7], () => loadStoreLocation(value), `${label} loadStoreLocation ${text.slice(0, 300)}`),
      );
    }
    report("property-config-parsers", { runs: PROPERTY_RUNS, outcomes: tally });
    // The mutations must reach past the first check often enough to mean something.
    expect(tally.loadBridgeConfig?.ok ?? 0).toBeGreaterThan(PROPERTY_RUNS / 20);
    expect(tally.loadRoutesConfig?.ok ?? 0).toBeGreaterThan(PROPERTY_RUNS / 20);
    expect(tally.loadHostLocalConfig?.ok ?? 0).toBeGreaterThan(PROPERTY_RUNS / 40);
  });

  it("parseConfig on random bytes and on mutated JSON text: only CniErrors 1, 6, 7", { timeout: 900_000 }, () => {
    const g = new Gen(PROPERTY_SEED ^ 0x51);
    const good = Buffer.from(JSON.stringify(BRIDGE));
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const b = Buffer.from(good);
      for (let i = g.int(1, 8); i > 0; i--) b[g.int(0, b.length - 1)] = g.int(0, 255);
      only(
        [1, 6, 7],
        () => parseConfig(b),
        `seed ${PROPERTY_SEED} run ${run} bytes ${b.toString("base64").slice(0, 200)}`,
      );
      const random = Buffer.from(Array.from({ length: g.int(0, 64) }, () => g.int(0, 255)));
      only(
        [1, 6, 7],
        () => parseConfig(random),
        `seed ${PROPERTY_SEED} run ${run} random ${random.toString("base64")}`,
      );
    }
  });
});
