#!/usr/bin/env node
// A throwaway guest with Debian's stock kernel, for what this machine's kernel cannot do (it has no bridge
// vlan_filtering and no 8021q). The guest sees the host's whole file tree read-only (9p) under a tmpfs overlay, so it
// runs the very checkout, node_modules and built executables of the host; whatever it writes vanishes with it,
// except in the directories passed with --share, which it sees read-write at the same path.
//
//   node scripts/vm.mjs [--share DIR]... [--cwd DIR] [--timeout SECONDS] -- COMMAND [ARG...]
//
// Prints the guest's console and exits with COMMAND's exit code (124 on timeout, 125 if the guest did not run it).
// Needs root, qemu-system-x86 and busybox-static (installed on Debian as root), and the kernel package
// linux-image-<abi>-amd64, fetched once with `apt-get download` into the cache (nothing is installed on the host).
// Runs under emulation (TCG); CNI_TS_VM_ACCEL=kvm uses KVM instead where it works.
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const CACHE = process.env.CNI_TS_VM_CACHE || "/var/cache/cni-ts-vm";
const BUSYBOX = "/bin/busybox";
const QEMU = "/usr/bin/qemu-system-x86_64";
/** Modules the initramfs loads to mount the host's tree; the rest load on demand from the shared tree. */
const BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];
const EXIT_MARK = "CNI-TS-VM-EXIT=";

