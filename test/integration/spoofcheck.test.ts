// bridge macspoofchk, built and run inside a node namespace: a pod that sends with another MAC is cut off; CHECK,
// DEL (also twice and after the namespace is gone) and GC (once its veth is gone) manage exactly its two set elements.
import { afterAll, describe, expect, it } from "vitest";
import { hostVethName } from "../../plugins/bridge/names.js";
import { BridgeLab, type Conf, nftRuleset, nsRun, ping } from "./bridge-lab.js";
import { Sandbox } from "./helpers.js";

const sb = new Sandbox();
afterAll(() => sb.cleanup());

function conf(lab: BridgeLab, extra: Conf = {}): Conf {
  return lab.conf({ isGateway: true, macspoofchk: true, ipam: lab.hostLocal(["10.57.0.0/24"]), ...extra }, "1.1.0");
}

describe("macspoofchk", () => {
  it("drops frames with a MAC other than the pod's; CHECK passes, then names the missing element", () => {
    const lab = new BridgeLab(sb, "spoof");
    const a = lab.pod();
    const b = lab.pod();
    const ra = lab.add(conf(lab), { pod: a, containerID: "ca" });
    const rb = lab.add(conf(lab), { pod: b, containerID: "cb" });
    const ipB = (rb.ips[0].address as string).split("/")[0]!;
    expect(ping(a, ipB)).toBe(true);
    expect(lab.cni("CHECK", lab.withPrev(conf(lab), ra), { pod: a, containerID: "ca" }).status).toBe(0);

    const veth = hostVethName("ca", "eth0");
    const ruleset = nftRuleset(lab.node.name);
    expect(ruleset).toContain(`"${veth}"`);
    expect(ruleset).toContain("iifname @guarded iifname . ether saddr != @allowed drop");

    // Spoof: the pod changes its MAC; its frames no longer pass the bridge.
    nsRun(a.name, "ip", ["link", "set", "dev", "eth0", "address", "0a:bb:cc:dd:ee:01"]);
    nsRun(a.name, "ip", ["neigh", "flush", "all"]);
    expect(ping(a, ipB, 2)).toBe(false);
    nsRun(a.name, "ip", ["link", "set", "dev", "eth0", "address", ra.interfaces[2].mac]);
    expect(ping(a, ipB, 3)).toBe(true);

    nsRun(lab.node.name, "nft", ["delete", "element", "bridge", "cni_ts_spoof", "guarded", `{ "${veth}" }`]);
    const c = lab.cni("CHECK", lab.withPrev(conf(lab), ra), { pod: a, containerID: "ca" });
    expect(c.out).toMatchObject({ code: 103 });
    expect(String(c.out?.msg)).toContain(`${veth} is not guarded`);
  });

  it("DEL removes exactly the pod's elements, also twice and after the namespace is gone; GC drops those of pods whose veth is gone", () => {
    const lab = new BridgeLab(sb, "spoofdel");
    const c2 = (l: BridgeLab) => conf(l, { ipam: l.hostLocal(["10.58.0.0/24"], { gcGraceSeconds: 0 }) });
    const [a, b, c, d] = [lab.pod(), lab.pod(), lab.pod(), lab.pod()];
    const ra = lab.add(c2(lab), { pod: a, containerID: "da" });
    lab.add(c2(lab), { pod: b, containerID: "db" });
    lab.add(c2(lab), { pod: c, containerID: "dc" });
    lab.add(c2(lab), { pod: d, containerID: "dd" });
    const [va, vb, vc, vd] = ["da", "db", "dc", "dd"].map((id) => hostVethName(id, "eth0"));

    // Twice, the second time without prevResult.
    expect(lab.cni("DEL", lab.withPrev(c2(lab), ra), { pod: a, containerID: "da" }).status).toBe(0);
    expect(lab.cni("DEL", c2(lab), { pod: a, containerID: "da" }).status).toBe(0);
    // With CNI_NETNS empty (the namespace gone), without prevResult.
    expect(lab.cni("DEL", c2(lab), { pod: "", containerID: "db" }).status).toBe(0);
    let rs = nftRuleset(lab.node.name);
    expect(rs).not.toContain(va);
    expect(rs).not.toContain(vb);
    expect(rs).toContain(vc);
    expect(rs).toContain(vd);

    // d is missing from the list but its veth exists (its ADD may have finished after the runtime made the list):
    // GC keeps its elements.
    const gcList = { ...c2(lab), "cni.dev/valid-attachments": [{ containerID: "dc", ifname: "eth0" }] };
    let gc = lab.cni("GC", gcList, { pod: "" });
    expect(gc.status, gc.stdout + gc.stderr).toBe(0);
    rs = nftRuleset(lab.node.name);
    expect(rs).toContain(vd);
    expect(rs).toContain(vc);
    // d's DEL never comes and its namespace goes: GC removes d's elements and keeps c's.
    lab.dropPod(d, "dd");
    gc = lab.cni("GC", gcList, { pod: "" });
    expect(gc.status, gc.stdout + gc.stderr).toBe(0);
    rs = nftRuleset(lab.node.name);
    expect(rs).not.toContain(vd);
    expect(rs).toContain(vc);
  });
});
