// The README's main job: `npm run demo` runs the cluster lab and must end with "verdict: OK", leaving no namespace;
// `--forward-drop` shows the cross-node matrix failing on DROP nodes, then passing after routes sync --forward-accept.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireBuilt } from "./helpers.js";

const netnsList = () =>
  spawnSync("ip", ["netns", "list"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => l.startsWith("ctslab"));

function demo(args: string[]): string {
  requireBuilt();
  const before = netnsList();
  const r = spawnSync(process.execPath, [join(ROOT, "scripts/demo.mjs"), ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toMatch(
    /after DEL: no veth, no reservation, no cache entry, no hostPort or per-pod firewall rule left/,
  );
  expect(r.stdout.trim().split("\n").at(-1)).toBe("verdict: OK");
  expect(netnsList()).toEqual(before);
  return r.stdout;
}

/** The section that starts with `title`: its first `blocks` blocks (a matrix is a title, a blank line, the table). */
function section(out: string, title: string, blocks = 1): string {
  const from = out.indexOf(title);
  expect(from, `no "${title}" in:\n${out}`).toBeGreaterThanOrEqual(0);
  return out.slice(from).split("\n\n").slice(0, blocks).join("\n\n");
}

describe("npm run demo (the cluster lab)", () => {
  it("every pod gets a distinct address and pings every other pod across nodes; portmap and firewall, chained, wrote their rules at ADD; the lab is gone afterwards", () => {
    const out = demo([]);
    expect(out).toMatch(/5 pods, 5 distinct addresses; 20\/20 pings answered/);
    expect(out).toMatch(
      /same-node 4\/4, cross-node 16\/16 pings answered; hostPort 172\.31\.250\.11:8080 \(-> web-0 10\.244\.1\.\d+:8080\) from node2: answered/,
    );
    const rules = out.slice(out.indexOf("what portmap and firewall"), out.indexOf("ping matrix"));
    // Read from node1's kernel after the ADDs: portmap's DNAT of the hostPort to web-0, firewall's accept rules of both pods.
    expect(rules).toMatch(/-A CNI-DN-\S+ -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10\.244\.1\.\d+:8080/);
    expect(rules).toMatch(/-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD/);
    expect(rules.match(/-A CNI-FORWARD -s 10\.244\.1\.\d+\/32 -j ACCEPT/g)).toHaveLength(2);
    expect(rules).toMatch(/-P FORWARD ACCEPT/);
    expect(out).not.toMatch(/CNI-TS-FORWARD/);
  });

  it("--forward-drop: with FORWARD policy DROP cross-node pings and the hostPort fail (same-node pass); routes sync --forward-accept auto on every node makes them pass", () => {
    const out = demo(["--forward-drop"]);
    expect(section(out, "what portmap and firewall")).toMatch(/-P FORWARD DROP/);
    const closed = section(out, "ping matrix with FORWARD policy DROP", 2);
    expect(closed).toMatch(
      /same-node 4\/4, cross-node 0\/16 pings answered; hostPort \S+ \(-> web-0 \S+\) from node2: no answer/,
    );
    const step = section(out, "the firewall step");
    for (const n of [1, 2, 3]) expect(step).toMatch(new RegExp(`node${n}: forward-accept: accept 10\\.244\\.1\\.0/24`));
    for (const n of [1, 2, 3])
      expect(step).toMatch(new RegExp(`-A CNI-TS-FORWARD -d 10\\.244\\.${n}\\.0/24 -j ACCEPT`));
    const open = section(out, "ping matrix after the firewall step", 2);
    expect(open).toMatch(
      /same-node 4\/4, cross-node 16\/16 pings answered; hostPort \S+ \(-> web-0 \S+\) from node2: answered/,
    );
    expect(out).toMatch(/5 pods, 5 distinct addresses; 20\/20 pings answered/);
  });
});
