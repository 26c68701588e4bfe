import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashHex, randomBytes } from "../../lib/hash.js";
import { Gen } from "../reliability/gen.js";

describe("hashHex", () => {
  it("matches the standard vectors", () => {
    expect(hashHex("sha256", "abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hashHex("sha256", "")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(hashHex("sha512", "abc")).toBe(
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    );
  });

  it("equals node:crypto for every length across the block and padding boundaries, and for non-ASCII text", () => {
    const r = new Gen(20261122);
    for (let len = 0; len <= 300; len++) {
      const s = Array.from({ length: len }, () =>
        String.fromCodePoint(r.int(0, 9) === 0 ? 0x80 + r.int(0, 0x2000) : 0x20 + r.int(0, 94)),
      ).join("");
      for (const alg of ["sha256", "sha512"] as const)
        expect([alg, len, hashHex(alg, s)]).toEqual([alg, len, createHash(alg).update(s).digest("hex")]);
    }
  });

  it("names a veth and a masquerade chain as before", () => {
    expect(hashHex("sha256", "ctr1\r\neth0").slice(0, 8)).toBe(
      createHash("sha256").update("ctr1\r\neth0").digest("hex").slice(0, 8),
    );
  });
});

describe("randomBytes", () => {
  it("returns the number of bytes asked for, different each time", () => {
    const a = randomBytes(16);
    const b = randomBytes(16);
    expect([a.length, b.length]).toEqual([16, 16]);
    expect(a.equals(b)).toBe(false);
  });

  it("fills more than one getRandomValues call can (65,536 bytes) to the end", () => {
    const big = randomBytes(70_000);
    expect(big.length).toBe(70_000);
    expect(big.subarray(65_536).some((x) => x !== 0)).toBe(true);
  });
});
