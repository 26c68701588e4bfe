/**
 * The one module that knows which JavaScript runtime runs us: a Bun standalone executable (the default build), a
 * Node.js single executable (the fallback build, `npm run build -- --runtime node`), or the bundle/sources run by
 * hand. Everything else uses plain Node.js APIs that both runtimes implement, except where this module hands out a
 * Bun function under Bun: `bunSpawner()` (lib/spawn.ts starts every child process with it) and `bunDigest()`
 * (lib/hash.ts), and `normalJitPolicy()`. No other module reads the `Bun` global.
 *
 * Imported first by cmd/cni-ts.ts: under Node it undoes, before any other module runs, what two Node.js environment
 * variables set up at bootstrap (see neutraliseNodeEnvironment). What no code of ours can undo is listed in
 * docs/reliability.md ("Environment variables that act before our code").
 *
 * ```ts
 * import { invokedName, standaloneExecutable } from "../lib/runtime.js";
 * invokedName();          // "bridge" when run through /opt/cni/bin/bridge -> cni-ts
 * standaloneExecutable(); // "/opt/cni/bin/cni-ts", or undefined when run from the sources
 * ```
 */
import { basename } from "node:path";
import type * as V8 from "node:v8";

interface BunGlobal {
  /** The entry script; in a standalone executable it lives in Bun's embedded file system, "/$bunfs/...". */
  main: string;
  version: string;
  spawn: BunSpawn;
  CryptoHasher: { hash(algorithm: "sha256" | "sha512", data: Uint8Array): Uint8Array };
  unsafe?: { setJITPolicy?(scale: number): void };
}

/** What lib/spawn.ts uses of a `Bun.spawn` child. */
export interface BunChild {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles when the child has exited; exitCode / signalCode say how. */
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  kill(signal?: string): void;
}

/** `Bun.spawn` as lib/spawn.ts calls it: it throws (with an errno `code`) when the program cannot be started. */
export type BunSpawn = (
  cmd: string[],
  options: {
    env: NodeJS.ProcessEnv;
    /** stdin (bytes written then closed, or "ignore"), stdout, stderr, then descriptors passed on as fd 3, 4, ... */
    stdio: [Buffer | "ignore", "pipe", "pipe", ...number[]];
    /** The child leads a process group (and session) of its own, as node:child_process's `detached`. */
    detached: boolean;
  },
) => BunChild;

/** What build.mjs embeds (esbuild `define`): the runtime and CPU the file was built for. Absent from the sources. */
interface BuildInfo {
  runtime: "bun" | "node";
  /** Bun's --target, or node-linux-<arch>. */
  target: string;
  arch: "x64" | "arm64";
  /** /proc/cpuinfo flags the file needs (x86_64); empty when any CPU of its architecture runs it. */
  cpuFlags: string[];
}
declare const CNI_TS_BUILD: BuildInfo | undefined;

const bun = (globalThis as { Bun?: BunGlobal }).Bun;

export const runtimeName: "bun" | "node" = bun ? "bun" : "node";

/** The runtime and its version, as `cni-ts --version`-style text: "bun 1.4.4" or "node 26.10.0". */
export function runtimeVersion(): string {
  return bun ? `bun ${bun.version}` : `node ${process.versions.node}`;
}

/** Bun's process starter under Bun, undefined under Node: lib/spawn.ts picks its way of starting a child by it. */
export function bunSpawner(): BunSpawn | undefined {
  return bun ? bun.spawn.bind(bun) : undefined;
}

/**
 * Bun's native SHA-2 under Bun, undefined under Node (lib/hash.ts then computes the digest in JavaScript): in a fresh
 * process the first JavaScript digest costs about 1 ms (the code runs in the interpreter), Bun's about 0.3 ms, and
 * every plugin call hashes names (veths, chains, markers).
 */
export function bunDigest(): ((algorithm: "sha256" | "sha512", data: Uint8Array) => Uint8Array) | undefined {
  return bun ? (algorithm, data) => bun.CryptoHasher.hash(algorithm, data) : undefined;
}

/**
 * The build starts the executable with JavaScriptCore's tier-up thresholds scaled up (build.mjs, BUN_JIT_POLICY):
 * a plugin call is a few milliseconds of run-once code, and compiling it costs more than it saves. A process that
 * stays (the `routes sync` controller) calls this once it is running, to get the normal JIT back. Nothing under Node.
 */
export function normalJitPolicy(): void {
  bun?.unsafe?.setJITPolicy?.(1);
}

/** The build's facts, or undefined when running from the sources or an unbuilt bundle. */
export function buildInfo(): BuildInfo | undefined {
  return typeof CNI_TS_BUILD === "undefined" ? undefined : CNI_TS_BUILD;
}

/**
 * The name this process was invoked by (argv[0] as the runtime exec'd it), without its directory. Both runtimes keep
 * the exec's argv[0] in process.argv0; process.argv[1] is not it under Bun (there it is the embedded script).
 */
export function invokedName(): string {
  return basename(process.argv0 ?? "");
}

/** The path of this single-file executable, or undefined when we are not one (sources or bundle run by a runtime). */
export function standaloneExecutable(): string | undefined {
  if (bun) return bun.main.startsWith("/$bunfs/") ? process.execPath : undefined;
  try {
    const sea = process.getBuiltinModule?.("node:sea") as { isSea?: () => boolean } | undefined;
    return sea?.isSea?.() === true ? process.execPath : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Node.js environment variables that still act inside the Node single executable. `execArgvExtension: "none"` stops
 * NODE_OPTIONS, but Node reads a few others at bootstrap. A plugin runs as root with the runtime's environment, so
 * what can still be undone is undone here, first thing:
 * - NODE_V8_COVERAGE: coverage would be written as root into the directory it names at exit; stopping it now means
 *   no file and no directory (Node then prints one line on stderr, which is free-form log output for CNI).
 * - NODE_REDIRECT_WARNINGS: Node's warnings would be appended as root to the file it names; they go to stderr.
 * Bun honours neither, so under Bun there is nothing to undo.
 */
export function neutraliseNodeEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  if (bun) return;
  if (env.NODE_V8_COVERAGE) {
    try {
      (process.getBuiltinModule("node:v8") as typeof V8).stopCoverage();
    } catch {
      // No coverage session (an inspector-less build): nothing will be written either.
    }
  }
  if (env.NODE_REDIRECT_WARNINGS) {
    process.removeAllListeners("warning");
    process.on("warning", (w) => process.stderr.write(`cni-ts warning: ${w.name}: ${w.message}\n`));
  }
}

neutraliseNodeEnvironment();
