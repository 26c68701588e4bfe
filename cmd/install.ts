/**
 * `cni-ts install [--dir /opt/cni/bin] [--force]`: put this executable on a node and link the plugin names to it.
 *
 * Atomic on every path a runtime may exec at any moment: the executable is written to a temporary file in the target
 * directory and renamed over `cni-ts`; each link is created under a temporary name and renamed over the plugin name.
 * A plugin name that is not already ours (a link to cni-ts) is another plugin, the reference bridge for instance:
 * it is left alone unless --force.
 */
import {
  copyFileSync,
  chmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  closeSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { buildInfo, standaloneExecutable } from "../lib/runtime.js";

export interface InstallOptions {
  dir: string;
  force: boolean;
  names: readonly string[];
  /** The executable to install (this one). */
  source: string;
}

function isOurLink(path: string): boolean | undefined {
  try {
    const st = lstatSync(path);
    if (!st.isSymbolicLink()) return false;
    const target = readlinkSync(path);
    return target === "cni-ts" || target.endsWith("/cni-ts");
  } catch {
    return undefined;
  }
}

/** Returns the lines to print; throws with a message when it refuses (nothing is changed then). */
export function install(opts: InstallOptions): string[] {
  const out: string[] = [];
  try {
    if (!statSync(opts.dir).isDirectory()) throw new Error(`${opts.dir} is not a directory`);
  } catch (e) {
    throw new Error(`cannot install into ${opts.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const foreign = opts.names.filter((n) => isOurLink(join(opts.dir, n)) === false);
  if (foreign.length > 0 && !opts.force) {
    throw new Error(
      `refusing to replace ${foreign.map((n) => join(opts.dir, n)).join(", ")}: not cni-ts (another plugin of that name). Use --force to replace.`,
    );
  }
  const exe = join(opts.dir, "cni-ts");
  const tmp = join(opts.dir, `.cni-ts.install-${process.pid}`);
  try {
    copyFileSync(opts.source, tmp);
    chmodSync(tmp, 0o755);
    const fd = openSync(tmp, "r");
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, exe);
  } finally {
    rmSync(tmp, { force: true });
  }
  out.push(`installed ${exe}`);
  for (const n of opts.names) {
    const link = join(opts.dir, n);
    const tmpLink = join(opts.dir, `.${n}.install-${process.pid}`);
    rmSync(tmpLink, { force: true });
    symlinkSync("cni-ts", tmpLink);
    renameSync(tmpLink, link);
    out.push(`${foreign.includes(n) ? "replaced" : "linked"} ${link} -> cni-ts`);
  }
  return out;
}

/**
 * The CPU flags (as /proc/cpuinfo names them) that `needed` lists and this CPU lacks; [] when it can run the file.
 * Only the first processor is read: Linux shows the flags every core has in common there too.
 *
 * ```ts
 * missingCpuFlags(["avx2", "bmi2"], "flags\t\t: fpu sse4_2 popcnt avx\n"); // ["avx2", "bmi2"]
 * ```
 */
export function missingCpuFlags(needed: readonly string[], cpuinfo: string): string[] {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo);
  if (!line) return [];
  const have = new Set(line[1]!.trim().split(/\s+/));
  return needed.filter((f) => !have.has(f));
}

/** Why this machine cannot run the built file, or undefined when it can (or there is nothing to check). */
function cpuRefusal(): string | undefined {
  const info = buildInfo();
  if (!info || info.cpuFlags.length === 0) return undefined;
  let cpuinfo: string;
  try {
    cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return undefined;
  }
  const missing = missingCpuFlags(info.cpuFlags, cpuinfo);
  if (missing.length === 0) return undefined;
  return (
    `this CPU lacks ${missing.join(", ")}, which this build (${info.runtime} ${info.target}) needs: plugins would die with SIGILL ` +
    `(illegal instruction) in the middle of a pod start. Install a build for this CPU instead: ` +
    `npm run build -- --cpu baseline, or the Node.js build (npm run build -- --runtime node); see README, "Installing on a node".`
  );
}

/** The CLI around install(); returns the exit code. */
export function installMain(argv: readonly string[], names: readonly string[]): number {
  let dir = "/opt/cni/bin";
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--dir" && argv[i + 1]) dir = argv[++i]!;
    else if (a === "--force") force = true;
    else if (a === "--help" || a === "-h") {
      process.stderr.write("usage: cni-ts install [--dir /opt/cni/bin] [--force]\n");
      return 0;
    } else {
      process.stderr.write(
        `cni-ts install: unknown argument ${JSON.stringify(a)}\nusage: cni-ts install [--dir /opt/cni/bin] [--force]\n`,
      );
      return 2;
    }
  }
  const source = standaloneExecutable();
  if (!source) {
    process.stderr.write("cni-ts install: run the built executable (dist/bin/cni-ts install), not the sources\n");
    return 2;
  }
  const refusal = cpuRefusal();
  if (refusal) {
    process.stderr.write(`cni-ts install: refusing to install: ${refusal}\n`);
    return 1;
  }
  try {
    for (const line of install({ dir, force, names, source })) process.stdout.write(`${line}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`cni-ts install: ${(e as Error).message}\n`);
    return 1;
  }
}
