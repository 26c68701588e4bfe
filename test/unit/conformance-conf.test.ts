// The runner's pure parts: config loading (libcni/go-cni rules), version negotiation, request building, cache encoding.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeCache, encodeCache } from "../../conformance/runner/cache.js";
import { loadConfDir, loadConfFile, loadConfList } from "../../conformance/runner/conf.js";
import { buildRequest } from "../../conformance/runner/request.js";
import { negotiateVersion } from "../../conformance/runner/version.js";

const root = mkdtempSync(join(tmpdir(), "cni-ts-conf-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function confDir(files: Record<string, unknown>): string {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) {
    const f = join(dir, name);
    mkdirSync(join(f, ".."), { recursive: true });
    writeFileSync(f, typeof content === "string" ? content : JSON.stringify(content));
  }
  return dir;
}

const bytes = (o: unknown) => Buffer.from(JSON.stringify(o));

describe("loadConfDir without a name (go-cni)", () => {
  it("takes the lexicographically first of .conf/.conflist/.json and ignores other files", () => {
    const dir = confDir({
      "20-b.conflist": { cniVersion: "1.0.0", name: "b", plugins: [{ type: "bridge" }] },
      "10-a.conf": { cniVersion: "0.4.0", name: "a", type: "ptp", ipam: { type: "host-local" } },
      "30-c.json": { cniVersion: "1.0.0", name: "c", type: "x" },
      "00-z.txt": "not a config",
    });
    const list = loadConfDir(dir);
    expect(list.name).toBe("a");
    expect(list.source).toBe(join(dir, "10-a.conf"));
  });

  it("up-converts a single-plugin .conf into a one-element list whose bytes are the rebuilt list", () => {
    const plugin = { type: "ptp", name: "a", cniVersion: "0.4.0", ipam: { type: "host-local" } };
    const list = loadConfDir(confDir({ "a.conf": plugin }));
    expect(list).toMatchObject({
      name: "a",
      cniVersion: "0.4.0",
      disableCheck: false,
      disableGC: false,
      plugins: [plugin],
    });
    expect(JSON.parse(list.bytes.toString())).toEqual({ cniVersion: "0.4.0", name: "a", plugins: [plugin] });
    expect(Object.keys(JSON.parse(list.bytes.toString()))).toEqual(["cniVersion", "name", "plugins"]);
  });

  it("orders by bytes, not numerically: 10-x before 2-y", () => {
    const dir = confDir({
      "2-y.conflist": { name: "y", plugins: [{ type: "t" }] },
      "10-x.conflist": { name: "x", plugins: [{ type: "t" }] },
    });
    expect(loadConfDir(dir).name).toBe("x");
  });

  it("an empty directory, or a missing one, has no network", () => {
    expect(() => loadConfDir(confDir({}))).toThrow(/no network config found in/);
    expect(() => loadConfDir(join(root, "absent"))).toThrow(/no network config found in/);
  });

  it("a .conf holding a conflist has no type", () => {
    expect(() => loadConfDir(confDir({ "a.conf": { name: "a", plugins: [{ type: "t" }] } }))).toThrow(
      "error parsing configuration: missing 'type'",
    );
  });
});

describe("loadConfDir with a name (libcni LoadNetworkConf)", () => {
  const dir = confDir({
    "01-net.conf": { cniVersion: "0.3.1", name: "net", type: "from-conf" },
    "50-other.conflist": { cniVersion: "1.0.0", name: "other", plugins: [{ type: "o" }] },
    "90-net.conflist": { cniVersion: "1.0.0", name: "net", plugins: [{ type: "from-list" }] },
    "95-solo.json": { cniVersion: "1.0.0", name: "solo", type: "from-json" },
  });

  it("prefers a .conflist of that name over an earlier .conf", () => {
    expect(loadConfDir(dir, "net").plugins).toEqual([{ type: "from-list" }]);
  });
  it("falls back to .conf/.json single-plugin files", () => {
    expect(loadConfDir(dir, "solo").plugins).toEqual([{ cniVersion: "1.0.0", name: "solo", type: "from-json" }]);
  });
  it("names the directory when nothing matches", () => {
    expect(() => loadConfDir(dir, "nope")).toThrow(`no net configuration with name "nope" in ${dir}`);
  });
  it("every file read before the match must parse", () => {
    const bad = confDir({
      "a.conflist": { name: "a", plugins: [] },
      "b.conflist": { name: "b", plugins: [{ type: "t" }] },
    });
    expect(() => loadConfDir(bad, "b")).toThrow("no plugins in list");
  });
});

