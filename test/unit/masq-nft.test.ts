import { describe, expect, it } from "vitest";
import { tableMissing } from "../../lib/masq-nft.js";

// Messages of nft 1.0.6 for the same delete script, without and with our table.
const NO_TABLE = "/dev/stdin:1:21-31: Error: No such file or directory\ndelete element inet cni_ts_masq pods4 { 10.0.0.2 }\n                    ^^^^^^^^^^^";
const NO_ELEMENT = "/dev/stdin:1:41-48: Error: Could not process rule: No such file or directory\ndelete element inet cni_ts_masq pods4 { 10.0.0.2 }\n                                        ^^^^^^^^";

describe("tableMissing", () => {
  it("recognises nft's answer for a missing table, and only that", () => {
    expect(tableMissing(NO_TABLE)).toBe(true);
    expect(tableMissing(NO_ELEMENT)).toBe(false);
    expect(tableMissing("/dev/stdin:1:21-26: Error: No such file or directory\ndelete element inet other pods4 { 10.0.0.2 }\n")).toBe(false);
    expect(tableMissing("")).toBe(false);
  });
});
