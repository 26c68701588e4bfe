/**
 * Node.js environment variables that still act inside the single executable. `execArgvExtension: "none"` stops
 * NODE_OPTIONS, but Node reads a few others at bootstrap, before any of our code runs. A plugin runs as root with
 * the runtime's environment, so what can still be undone is undone here, first thing:
 * - NODE_V8_COVERAGE: coverage would be written as root into the directory it names at exit; stopping it now means
 *   no file and no directory (Node then prints one line on stderr, which is free-form log output for CNI).
 * - NODE_REDIRECT_WARNINGS: Node's warnings would be appended as root to the file it names; they go to stderr.
 * What cannot be undone from here (Node acts on them before this runs) is listed in docs/reliability.md, bug 6.
 */
import type * as V8 from "node:v8";

export function neutraliseNodeEnvironment(env: NodeJS.ProcessEnv = process.env): void {
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