describe("sibling-directory plugins (loadOnlyInlinedPlugins false)", () => {
  it("appends <dir>/<network>/*.conf in filename order, ignoring other extensions", () => {
    const dir = confDir({
      "net.conflist": { cniVersion: "1.1.0", name: "net", plugins: [{ type: "inline" }] },
      "net/02-b.conf": { type: "b" },
      "net/01-a.conf": { type: "a" },
      "net/03-c.json": { type: "c" },
    });
    const list = loadConfDir(dir, "net");
    expect(list.plugins.map((p) => p.type)).toEqual(["inline", "a", "b"]);
    // The cache records the list file, not the aggregate.
    expect(JSON.parse(list.bytes.toString()).plugins).toEqual([{ type: "inline" }]);
  });

  it("loadOnlyInlinedPlugins (bool or string, any case) keeps only the inlined ones", () => {
    const dir = confDir({
      "net.conflist": { name: "net", loadOnlyInlinedPlugins: "TRUE", plugins: [{ type: "inline" }] },
      "net/01-a.conf": { type: "a" },
    });
    expect(loadConfDir(dir).plugins.map((p) => p.type)).toEqual(["inline"]);
  });

  it("a list without `plugins` may be made entirely of sibling files", () => {
    const dir = confDir({ "net.conflist": { name: "net", cniVersion: "1.1.0" }, "net/a.conf": { type: "a" } });
    expect(loadConfFile(join(dir, "net.conflist")).plugins).toEqual([{ type: "a" }]);
  });

  it("no plugins from anywhere is an error; so is loadOnlyInlinedPlugins without `plugins`", () => {
    const dir = confDir({ "net.conflist": { name: "net" }, "x.conflist": { name: "x", loadOnlyInlinedPlugins: true } });
    expect(() => loadConfFile(join(dir, "net.conflist"))).toThrow("no plugin configs found");
    expect(() => loadConfFile(join(dir, "x.conflist"))).toThrow(
      "`loadOnlyInlinedPlugins` is true, and no 'plugins' key",
    );
  });

  it("a sibling file without type is an error", () => {
    const dir = confDir({ "net.conflist": { name: "net", plugins: [{ type: "t" }] }, "net/a.conf": { ipam: {} } });
    expect(() => loadConfDir(dir)).toThrow("error parsing configuration: missing 'type'");
  });
});

describe("loadConfList: bad lists", () => {
  it.each([
    [{ plugins: [{ type: "t" }] }, "error parsing configuration list: no name"],
    [{ name: 5, plugins: [{ type: "t" }] }, "invalid name type"],
    [{ name: "n", plugins: [] }, "error parsing configuration list: no plugins in list"],
    [{ name: "n", plugins: {} }, "invalid 'plugins' type"],
    [
      { name: "n", plugins: [{ type: "t" }, { ipam: {} }] },
      "failed to parse plugin config 1: error parsing configuration: missing 'type'",
    ],
    [{ name: "n", plugins: [{ type: "" }] }, "missing 'type'"],
    [{ name: "n", plugins: [{ type: "t", capabilities: { ips: "yes" } }] }, "capabilities"],
    [{ name: "n", disableCheck: "yes", plugins: [{ type: "t" }] }, 'invalid value "yes" for disableCheck'],
    [{ name: "n", disableGC: 1, plugins: [{ type: "t" }] }, "invalid type number for disableGC"],
    [{ name: "n", cniVersions: ["1.0.0", 1], plugins: [{ type: "t" }] }, "invalid type for cniVersions index 1"],
    [{ name: "n", cniVersions: ["abc"], plugins: [{ type: "t" }] }, "invalid cniVersions entry abc at index 0"],
  ])("%j", (conf, message) => {
    expect(() => loadConfList(bytes(conf), "x.conflist")).toThrow(message);
  });

  it("garbage is a parse error", () => {
    expect(() => loadConfList(Buffer.from("{"), "x.conflist")).toThrow(/^error parsing configuration list:/);
  });

  it("reads disableCheck/disableGC booleans and strings", () => {
    const list = loadConfList(bytes({ name: "n", disableCheck: "True", disableGC: true, plugins: [{ type: "t" }] }));
    expect([list.disableCheck, list.disableGC]).toEqual([true, true]);
  });

  it("without a source, `plugins` makes a list and `type` a single plugin", () => {
    expect(loadConfList(bytes({ name: "n", cniVersion: "1.0.0", type: "t" })).plugins).toEqual([
      { name: "n", cniVersion: "1.0.0", type: "t" },
    ]);
    expect(loadConfList(bytes({ name: "n", plugins: [{ type: "t" }] })).plugins).toEqual([{ type: "t" }]);
  });
});

describe("version negotiation", () => {
  it("picks the highest supported of cniVersion and cniVersions", () => {
    expect(negotiateVersion("0.4.0", ["1.0.0", "1.1.0", "9.9.9"])).toBe("1.1.0");
    expect(negotiateVersion("1.0.0", ["0.3.1", "0.4.0"])).toBe("1.0.0");
    expect(negotiateVersion("", ["0.3.1", "1.0.0"])).toBe("1.0.0");
  });
  it("keeps cniVersion as written without cniVersions, or when none is supported", () => {
    expect(negotiateVersion("9.9.9", undefined)).toBe("9.9.9");
    expect(negotiateVersion("9.9.9", ["8.0.0"])).toBe("9.9.9");
    expect(negotiateVersion("", undefined)).toBe("");
  });
  it("is applied by the loader, which keeps cniVersions as written", () => {
    const list = loadConfList(
      bytes({ name: "n", cniVersion: "0.4.0", cniVersions: ["1.0.0", "1.1.0", "2.0.0"], plugins: [{ type: "t" }] }),
    );
    expect(list.cniVersion).toBe("1.1.0");
    expect(list.cniVersions).toEqual(["1.0.0", "1.1.0", "2.0.0"]);
  });
});

