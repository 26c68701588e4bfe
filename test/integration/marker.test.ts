// The firewall markers (lib/marker.ts) on the built executable: bridge's masquerade ADD marks the attachment with the
// backend it wrote to, so a DEL without prevResult (containerd's RemovePodSandbox, nerdctl's empty CNI_NETNS) still
// removes the masquerade, from that backend only; without a marker such a DEL has nothing to look for.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeLab, iptNat, nftRuleset, type Conf } from "./bridge-lab.js";
import { requireBuilt, Sandbox } from "./helpers.js";

const sb = new Sandbox();
beforeAll(() => requireBuilt());
afterAll(() => sb.cleanup());

/** Where the plugin running in `lab`'s node namespace keeps the marker of an attachment. */
function markerFile(lab: BridgeLab, kind: "masq" | "portmap", containerID: string, ifname = "eth0"): string {
  const ino = statSync(lab.node.path).ino;
  return join(
    "/run/cni-ts",
    kind,
    String(ino),
    createHash("sha256").update(`${lab.network}\n${containerID}\n${ifname}`).digest("hex"),
  );
}

describe("bridge masquerade markers", () => {
  for (const backend of ["iptables", "nftables"] as const) {
    it(`ADD with ${backend} marks the attachment with its backend; a DEL without prevResult removes the masquerade and the marker`, () => {
      const lab = new BridgeLab(sb, `mk${backend.slice(0, 3)}`);
      const conf: Conf = lab.conf({
        isGateway: true,
        ipMasq: true,
        ipMasqBackend: backend,
        ipam: lab.hostLocal(["10.71.0.0/24"]),
      });
      const pod = lab.pod();
      const id = `ctr-${pod.name}`;
      const res = lab.add(conf, { pod });
      const ip = (res.ips as Array<{ address: string }>)[0]!.address.split("/")[0]!;
      const file = markerFile(lab, "masq", id);
      expect(readFileSync(file, "utf8")).toBe(`${lab.network} ${id} eth0 ${backend}\n`);
      const state = () => (backend === "iptables" ? iptNat(lab.node.name) : nftRuleset(lab.node.name));
      expect(state()).toContain(ip);
      // RemovePodSandbox's shape: no netns, no prevResult.
      const del = lab.cni("DEL", conf, { pod: "", containerID: id });
      expect(del.status, del.stdout + del.stderr).toBe(0);
      expect(state()).not.toContain(ip);
      expect(existsSync(file)).toBe(false);
      expect(lab.cni("DEL", conf, { pod: "", containerID: id }).status).toBe(0);
    });
  }

  it("the marker decides where a DEL without prevResult looks: one naming the other backend leaves this one's rules", () => {
    const lab = new BridgeLab(sb, "mkwrong");
    const conf: Conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: "iptables",
      ipam: lab.hostLocal(["10.72.0.0/24"]),
    });
    const pod = lab.pod();
    const id = `ctr-${pod.name}`;
    const res = lab.add(conf, { pod });
    const ip = (res.ips as Array<{ address: string }>)[0]!.address.split("/")[0]!;
    writeFileSync(markerFile(lab, "masq", id), `${lab.network} ${id} eth0 nftables\n`);
    expect(lab.cni("DEL", conf, { pod: "", containerID: id }).status).toBe(0);
    expect(iptNat(lab.node.name)).toContain(ip);
    // With prevResult (the runtime's first DEL) the addresses are known, and both backends are looked at without a
    // marker naming one: the rules go.
    expect(lab.cni("DEL", lab.withPrev(conf, res), { pod, containerID: id }).status).toBe(0);
    expect(iptNat(lab.node.name)).not.toContain(ip);
  });

  it("a marker of an older cni-ts (no backend named) makes DEL look at both backends", () => {
    const lab = new BridgeLab(sb, "mkold");
    const conf: Conf = lab.conf({
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: "nftables",
      ipam: lab.hostLocal(["10.73.0.0/24"]),
    });
    const pod = lab.pod();
    const id = `ctr-${pod.name}`;
    const res = lab.add(conf, { pod });
    const ip = (res.ips as Array<{ address: string }>)[0]!.address.split("/")[0]!;
    writeFileSync(markerFile(lab, "masq", id), `${lab.network} ${id} eth0\n`);
    expect(lab.cni("DEL", conf, { pod: "", containerID: id }).status).toBe(0);
    expect(nftRuleset(lab.node.name)).not.toContain(ip);
  });
});
