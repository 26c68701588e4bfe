// What the tests and the demo need from the machine, and how to get it on Debian.
// As root on Debian, missing packages are installed; anywhere else we stop and say exactly what to install.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** [how to detect it, Debian package] */
export const NEEDS = {
  ip: ["/usr/sbin/ip", "iproute2"],
  nsenter: ["/usr/bin/nsenter", "util-linux"],
  ping: ["/usr/bin/ping", "iputils-ping"],
  strip: ["/usr/bin/strip", "binutils"],
  // npm run bench -- start: peak RSS of a child (GNU time's %M).
  time: ["/usr/bin/time", "time"],
  // npm run bench -- pod --count: the processes each call starts.
  strace: ["/usr/bin/strace", "strace"],
  iptables: ["/usr/sbin/iptables", "iptables"],
  nft: ["/usr/sbin/nft", "nftables"],
  "reference plugins": ["/usr/lib/cni/host-local", "containernetworking-plugins"],
  // The listeners of traffic checks (sandbox/traffic.ts): the demo's hostPort, integration and conformance connects.
  python3: ["/usr/bin/python3", "python3"],
  // The guest of scripts/vm.mjs (VLAN and masquerade tests on Debian's kernel).
  qemu: ["/usr/bin/qemu-system-x86_64", "qemu-system-x86"],
  busybox: ["/bin/busybox", "busybox-static"],
  // The arm64 build's smoke test on x86_64 (build.mjs --arch arm64): qemu-user and arm64's C library.
  "qemu-user": ["/usr/bin/qemu-aarch64-static", "qemu-user-static"],
  "arm64 libc": ["/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1", "libc6-arm64-cross"],
};

function present([path, ,]) {
  return existsSync(path);
}

/** Make sure every named need is met; returns nothing, exits the process with a clear message if it cannot. */
export function ensureDeps(names) {
  const missing = names.filter((n) => !present(NEEDS[n]));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((n) => NEEDS[n][1]))];
  const isDebian = existsSync("/etc/debian_version");
  const isRoot = process.getuid?.() === 0;
  if (!isDebian || !isRoot) {
    console.error(
      `missing: ${missing.join(", ")}. Install the Debian packages: apt-get install ${pkgs.join(" ")} (as root)`,
    );
    process.exit(1);
  }
  console.error(`installing Debian packages: ${pkgs.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], { stdio: "inherit", env });
  if (r.status !== 0) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], { stdio: "inherit", env });
  }
  const still = names.filter((n) => !present(NEEDS[n]));
  if (r.status !== 0 || still.length > 0) {
    console.error(`could not install ${pkgs.join(" ")}; still missing: ${still.join(", ")}`);
    process.exit(1);
  }
}

export function requireRoot(what) {
  if (process.getuid?.() !== 0) {
    console.error(`${what} needs root: it creates network namespaces (ip netns add). Run it as root.`);
    process.exit(1);
  }
}
