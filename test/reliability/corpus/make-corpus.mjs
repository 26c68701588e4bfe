#!/usr/bin/env node
// Writes the hostile-input corpus of test/reliability/corpus.test.ts: one JSON file per input, in this directory.
// The files are the corpus (review them, add to them by hand or here); this script only saves typing:
//   node test/reliability/corpus/make-corpus.mjs        (rewrites every generated file, removes none)
//
// A file:
//   { "name": "...", "plugin": "bridge" | "host-local", "command": "ADD" (default) | "DEL" | ...,
//     "env": { "CNI_X": "value" | null (removed) },              overrides of the runtime's environment
//     "stdin": "text" | { "json": value } | { "repeat": "s", "times": n } | { "base64": "..." } | [ parts... ],
//     "expectedCode": n   (0: the input is accepted: ADD must succeed, and DEL then leaves the node as before),
//     "note": "why", "soakOnly": true (too slow for npm test), "knownBug": "what is wrong (see docs/reliability.md)" }
// Placeholders, replaced in env values and stdin text by the runner: ${DATA_DIR} (the lab's host-local dataDir),
// ${POD_NETNS} (a pod namespace), ${CNI_PATH} (the plugins), ${DELEGATES} (CNI_PATH with hostile IPAM scripts and
// host-local), ${REGULAR_FILE}, ${DIRECTORY}, ${MISSING} (a path that does not exist), ${FIFO} (a named pipe).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const cases = [];
const add = (file, c) => cases.push([file, c]);

const ipam = () => ({ type: "host-local", dataDir: "${DATA_DIR}", ranges: [[{ subnet: "10.94.0.0/24" }], [{ subnet: "fd94::/64" }]], routes: [{ dst: "0.0.0.0/0" }] });
const bridge = (over = {}) => ({ cniVersion: "1.0.0", name: "corpus", type: "bridge", bridge: "cni0", isGateway: true, ipMasq: true, ipMasqBackend: "nftables", ipam: ipam(), ...over });
const withIpam = (over) => bridge({ ipam: { ...ipam(), ...over } });
const json = (value) => ({ json: value });
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);

