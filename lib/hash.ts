/**
 * Hashes and random bytes, with node:crypto loaded on first use: loading it costs every plugin process ~5 ms of CPU
 * at start, and several calls (host-local ADD and DEL, VERSION) never need it.
 *
 * @example
 *   hashHex("sha256", "ctr1\r\neth0").slice(0, 8)
 */
import type * as Crypto from "node:crypto";

let crypto: typeof Crypto | undefined;

function lib(): typeof Crypto {
  crypto ??= process.getBuiltinModule("node:crypto") as typeof Crypto;
  return crypto;
}

export function hashHex(algorithm: "sha256" | "sha512", data: string): string {
  return lib().createHash(algorithm).update(data).digest("hex");
}

export function randomBytes(n: number): Buffer {
  return lib().randomBytes(n);
}
