// lib/ip against the real kernel (veth: some CI kernels have no dummy module), inside a namespace of this run: batches apply, readers report what is there.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asCniError } from "../../lib/errors.js";
import { IpBatch } from "../../lib/ip/batch.js";
import { getLink, listAddrs, listRoutes } from "../../lib/ip/read.js";
import { ToolError } from "../../lib/tool-error.js";
import { Sandbox } from "./helpers.js";

const sandbox = new Sandbox();
let ns = { name: "", path: "" };

beforeAll(() => {
  ns = sandbox.netns("ipdrv");
});
afterAll(() => sandbox.cleanup());

describe("ip driver in a namespace", () => {
  it("applies a batch in one spawn and reads the result back with -json", async () => {
    await new IpBatch()
      .cmd("link", "add", "name", "dummy0", "type", "veth", "peer", "name", "dummy0p")
      .cmd("link", "set", "dev", "dummy0", "mtu", 1400, "up")
      .cmd("addr", "add", "10.77.0.2/24", "dev", "dummy0")
      .cmd("addr", "add", "fd77::2/64", "dev", "dummy0", "nodad")
      .cmd("route", "add", "10.78.0.0/16", "via", "10.77.0.1", "dev", "dummy0")
      .run(ns.path);
    const link = await getLink("dummy0", ns.path);
    expect(link).toMatchObject({ ifname: "dummy0", mtu: 1400 });
    expect(link?.flags).toContain("UP");
    expect(link?.linkinfo?.info_kind).toBe("veth");
    const addrs = (await listAddrs(ns.path, "dummy0"))[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toEqual(expect.arrayContaining(["10.77.0.2/24", "fd77::2/64"]));
    const routes = await listRoutes(4, ns.path);
    expect(routes).toEqual(
      expect.arrayContaining([expect.objectContaining({ dst: "10.78.0.0/16", gateway: "10.77.0.1", dev: "dummy0" })]),
    );
  });

  it("an absent link reads as undefined", async () => {
    expect(await getLink("nope0", ns.path)).toBeUndefined();
  });

  it("a failing line is a ToolError naming the command and the line, and stops the batch there", async () => {
    const err = await new IpBatch()
      .cmd("link", "add", "name", "dummy1", "type", "veth", "peer", "name", "dummy1p")
      .cmd("addr", "add", "10.77.0.3/24", "dev", "missing0")
      .cmd("link", "add", "name", "dummy2", "type", "veth", "peer", "name", "dummy2p")
      .run(ns.path)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolError);
    expect(err).toMatchObject({ kind: "not-found", failedLine: "addr add 10.77.0.3/24 dev missing0" });
    expect(asCniError(err).code).toBe(100);
    expect((err as ToolError).message).toContain("ip addr add 10.77.0.3/24 dev missing0");
    expect(await getLink("dummy1", ns.path)).toBeDefined();
    expect(await getLink("dummy2", ns.path)).toBeUndefined();
  });

  it("changes nothing outside the namespace", async () => {
    expect(await getLink("dummy0")).toBeUndefined();
  });
});