// --- 1. malformed and huge stdin -------------------------------------------------------------------------------------
const good = JSON.stringify(bridge());
add("json-truncated", { name: "truncated JSON (cut in the middle of ipam)", plugin: "bridge", stdin: good.slice(0, good.indexOf('"ranges"')), expectedCode: 6 });
add("json-truncated-string", { name: "truncated inside a string", plugin: "bridge", stdin: '{"cniVersion":"1.0', expectedCode: 6 });
add("json-empty", { name: "empty stdin", plugin: "bridge", stdin: "", expectedCode: 6 });
add("json-whitespace", { name: "only whitespace", plugin: "bridge", stdin: " \n\t ", expectedCode: 6 });
add("json-array", { name: "a JSON array", plugin: "bridge", stdin: json([bridge()]), expectedCode: 6 });
add("json-null", { name: "JSON null", plugin: "bridge", stdin: "null", expectedCode: 6 });
add("json-string", { name: "a JSON string", plugin: "bridge", stdin: '"bridge"', expectedCode: 6 });
add("json-two-objects", { name: "two JSON objects", plugin: "bridge", stdin: good + good, expectedCode: 6 });
add("json-bom", { name: "a UTF-8 byte order mark before the object", plugin: "bridge", stdin: "\ufeff" + good, expectedCode: 6, note: "Go's decoder refuses it too" });
add("json-nested-100k-array", { name: "100,000 nested arrays", plugin: "bridge", stdin: [{ repeat: "[", times: 100000 }, { repeat: "]", times: 100000 }], expectedCode: 6 });
add("json-nested-100k-truncated", { name: "100,000 opening brackets, never closed", plugin: "bridge", stdin: { repeat: "[", times: 100000 }, expectedCode: 6 });
add("json-nested-100k-objects-truncated", { name: '100,000 nested {"a": objects, never closed', plugin: "bridge", stdin: { repeat: '{"a":', times: 100000 }, expectedCode: 6 });
add("json-nested-100k-in-ranges", {
  name: "100,000 nested arrays as ipam.ranges",
  plugin: "bridge",
  stdin: [good.slice(0, good.indexOf('"ranges":') + 9), { repeat: "[", times: 100000 }, { repeat: "]", times: 100000 }, good.slice(good.indexOf(',"routes"'))],
  expectedCode: 6,
  note: "Go's encoding/json refuses nesting deeper than 10,000 (the reference: code 6 \"exceeded max depth\"); so does lib/gojson.ts",
});
add("json-nested-100k-unknown-key", {
  name: "100,000 nested arrays under an unknown key of an otherwise valid config",
  plugin: "bridge",
  stdin: [good.slice(0, -1), ',"x-deep":', { repeat: "[", times: 100000 }, { repeat: "]", times: 100000 }, "}"],
  expectedCode: 6,
  note: "the depth limit holds wherever the nesting is, as in the reference (code 6 \"exceeded max depth\")",
});
add("json-nested-100k-prevresult-del", {
  name: "DEL with 100,000 nested objects as prevResult",
  plugin: "bridge",
  command: "DEL",
  stdin: [good.slice(0, -1), ',"prevResult":', { repeat: '{"a":', times: 100000 }, "1", { repeat: "}", times: 100000 }, "}"],
  expectedCode: 6,
  note: "a stdin Go cannot decode is refused before any plugin logic, DEL included, as by the reference; nothing changes",
});
add("stdin-10mb-spaces", { name: "10 MB of spaces", plugin: "bridge", stdin: { repeat: " ", times: 10 * 1024 * 1024 }, expectedCode: 5 });
add("stdin-10mb-valid-json", { name: "a valid config padded to 10 MB", plugin: "bridge", stdin: [good.slice(0, -1), ',"pad":"', { repeat: "a", times: 10 * 1024 * 1024 }, '"}'], expectedCode: 5 });
add("stdin-just-over-1mib", { name: "a valid config of 1 MiB + 1 byte", plugin: "bridge", stdin: [good.slice(0, -1), ',"pad":"', { repeat: "a", times: 1024 * 1024 + 1 - good.length - 9 }, '"}'], expectedCode: 5 });
add("stdin-10mb-host-local", { name: "10 MB of JSON to host-local", plugin: "host-local", stdin: { repeat: "[", times: 10 * 1024 * 1024 }, expectedCode: 5 });
add("json-invalid-utf8-name", { name: "network name with invalid UTF-8 bytes", plugin: "bridge", stdin: { base64: Buffer.concat([Buffer.from('{"cniVersion":"1.0.0","name":"a'), Buffer.from([0xff, 0xfe]), Buffer.from(good.slice(good.indexOf('","type"')))]).toString("base64") }, expectedCode: 7 });
add("json-duplicate-name", { name: "duplicate name key, the last one a traversal", plugin: "bridge", stdin: good.replace('"name":"corpus"', '"name":"corpus","name":"../x"'), expectedCode: 7 });
add("json-proto-key", { name: '"__proto__" key carrying ipMasqBackend "bogus"', plugin: "bridge", stdin: good.slice(0, -1) + ',"__proto__":{"ipMasqBackend":"bogus","bridge":"../x"}}', expectedCode: 0, note: "JSON.parse makes __proto__ an own key: no prototype pollution, and it is an unknown key" });
add("cniversion-unsupported", { name: "cniVersion 1.2.0", plugin: "bridge", stdin: json(bridge({ cniVersion: "1.2.0" })), expectedCode: 1 });
add("cniversion-number", { name: "cniVersion as a number", plugin: "bridge", stdin: json(bridge({ cniVersion: 1 })), expectedCode: 6, note: "a decoding failure in the reference's skel (code 6)" });
add("cniversion-trailing-space", { name: 'cniVersion "1.0.0 "', plugin: "bridge", stdin: json(bridge({ cniVersion: "1.0.0 " })), expectedCode: 1 });