export class VmError extends Error {}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new VmError(`${cmd} ${args.join(" ")}: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}

/** Why the guest cannot run here, or undefined. */
export function vmUnavailable() {
  if (process.arch !== "x64" || process.platform !== "linux")
    return `the guest is x86_64 Linux only (this is ${process.platform}/${process.arch})`;
  if (process.getuid?.() !== 0) return "the guest needs root";
  for (const [file, pkg] of [
    [QEMU, "qemu-system-x86"],
    [BUSYBOX, "busybox-static"],
  ]) {
    if (!existsSync(file)) return `${file} is missing: apt-get install --no-install-recommends ${pkg}`;
  }
  return undefined;
}

/** The newest linux-image-<abi>-amd64 that linux-image-amd64 points at. */
function kernelPackage() {
  const out = sh("apt-cache", ["depends", "linux-image-amd64"]);
  const m = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)/.exec(out);
  if (!m) throw new VmError(`cannot tell which kernel package linux-image-amd64 depends on:\n${out}`);
  return m[1];
}

/** Kernel and modules, unpacked once into the cache; modules.dep from busybox depmod (the host has no kmod). */
export function ensureKernel() {
  const pkg = process.env.CNI_TS_VM_KERNEL_PKG || kernelPackage();
  const dir = join(CACHE, pkg);
  const ready = join(dir, ".ready");
  if (!existsSync(ready)) {
    mkdirSync(CACHE, { recursive: true });
    const work = mkdtempSync(join(CACHE, ".dl-"));
    try {
      sh("apt-get", ["download", pkg], { cwd: work });
      const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
      if (!deb) throw new VmError(`apt-get download ${pkg} left no .deb`);
      sh("dpkg-deb", ["-x", join(work, deb), join(work, "root")]);
      const release = readdirSync(join(work, "root/lib/modules"))[0];
      sh(BUSYBOX, ["depmod", "-b", join(work, "root"), release]);
      rmSync(dir, { recursive: true, force: true });
      renameSync(join(work, "root"), dir);
      writeFileSync(ready, release);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const release = readFileSync(ready, "utf8").trim();
  return { release, vmlinuz: join(dir, "boot", `vmlinuz-${release}`), modules: join(dir, "lib/modules", release) };
}

/** BOOT_MODULES with their dependencies, dependencies first, as paths relative to the modules dir. */
function bootModuleOrder(modulesDir) {
  const deps = new Map();
  for (const line of readFileSync(join(modulesDir, "modules.dep"), "utf8").split("\n")) {
    const [mod, rest] = line.split(":");
    if (mod)
      deps.set(
        mod.replace(/^.*\/lib\/modules\/[^/]+\//, ""),
        (rest ?? "")
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((d) => d.replace(/^.*\/lib\/modules\/[^/]+\//, "")),
      );
  }
  const byName = new Map([...deps.keys()].map((p) => [p.replace(/^.*\//, "").replace(/\.ko.*$/, ""), p]));
  const order = [];
  const visit = (p) => {
    if (order.includes(p)) return;
    for (const d of deps.get(p) ?? []) visit(d);
    order.push(p);
  };
  for (const name of BOOT_MODULES) {
    const p = byName.get(name);
    if (p) visit(p);
    // else built into this kernel: nothing to load
  }
  return order;
}

const INIT = `#!/bin/busybox sh
# PID 1 of the guest: host tree read-only under a tmpfs overlay, then the host's command in it.
/bin/busybox mkdir -p /proc /sys /dev /lower /rw /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod "/mods/$m" || echo "cni-ts-vm: insmod $m failed"; done
arg() { sed -n "s/.*cnits_$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
RUN=$(arg run); MODDIR=$(arg moddir); SHARES=$(arg shares | tr , ' ')
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=512000,ro host /lower || { echo "${EXIT_MARK}125"; poweroff -f; }
mount -t tmpfs -o size=2g tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || { echo "${EXIT_MARK}125"; poweroff -f; }
i=0
for d in $SHARES; do mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 "share$i" "/newroot$d" || echo "cni-ts-vm: share $d failed"; i=$((i+1)); done
R=$(uname -r)
mkdir -p "/newroot/lib/modules/$R" /newroot/.vm
mount --bind "/newroot$MODDIR" "/newroot/lib/modules/$R"
cp /bin/busybox /newroot/.vm/busybox
ln -s busybox /newroot/.vm/modprobe
echo /.vm/modprobe > /proc/sys/kernel/modprobe
mount -t tmpfs tmpfs /newroot/run
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
# Bridge netfilter, as on a Kubernetes node (kubeadm requires it) and as this machine's kernel has it built in.
exec switch_root /newroot /.vm/busybox sh -c "/.vm/modprobe br_netfilter || echo 'cni-ts-vm: br_netfilter not loaded'; /bin/sh $RUN </dev/null; echo ${EXIT_MARK}\\$?; /.vm/busybox sync; /.vm/busybox poweroff -f"
`;

/** A newc initramfs: busybox, the boot modules, /init. */
function buildInitramfs(kernel, dir) {
  const root = join(dir, "initramfs");
  for (const d of ["bin", "mods"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  const order = bootModuleOrder(kernel.modules);
  const names = order.map((p, i) => {
    const name = `${String(i).padStart(2, "0")}-${p.replace(/^.*\//, "")}`;
    copyFileSync(join(kernel.modules, p), join(root, "mods", name));
    return name;
  });
  writeFileSync(join(root, "modules.order"), `${names.join("\n")}\n`);
  writeFileSync(join(root, "init"), INIT, { mode: 0o755 });
  const files = sh("find", [".", "-mindepth", "1"], { cwd: root }).trim();
  const img = join(dir, "initramfs.cpio");
  const r = spawnSync(BUSYBOX, ["cpio", "-o", "-H", "newc"], { cwd: root, input: `${files}\n`, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new VmError(`cpio: ${r.stderr}`);
  writeFileSync(img, r.stdout);
  return img;
}

/**
 * Run argv in a fresh guest. Resolves with the command's exit code and the guest's console output.
 * @param {{ argv: string[], cwd?: string, env?: Record<string,string>, shares?: string[], timeoutMs?: number, onOutput?: (s: string) => void }} o
 */
export async function runInVm(o) {
  const why = vmUnavailable();
  if (why) throw new VmError(why);
  const kernel = ensureKernel();
  const dir = mkdtempSync(join(tmpdir(), "cni-ts-vm-"));
  try {
    const initrd = buildInitramfs(kernel, dir);
    const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
    const env = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: "/root",
      ...(o.env ?? {}),
    };
    const run = join(dir, "run.sh");
    writeFileSync(
      run,
      [
        ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
        `cd ${quote(resolve(o.cwd ?? process.cwd()))} || exit 125`,
        o.argv.map(quote).join(" "),
        "",
      ].join("\n"),
    );
    const shares = (o.shares ?? []).map((d) => resolve(d));
    for (const d of shares)
      if (/[\s,]/.test(d)) throw new VmError(`a shared directory's path may not contain spaces or commas: ${d}`);
    // Emulation by default: on this workplace's machines /dev/kvm opens, but a guest under it hangs at boot.
    const accel =
      process.env.CNI_TS_VM_ACCEL === "kvm"
        ? ["-accel", "kvm", "-cpu", "host"]
        : ["-accel", "tcg,thread=multi", "-cpu", "max"];
    const args = [
      ...accel,
      "-m",
      "2048",
      "-smp",
      "2",
      "-nodefaults",
      "-display",
      "none",
      "-monitor",
      "none",
      "-serial",
      "stdio",
      "-no-reboot",
      "-kernel",
      kernel.vmlinuz,
      "-initrd",
      initrd,
      "-append",
      `console=ttyS0 quiet panic=-1 rdinit=/init cnits_run=${run} cnits_moddir=${kernel.modules} cnits_shares=${shares.join(",")}`,
      "-virtfs",
      "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
      ...shares.flatMap((d, i) => [
        "-virtfs",
        `local,path=${d},mount_tag=share${i},security_model=none,multidevs=remap`,
      ]),
    ];
    return await new Promise((resolveRun, reject) => {
      const q = spawn(QEMU, args, { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        q.kill("SIGKILL");
      }, o.timeoutMs ?? 600_000);
      const take = (b) => {
        const s = b.toString("utf8");
        out += s;
        o.onOutput?.(s);
      };
      q.stdout.on("data", take);
      q.stderr.on("data", take);
      q.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      q.on("close", () => {
        clearTimeout(timer);
        const m = new RegExp(`${EXIT_MARK}(\\d+)`).exec(out);
        resolveRun({ code: timedOut ? 124 : m ? Number(m[1]) : 125, output: out });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Arguments for `node`: integration test files run by vitest in the guest, their JSON report written to `report`
 * (in a directory the guest shares read-write). npm test's guest step and `npm run soak -- --guest` both use it.
 */
export function vitestInGuestArgv(files, report, timeoutSeconds) {
  return [
    "scripts/vm.mjs",
    "--share",
    dirname(report),
    "--timeout",
    String(timeoutSeconds),
    "--",
    "env",
    "CI=1",
    "npx",
    "vitest",
    "run",
    "--project",
    "integration",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${report}`,
    ...files,
  ];
}

async function main(argv) {
  const o = { shares: [], argv: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      o.argv = argv.slice(i + 1);
      break;
    } else if (a === "--share") o.shares.push(argv[++i]);
    else if (a === "--cwd") o.cwd = argv[++i];
    else if (a === "--timeout") o.timeoutMs = Number(argv[++i]) * 1000;
    else throw new VmError(`unknown option ${a}`);
  }
  if (o.argv.length === 0)
    throw new VmError(
      "usage: node scripts/vm.mjs [--share DIR]... [--cwd DIR] [--timeout SECONDS] -- COMMAND [ARG...]",
    );
  const r = await runInVm({ ...o, onOutput: (s) => process.stdout.write(s) });
  if (r.code === 124) console.error("vm: timed out");
  if (r.code === 125) console.error("vm: the guest did not run the command");
  return r.code;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`vm: ${e instanceof VmError ? e.message : (e?.stack ?? e)}`);
      process.exit(125);
    },
  );
}
