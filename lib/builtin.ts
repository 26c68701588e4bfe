/**
 * Node built-ins loaded on first use. `node:child_process` pulls in net, stream and friends: about 5 ms of CPU at
 * the start of every plugin process, and host-local ADD/DEL and every VERSION never spawn anything.
 */
import type * as ChildProcess from "node:child_process";

let childProcess: typeof ChildProcess | undefined;

export function childProcessModule(): typeof ChildProcess {
  childProcess ??= process.getBuiltinModule("node:child_process") as typeof ChildProcess;
  return childProcess;
}