// --- 2. wrong types for every key -------------------------------------------------------------------------------------
const WRONG = { bool: ["yes", 1, {}], string: [1, true, ["cni0"]], int: ["1500", 1.5, true], object: ["x", 1, []], array: ["x", 1, {}] };
const bridgeKeys = {
  bridge: "string",
  isGateway: "bool",
  isDefaultGateway: "bool",
  forceAddress: "bool",
  ipMasq: "bool",
  ipMasqBackend: "string",
  mtu: "int",
  hairpinMode: "bool",
  promiscMode: "bool",
  vlan: "int",
  vlanTrunk: "array",
  preserveDefaultVlan: "bool",
  enabledad: "bool",
  macspoofchk: "bool",
  disableContainerInterface: "bool",
  portIsolation: "bool",
  ipam: "object",
  dns: "object",
  args: "object",
  runtimeConfig: "object",
  name: "string",
  cniVersion: "string",
};
// Keys that a plugin does not read for ADD: any type is accepted, as the reference does (Go would refuse some
// types while decoding into its struct; documented in docs/reliability.md).
const IGNORED = { type: "string", capabilities: "object", prevResult: "object" };
for (const [key, kind] of Object.entries({ ...bridgeKeys, ...IGNORED })) {
  for (const v of WRONG[kind]) {
    const ignored = key in IGNORED;
    add(`type-bridge-${key}-${slug(JSON.stringify(v)) || "obj"}-${typeof v === "object" ? (Array.isArray(v) ? "array" : "object") : typeof v}`, {
      name: `bridge ${key}: ${JSON.stringify(v)} (${kind} expected)`,
      plugin: "bridge",
      stdin: json(bridge({ [key]: v })),
      // The reference's skel decodes name and cniVersion as strings before anything else: a wrong type is code 6.
      expectedCode: ignored ? 0 : key === "name" || key === "cniVersion" ? 6 : 7,
      ...(ignored ? { note: `${key} is not read by the plugin: accepted` } : {}),
    });
  }
}
const ipamKeys = { type: "string", ranges: "array", subnet: "string", rangeStart: "string", rangeEnd: "string", gateway: "string", routes: "array", dataDir: "string", resolvConf: "string" };
for (const [key, kind] of Object.entries(ipamKeys)) {
  for (const v of WRONG[kind]) {
    const extra = ["rangeStart", "rangeEnd", "gateway"].includes(key) ? { subnet: "10.95.0.0/24" } : {};
    add(`type-ipam-${key}-${typeof v === "object" ? (Array.isArray(v) ? "array" : "object") : typeof v}`, {
      name: `ipam.${key}: ${JSON.stringify(v)} (${kind} expected)`,
      plugin: "host-local",
      stdin: json(withIpam({ ...extra, [key]: v })),
      expectedCode: 7,
    });
  }
}
const rangeKeys = { subnet: "string", rangeStart: "string", rangeEnd: "string", gateway: "string" };
for (const [key, kind] of Object.entries(rangeKeys)) {
  for (const v of WRONG[kind].slice(0, 2)) {
    add(`type-range-${key}-${typeof v}`, { name: `ipam.ranges[0][0].${key}: ${JSON.stringify(v)}`, plugin: "host-local", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24", [key]: v }]] })), expectedCode: 7 });
  }
}
add("type-range-not-object", { name: "a range that is a string", plugin: "host-local", stdin: json(withIpam({ ranges: [["10.94.0.0/24"]] })), expectedCode: 7 });
const routeKeys = { dst: "string", gw: "string", mtu: "int", advmss: "int", priority: "int", table: "int", scope: "int" };
for (const [key, kind] of Object.entries(routeKeys)) {
  for (const v of WRONG[kind].slice(0, 2)) {
    add(`type-route-${key}-${typeof v}`, { name: `ipam.routes[0].${key}: ${JSON.stringify(v)}`, plugin: "host-local", stdin: json(withIpam({ routes: [{ dst: "0.0.0.0/0", [key]: v }] })), expectedCode: 7 });
  }
}
add("type-gc-grace-string-add", {
  name: 'ipam.gcGraceSeconds "60" on ADD',
  plugin: "host-local",
  stdin: json(withIpam({ gcGraceSeconds: "60" })),
  expectedCode: 7,
});
add("type-gc-grace-string-gc", { name: 'ipam.gcGraceSeconds "60" on GC', plugin: "host-local", command: "GC", stdin: json({ ...withIpam({ gcGraceSeconds: "60" }), cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }), expectedCode: 7 });
add("type-dns-nameservers", { name: "dns.nameservers a string", plugin: "bridge", stdin: json(bridge({ dns: { nameservers: "10.0.0.10" } })), expectedCode: 7 });
add("type-vlantrunk-id-string", { name: 'vlanTrunk [{"id": "5"}]', plugin: "bridge", stdin: json(bridge({ isGateway: false, vlanTrunk: [{ id: "5" }] })), expectedCode: 7 });
add("type-args-cni-ips-string", { name: "args.cni.ips a string", plugin: "bridge", stdin: json(bridge({ args: { cni: { ips: "10.94.0.9" } } })), expectedCode: 7 });
add("type-args-cni-mac-number", { name: "args.cni.mac a number", plugin: "bridge", stdin: json(bridge({ args: { cni: { mac: 5 } } })), expectedCode: 7 });
add("type-runtimeconfig-ipranges-object", { name: "runtimeConfig.ipRanges an object", plugin: "bridge", stdin: json(bridge({ runtimeConfig: { ipRanges: { subnet: "10.94.0.0/24" } } })), expectedCode: 7 });
add("type-valid-attachments-string", { name: "GC with cni.dev/valid-attachments a string", plugin: "bridge", command: "GC", stdin: json({ ...bridge({ cniVersion: "1.1.0" }), "cni.dev/valid-attachments": "all" }), expectedCode: 7 });
add("type-valid-attachments-entry", { name: "GC with a valid-attachments entry lacking ifname", plugin: "bridge", command: "GC", stdin: json({ ...bridge({ cniVersion: "1.1.0" }), "cni.dev/valid-attachments": [{ containerID: "x" }] }), expectedCode: 7 });

// --- 3. unknown keys: accepted ----------------------------------------------------------------------------------------
add("unknown-top-level", { name: "unknown top-level key", plugin: "bridge", stdin: json(bridge({ foo: { bar: [1, 2] } })), expectedCode: 0, note: "accepted, as by the reference (SPEC: plugins may ignore unknown fields)" });
add("unknown-ipam-key", { name: "unknown ipam key", plugin: "bridge", stdin: json(withIpam({ foo: "bar" })), expectedCode: 0, note: "accepted" });
add("unknown-range-key", { name: "unknown key in a range", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24", foo: 1 }]] })), expectedCode: 0, note: "accepted" });
add("unknown-route-key", { name: 'unknown key "via" in an ipam route', plugin: "bridge", stdin: json(withIpam({ routes: [{ dst: "10.200.0.0/16", via: "10.94.0.1" }] })), expectedCode: 0, note: "accepted by host-local (the routes plugin refuses unknown route keys)" });
add("unknown-cni-args-ignored", { name: "unknown CNI_ARGS key with IgnoreUnknown=1", plugin: "bridge", env: { CNI_ARGS: "IgnoreUnknown=1;FOO=bar" }, stdin: json(bridge()), expectedCode: 0 });

// --- 4. names ---------------------------------------------------------------------------------------------------------
const HOSTILE_NAMES = { traversal: "../x", slash: "a/b", nul: "a\u0000b", newline: "a\nb", space: "a b", dash: "-a", long300: "n".repeat(300), dot: ".", dotdot: "..", quote: 'a"b', semicolon: "a;b" };
for (const [label, v] of Object.entries(HOSTILE_NAMES)) {
  add(`name-network-${label}`, { name: `network name ${JSON.stringify(v.slice(0, 20))}`, plugin: "bridge", stdin: json(bridge({ name: v })), expectedCode: 7 });
  add(`name-bridge-${label}`, { name: `bridge name ${JSON.stringify(v.slice(0, 20))}`, plugin: "bridge", stdin: json(bridge({ bridge: v })), expectedCode: 7 });
  add(`name-ipam-type-${label}`, { name: `ipam.type ${JSON.stringify(v.slice(0, 20))}`, plugin: "bridge", stdin: json(withIpam({ type: v })), expectedCode: 7 });
  if (label !== "nul") {
    // A NUL byte cannot be passed in an environment variable at all (execve strings end at it).
    add(`name-containerid-${label}`, { name: `CNI_CONTAINERID ${JSON.stringify(v.slice(0, 20))}`, plugin: "bridge", env: { CNI_CONTAINERID: v }, stdin: json(bridge()), expectedCode: 4 });
    add(`name-ifname-${label}`, { name: `CNI_IFNAME ${JSON.stringify(v.slice(0, 20))}`, plugin: "bridge", env: { CNI_IFNAME: v }, stdin: json(bridge()), expectedCode: 4 });
  }
  add(`name-network-${label}-host-local-del`, { name: `host-local DEL with network name ${JSON.stringify(v.slice(0, 20))}`, plugin: "host-local", command: "DEL", stdin: json(bridge({ name: v })), expectedCode: 7 });
}
add("name-ifname-16-bytes", { name: "CNI_IFNAME of 16 bytes", plugin: "bridge", env: { CNI_IFNAME: "e".repeat(16) }, stdin: json(bridge()), expectedCode: 4 });
add("name-ifname-colon", { name: "CNI_IFNAME eth0:1", plugin: "bridge", env: { CNI_IFNAME: "eth0:1" }, stdin: json(bridge()), expectedCode: 4 });
add("name-network-cni-ts", { name: "network name .cni-ts (our index directory)", plugin: "bridge", stdin: json(bridge({ name: ".cni-ts" })), expectedCode: 7 });
add("name-datadir-relative", { name: "ipam.dataDir relative", plugin: "bridge", stdin: json(withIpam({ dataDir: "var/lib/cni" })), expectedCode: 7 });
add("name-datadir-dotdot", { name: "ipam.dataDir with ..", plugin: "bridge", stdin: json(withIpam({ dataDir: "${DATA_DIR}/../x" })), expectedCode: 7 });
add("name-datadir-nul", { name: "ipam.dataDir with NUL", plugin: "bridge", stdin: json(withIpam({ dataDir: "${DATA_DIR}\u0000x" })), expectedCode: 7 });
add("name-resolvconf-missing", { name: "ipam.resolvConf a missing file", plugin: "bridge", stdin: json(withIpam({ resolvConf: "${MISSING}" })), expectedCode: 7 });
add("name-resolvconf-directory", { name: "ipam.resolvConf a directory", plugin: "bridge", stdin: json(withIpam({ resolvConf: "${DIRECTORY}" })), expectedCode: 7 });
add("name-resolvconf-fifo", {
  name: "ipam.resolvConf a named pipe nobody writes to",
  plugin: "host-local",
  stdin: json(withIpam({ resolvConf: "${FIFO}" })),
  expectedCode: 7,
});
add("name-resolvconf-dev-zero", {
  name: "ipam.resolvConf /dev/zero",
  plugin: "host-local",
  stdin: json(withIpam({ resolvConf: "/dev/zero" })),
  expectedCode: 7,
});
add("mac-multicast-args", { name: "CNI_ARGS MAC multicast", plugin: "bridge", env: { CNI_ARGS: "MAC=ff:ff:ff:ff:ff:ff" }, stdin: json(bridge()), expectedCode: 4 });
add("mac-runtimeconfig-garbage", { name: "runtimeConfig.mac garbage", plugin: "bridge", stdin: json(bridge({ runtimeConfig: { mac: "zz:zz" } })), expectedCode: 7 });
add("cni-args-control-chars", { name: "CNI_ARGS value with a newline", plugin: "bridge", env: { CNI_ARGS: "K8S_POD_NAME=a\nb" }, stdin: json(bridge()), expectedCode: 4 });
add("cni-args-70kb", { name: "CNI_ARGS of 70 KB", plugin: "bridge", env: { CNI_ARGS: `K8S_POD_NAME=${"a".repeat(70_000)}` }, stdin: json(bridge()), expectedCode: 4 });
add("cni-args-unknown", { name: "unknown CNI_ARGS key", plugin: "bridge", env: { CNI_ARGS: "FOO=bar" }, stdin: json(bridge()), expectedCode: 4 });
add("cni-args-no-equals", { name: "CNI_ARGS pair without =", plugin: "bridge", env: { CNI_ARGS: "IP" }, stdin: json(bridge()), expectedCode: 4 });
add("cni-command-lowercase", { name: "CNI_COMMAND add", plugin: "bridge", env: { CNI_COMMAND: "add" }, stdin: json(bridge()), expectedCode: 4 });

// --- 5. addresses ------------------------------------------------------------------------------------------------------
add("ip-mapped-subnet", { name: "IPv4-mapped IPv6 subnet ::ffff:10.94.0.0/120", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "::ffff:10.94.0.0/120" }]] })), expectedCode: 7 });
add("ip-mapped-rangestart", { name: "IPv4-mapped rangeStart", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "fd94::/64", rangeStart: "::ffff:10.94.0.5" }]] })), expectedCode: 7 });
add("ip-mapped-gateway", { name: "IPv4-mapped gateway", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24", gateway: "::ffff:10.94.0.1" }]] })), expectedCode: 7 });
add("ip-mapped-cni-args", { name: "CNI_ARGS IP=::ffff:10.94.0.5", plugin: "bridge", env: { CNI_ARGS: "IP=::ffff:10.94.0.5" }, stdin: json(bridge()), expectedCode: 7 });
add("ip-mapped-args-cni-ips", { name: "args.cni.ips [::ffff:10.94.0.5]", plugin: "bridge", stdin: json(bridge({ args: { cni: { ips: ["::ffff:10.94.0.5"] } } })), expectedCode: 7 });
add("ip-mapped-runtimeconfig-ips", { name: "runtimeConfig.ips [::ffff:10.94.0.5/24]", plugin: "bridge", stdin: json(bridge({ runtimeConfig: { ips: ["::ffff:10.94.0.5/24"] } })), expectedCode: 7 });
add("ip-mapped-route", { name: "ipam route dst ::ffff:0:0/96", plugin: "bridge", stdin: json(withIpam({ routes: [{ dst: "::ffff:0:0/96" }] })), expectedCode: 7 });
add("ip-host-bits-v4", { name: "subnet 10.94.0.1/24 (host bits)", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.1/24" }]] })), expectedCode: 7 });
add("ip-host-bits-v6", { name: "subnet fd94::1/64 (host bits)", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "fd94::1/64" }]] })), expectedCode: 7 });
add("ip-host-bits-legacy", { name: "legacy ipam.subnet 10.94.0.7/24", plugin: "bridge", stdin: json(bridge({ ipam: { type: "host-local", dataDir: "${DATA_DIR}", subnet: "10.94.0.7/24" } })), expectedCode: 7 });
add("ip-overlap-in-set", { name: "overlapping ranges in one set", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24" }, { subnet: "10.94.0.0/25" }]] })), expectedCode: 7 });
add("ip-overlap-sets", { name: "overlapping range sets", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24" }], [{ subnet: "10.94.0.128/25" }]] })), expectedCode: 7 });
add("ip-overlap-runtime-ipranges", { name: "runtimeConfig.ipRanges overlapping ipam.ranges", plugin: "bridge", stdin: json(bridge({ runtimeConfig: { ipRanges: [[{ subnet: "10.94.0.0/16" }]] } })), expectedCode: 7 });
add("ip-overlap-same-range-twice", { name: "the same range in two sets", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "fd94::/64" }], [{ subnet: "fd94::/64" }]] })), expectedCode: 7 });
add("ip-prefix-32", { name: "a /32 subnet", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.5/32" }]] })), expectedCode: 7 });
add("ip-prefix-33", { name: "prefix /33", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/33" }]] })), expectedCode: 7 });
add("ip-start-after-end", { name: "rangeStart after rangeEnd", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "10.94.0.0/24", rangeStart: "10.94.0.50", rangeEnd: "10.94.0.10" }]] })), expectedCode: 7 });
add("ip-leading-zeros", { name: "subnet 010.94.0.0/24 (octal-looking)", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "010.94.0.0/24" }]] })), expectedCode: 7 });
add("ip-zone", { name: "IPv6 with a zone fe80::1%eth0", plugin: "bridge", stdin: json(withIpam({ ranges: [[{ subnet: "fd94::/64", gateway: "fe80::1%eth0" }]] })), expectedCode: 7 });
add("ip-requested-outside", { name: "requested IP outside every range", plugin: "bridge", env: { CNI_ARGS: "IP=192.0.2.5" }, stdin: json(bridge()), expectedCode: 7 });
add("ip-requested-gateway", { name: "requested IP = the gateway", plugin: "bridge", env: { CNI_ARGS: "IP=10.94.0.1" }, stdin: json(bridge()), expectedCode: 7 });
add("ip-requested-garbage", { name: "requested IP garbage", plugin: "bridge", env: { CNI_ARGS: "IP=10.94.0.300" }, stdin: json(bridge()), expectedCode: 7 });
add("ip-route-gw-family", { name: "ipam route with an IPv6 gw for an IPv4 dst", plugin: "bridge", stdin: json(withIpam({ routes: [{ dst: "10.200.0.0/16", gw: "fd94::1" }] })), expectedCode: 100, note: "host-local accepts it (as the reference); the kernel refuses the route and bridge ADD rolls back" });

