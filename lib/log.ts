/**
 * Logging goes to stderr only: stdout belongs to the CNI protocol (result or error object).
 * Debug lines appear when CNI_TS_DEBUG=1, so a runtime's log stays quiet by default.
 */
const debugOn = /^(1|true|yes)$/i.test(process.env.CNI_TS_DEBUG ?? "");

export const log = {
  debug(msg: string): void {
    if (debugOn) process.stderr.write(`cni-ts debug: ${msg}\n`);
  },
  warn(msg: string): void {
    process.stderr.write(`cni-ts warning: ${msg}\n`);
  },
};