describe("buildRequest", () => {
  const plugin = { type: "t", zeta: { b: 1, a: 2 }, capabilities: { portMappings: true, bandwidth: false, ips: true } };

  it("injects name and cniVersion over the object, keys sorted as Go marshals a map", () => {
    const req = JSON.parse(
      buildRequest(
        { ...plugin, name: "old", cniVersion: "0.1.0" },
        { name: "net", cniVersion: "1.1.0" },
        {},
      ).toString(),
    );
    expect(req).toMatchObject({ name: "net", cniVersion: "1.1.0", type: "t" });
    expect(Object.keys(req)).toEqual(["capabilities", "cniVersion", "name", "type", "zeta"]);
    expect(Object.keys(req.zeta)).toEqual(["a", "b"]);
    expect(req).not.toHaveProperty("runtimeConfig");
    expect(req).not.toHaveProperty("prevResult");
  });

  it("runtimeConfig holds only the args of enabled capabilities", () => {
    const req = JSON.parse(
      buildRequest(
        plugin,
        { name: "n", cniVersion: "1.1.0" },
        { portMappings: [{ hostPort: 80 }], bandwidth: { ingressRate: 1 }, mac: "x" },
      ).toString(),
    );
    expect(req.runtimeConfig).toEqual({ portMappings: [{ hostPort: 80 }] });
  });

  it("a static runtimeConfig survives when nothing matched, and is replaced when something did", () => {
    const withStatic = { ...plugin, runtimeConfig: { static: true } };
    const kept = JSON.parse(buildRequest(withStatic, { name: "n", cniVersion: "1.1.0" }, { mac: "x" }).toString());
    expect(kept.runtimeConfig).toEqual({ static: true });
    const replaced = JSON.parse(
      buildRequest(withStatic, { name: "n", cniVersion: "1.1.0" }, { ips: ["10.0.0.9/24"] }).toString(),
    );
    expect(replaced.runtimeConfig).toEqual({ ips: ["10.0.0.9/24"] });
  });

  it("prevResult keeps its own field order unless runtimeConfig was injected", () => {
    const prevResult = { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.0.0.2/24" }], dns: {} };
    const plain = JSON.parse(
      buildRequest({ type: "t" }, { name: "n", cniVersion: "0.4.0", prevResult }, {}).toString(),
    );
    expect(Object.keys(plain.prevResult)).toEqual(["cniVersion", "ips", "dns"]);
    const injected = JSON.parse(
      buildRequest(
        { type: "t", capabilities: { ips: true } },
        { name: "n", cniVersion: "0.4.0", prevResult },
        { ips: [] },
      ).toString(),
    );
    expect(Object.keys(injected.prevResult)).toEqual(["cniVersion", "dns", "ips"]);
  });
});

describe("cache encoding", () => {
  it("writes Go's field order and omits empty optional fields", () => {
    const full = JSON.parse(
      encodeCache({
        containerId: "c1",
        ifName: "eth0",
        networkName: "net",
        config: Buffer.from("{}"),
        netns: "/ns",
        cniArgs: [["K", "V"]],
        capabilityArgs: { b: 1, a: 2 },
        result: { ips: [], cniVersion: "1.1.0" },
      }),
    );
    expect(Object.keys(full)).toEqual([
      "kind",
      "containerId",
      "config",
      "ifName",
      "networkName",
      "netns",
      "cniArgs",
      "capabilityArgs",
      "result",
    ]);
    expect(full.config).toBe(Buffer.from("{}").toString("base64"));
    expect(Object.keys(full.capabilityArgs)).toEqual(["a", "b"]);
    expect(Object.keys(full.result)).toEqual(["cniVersion", "ips"]);
    const bare = JSON.parse(
      encodeCache({
        containerId: "c1",
        ifName: "eth0",
        networkName: "net",
        config: Buffer.alloc(0),
        netns: "",
        cniArgs: [],
        capabilityArgs: {},
      }),
    );
    expect(Object.keys(bare)).toEqual(["kind", "containerId", "config", "ifName", "networkName"]);
  });

  it("reads back what it wrote; anything else is not a v1 entry", () => {
    const e = {
      containerId: "c1",
      ifName: "eth0",
      networkName: "net",
      config: Buffer.from("abc"),
      netns: "/ns",
      result: { cniVersion: "1.1.0" },
    };
    expect(decodeCache(encodeCache(e))).toEqual(e);
    expect(decodeCache('{"cniVersion":"1.0.0"}')).toBeUndefined();
    expect(decodeCache("garbage")).toBeUndefined();
  });
});