// --- 6. CNI_NETNS and CNI_PATH ---------------------------------------------------------------------------------------
add("netns-regular-file", { name: "CNI_NETNS a regular file", plugin: "bridge", env: { CNI_NETNS: "${REGULAR_FILE}" }, stdin: json(bridge()), expectedCode: 4 });
add("netns-directory", { name: "CNI_NETNS a directory", plugin: "bridge", env: { CNI_NETNS: "${DIRECTORY}" }, stdin: json(bridge()), expectedCode: 4 });
add("netns-dev-null", { name: "CNI_NETNS /dev/null", plugin: "bridge", env: { CNI_NETNS: "/dev/null" }, stdin: json(bridge()), expectedCode: 4 });
add("netns-missing", { name: "CNI_NETNS a missing path", plugin: "bridge", env: { CNI_NETNS: "${MISSING}" }, stdin: json(bridge()), expectedCode: 3 });
add("netns-self", { name: "CNI_NETNS /proc/self/ns/net (the plugin's own namespace)", plugin: "bridge", env: { CNI_NETNS: "/proc/self/ns/net" }, stdin: json(bridge()), expectedCode: 8 });
add("netns-relative", { name: "CNI_NETNS relative", plugin: "bridge", env: { CNI_NETNS: "var/run/netns/x" }, stdin: json(bridge()), expectedCode: 4 });
add("netns-empty", { name: "CNI_NETNS empty on ADD", plugin: "bridge", env: { CNI_NETNS: "" }, stdin: json(bridge()), expectedCode: 4 });
add("netns-missing-del", { name: "DEL with CNI_NETNS a missing path", plugin: "bridge", command: "DEL", env: { CNI_NETNS: "${MISSING}" }, stdin: json(bridge()), expectedCode: 0 });
add("netns-self-check", { name: "CHECK with CNI_NETNS the plugin's own namespace", plugin: "bridge", command: "CHECK", env: { CNI_NETNS: "/proc/self/ns/net" }, stdin: json(bridge()), expectedCode: 8 });
add("cni-path-relative", { name: "CNI_PATH with a relative entry", plugin: "bridge", env: { CNI_PATH: "bin:${CNI_PATH}" }, stdin: json(bridge()), expectedCode: 4 });
add("cni-path-dot", { name: "CNI_PATH .", plugin: "bridge", env: { CNI_PATH: "." }, stdin: json(bridge()), expectedCode: 4 });
add("cni-path-empty-entries", { name: "CNI_PATH with empty entries", plugin: "bridge", env: { CNI_PATH: "::${CNI_PATH}::" }, stdin: json(bridge()), expectedCode: 0, note: "empty entries are skipped" });
add("cni-path-empty", { name: "CNI_PATH empty", plugin: "bridge", env: { CNI_PATH: "" }, stdin: json(bridge()), expectedCode: 4 });
add("cni-path-no-ipam", { name: "CNI_PATH without host-local", plugin: "bridge", env: { CNI_PATH: "${DIRECTORY}" }, stdin: json(bridge()), expectedCode: 7 });

