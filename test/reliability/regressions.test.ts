// Regression tests: deterministic reproductions of races and leaks the soak can hit only by chance
// (docs/reliability.md, "Regression tests"). Each asserts the correct behaviour on the built executables.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeLab, type Conf } from "../integration/bridge-lab.js";
import { requireBuilt, Sandbox, toolPath } from "../integration/helpers.js";
import { dataTree, quietOk, report, runIn } from "./lib.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => {
  sb.cleanup();
  // helpers.toolPath() makes a directory per worker that no one removes; this file's worker is its only user.
  rmSync(toolPath(), { recursive: true, force: true });
});

describe("regressions", () => {
  // host-local refuses IPv4-mapped IPv6 addresses everywhere in the config, ranges that contain the mapped block
  // ::ffff:0:0/96 included. Were such a range accepted, the iterator would offer ::ffff:0:0, the reservation file
  // "::ffff:0:0" would be written, and no DEL or GC could release it (parseIP() refuses its name): a leak for good.
  it("a range spanning ::ffff:0:0/96 is refused (code 7) and leaves no reservation that DEL and GC cannot release", {
    timeout: 30_000,
  }, async () => {
    const lab = new BridgeLab(sb, "mapped");
    const conf: Conf = {
      cniVersion: "1.1.0",
      name: lab.network,
      type: "bridge",
      ipam: {
        type: "host-local",
        dataDir: lab.dataDir,
        gcGraceSeconds: 0,
        ranges: [[{ subnet: "::/80", rangeStart: "::fffe:ffff:fffe" }]],
      },
    };
    const outcomes: unknown[] = [];
    for (const id of ["m1", "m2", "m3"]) {
      const r = await runIn(lab, "ADD", conf, { plugin: "host-local", pod: "/x", containerID: id });
      outcomes.push(r.out?.ips?.[0]?.address ?? r.out);
      expect(quietOk(await runIn(lab, "DEL", conf, { plugin: "host-local", pod: "/x", containerID: id }))).toBe(true);
    }
    expect(
      quietOk(await runIn(lab, "GC", { ...conf, "cni.dev/valid-attachments": [] }, { plugin: "host-local" })),
    ).toBe(true);
    const netDir = join(lab.dataDir, lab.network);
    const left = existsSync(netDir) ? readdirSync(netDir).filter((f) => f.includes(":")) : [];
    expect(outcomes).toEqual([
      expect.objectContaining({ code: 7 }),
      expect.objectContaining({ code: 7 }),
      expect.objectContaining({ code: 7 }),
    ]);
    report("regression-mapped-range", { outcomes, reservationsLeftAfterDelAndGc: left });
    expect(left).toEqual([]);
  });

  // A GC overlapping an ADD carries a valid list computed before that ADD finished. host-local keeps the pod's
  // address (the grace); bridge GC must keep its masquerade too, or CHECK fails with 103 and the pod reaches
  // nothing outside its subnet: GC keeps the state of every attachment whose host veth exists (docs/bridge.md, GC).
  for (const backend of ["nftables", "iptables"]) {
    it(`GC keeps the masquerade of an attachment it keeps the address of (${backend})`, {
      timeout: 30_000,
    }, async () => {
      const lab = new BridgeLab(sb, `gcmasq${backend.slice(0, 3)}`);
      const conf = lab.conf(
        { isGateway: true, ipMasq: true, ipMasqBackend: backend, ipam: lab.hostLocal(["10.89.0.0/24"]) },
        "1.1.0",
      );
      const pod = lab.pod("p");
      const a = await runIn(lab, "ADD", conf, { pod });
      expect(a.status, a.stdout + a.stderr).toBe(0);
      // The list the runtime computed just before this ADD finished: empty. The default grace (60 s) applies.
      expect(quietOk(await runIn(lab, "GC", { ...conf, "cni.dev/valid-attachments": [] }))).toBe(true);
      const address = (a.out!.ips as Array<{ address: string }>)[0]!.address.split("/")[0]!;
      expect(existsSync(join(lab.dataDir, lab.network, address))).toBe(true); // host-local kept it
      const check = await runIn(lab, "CHECK", lab.withPrev(conf, a.out), { pod });
      report("regression-gc-masq", {
        backend,
        addressKept: true,
        checkCode: check.out?.code ?? 0,
        checkMsg: check.out?.msg,
      });
      expect(quietOk(await runIn(lab, "DEL", lab.withPrev(conf, a.out), { pod }))).toBe(true);
      expect([check.status, check.stdout]).toEqual([0, ""]);
    });
  }

  // Once host-local has committed a reservation, its index entry says "added", but the runtime's ADD (bridge) is
  // still running (veth, pod addresses, DAD, masquerade, port wait). A GC with gcGraceSeconds 0 overlapping it must
  // not release the address of that ADD, or the next ADD hands it out again (two live pods, one address): an ADD
  // that began less than 60 s ago is never released, whatever the grace (docs/host-local.md). Made deterministic
  // with enabledad: the ADD waits for IPv6 DAD (about 1 s) after host-local has returned.
  it("GC with gcGraceSeconds 0 does not release the address of a bridge ADD still in progress", {
    timeout: 30_000,
  }, async () => {
    const lab = new BridgeLab(sb, "gcinflight");
    const conf = lab.conf(
      {
        isGateway: true,
        enabledad: true,
        ipam: { ...lab.hostLocal(["10.88.0.0/24", "fd88::/64"]), gcGraceSeconds: 0 },
      },
      "1.1.0",
    );
    const pod = lab.pod("p");
    const id = `ctr-${pod.name}`;
    let done = false;
    const adding = runIn(lab, "ADD", conf, { pod }).then((r) => {
      done = true;
      return r;
    });
    const end = Date.now() + 10_000;
    while (!dataTree(lab.dataDir).index.some((e) => e.includes(` added ${id}/eth0 `)) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 5));
    const gc = await runIn(lab, "GC", { ...conf, "cni.dev/valid-attachments": [] });
    const gcWhileAddRan = !done;
    const a = await adding;
    const held =
      (a.out?.ips as Array<{ address: string }> | undefined)?.map((ip) =>
        existsSync(join(lab.dataDir, lab.network, ip.address.split("/")[0]!)),
      ) ?? [];
    report("regression-gc-in-flight", {
      addStatus: a.status,
      addMs: Math.round(a.ms),
      gcWhileAddRan,
      gcStatus: gc.status,
      reservationsHeldAfter: held,
    });
    expect(quietOk(await runIn(lab, "DEL", lab.withPrev(conf, a.out), { pod }))).toBe(true);
    expect([a.status, gcWhileAddRan]).toEqual([0, true]);
    expect(held).toEqual([true, true]);
  });
});