// --- 7. hostile delegates ----------------------------------------------------------------------------------------------
const delegate = (type, code, extra = {}) => ({ plugin: "bridge", env: { CNI_PATH: "${DELEGATES}" }, stdin: json(withIpam({ type })), expectedCode: code, ...extra });
add("delegate-garbage", { name: "IPAM prints garbage and exits 0", ...delegate("garbage", 6) });
add("delegate-garbage-fail", { name: "IPAM prints garbage and exits 1", ...delegate("garbagefail", 6) });
add("delegate-silent-fail", { name: "IPAM exits 1 printing nothing", ...delegate("silentfail", 999) });
add("delegate-bad-result", { name: "IPAM prints a result with an address that is not a CIDR", ...delegate("badresult", 6) });
add("delegate-empty-result", { name: "IPAM prints a result without ips", ...delegate("emptyresult", 999) });
add("delegate-error-11", { name: "IPAM answers a well-formed error, code 11", ...delegate("error11", 11) });
add("delegate-huge-output", { name: "IPAM prints 20 MB of garbage", ...delegate("huge", 6) });
add("delegate-not-executable", { name: "IPAM file is not executable", ...delegate("noexec", 999) });
// The deadline comes from CNI_TS_DELEGATE_TIMEOUT_MS (2 s here, so npm test runs these); the default 60 s in the soak.
const deadline = (type, extra = {}) => {
  const d = delegate(type, 11, extra);
  return { ...d, env: { ...d.env, CNI_TS_DELEGATE_TIMEOUT_MS: "2000" } };
};
add("delegate-hangs", { name: "IPAM hangs (sleeps forever), 2 s deadline", ...deadline("hangs") });
add("delegate-holds-stdout", { name: "IPAM answers but leaves a child holding its stdout, 2 s deadline", ...deadline("holdsstdout", { note: "the bridge waits for stdout to close: the deadline ends it" }) });
add("delegate-hangs-default-deadline", { name: "IPAM hangs (sleeps forever), default deadline", ...delegate("hangs", 11, { soakOnly: true, note: "the default deadline is 60 s (lib/invoke.ts): soak only" }) });
add("delegate-holds-stdout-default-deadline", { name: "IPAM answers but leaves a child holding its stdout, default deadline", ...delegate("holdsstdout", 11, { soakOnly: true, note: "the bridge waits for stdout to close: the 60 s deadline ends it" }) });

mkdirSync(here, { recursive: true });
for (const [file, c] of cases) writeFileSync(join(here, `${file}.json`), JSON.stringify(c, null, 2) + "\n");
console.log(`wrote ${cases.length} corpus files to ${here}`);
