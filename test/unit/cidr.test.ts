import { describe, expect, it } from "vitest";
import {
  bigIntToIP,
  broadcastAddress,
  cidrContains,
  cidrsOverlap,
  formatCidr,
  formatIP,
  ipToBigInt,
  isNetworkAddress,
  lastAddress,
  nextIP,
  parseCidr,
  parseIP,
  prevIP,
} from "../../lib/cidr.js";

describe("parseIP / formatIP", () => {
  it.each([
    ["10.1.2.3", "10.1.2.3"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["2001:DB8:1:0:0:0:0:2", "2001:db8:1::2"],
    ["fd09:0000::0002", "fd09::2"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::1.2.3.4", "::102:304"],
    ["64:ff9b::10.0.0.1", "64:ff9b::a00:1"],
  ])("%s -> %s", (input, out) => {
    const ip = parseIP(input);
    expect(ip).toBeDefined();
    expect(formatIP(ip!)).toBe(out);
  });

  it.each([
    "",
    "10.1.2",
    "10.1.2.3.4",
    "10.1.2.256",
    "010.1.2.3",
    "10.1.2.3/24",
    "1.2.3.4::",
    "::ffff:1.2.3.4",
    "::FFFF:0a01:0203",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "12345::",
    "fe80::1%eth0",
    ":1::",
    "g::",
  ])("rejects %j", (input) => {
    expect(parseIP(input)).toBeUndefined();
  });

  // IPv6 forms as Go's net.ParseIP reads them and net.IP.String() prints them (RFC 5952): the reservation file
  // names of host-local depend on it byte for byte.
  it.each([
    ["0001:0db8:0000:0000:0000:0000:0000:0001", "1:db8::1"], // leading zeros within a group are allowed
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"], // "::" may stand for one group; one zero group is not compressed
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // the longest run of zero groups is compressed
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"], // of runs of the same length, the first
    ["FE80::ABCD", "fe80::abcd"], // lower-case out
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"], // a dotted quad closing a full address
    ["::ffff:0:1.2.3.4", "::ffff:0:102:304"], // IPv4-translated (RFC 2765), not IPv4-mapped
  ])("IPv6 %s -> %s", (input, out) => {
    expect(formatIP(parseIP(input)!)).toBe(out);
  });

  it.each([
    ["::ffff:10.0.0.1", "IPv4-mapped, dotted"],
    ["0:0:0:0:0:ffff:a00:1", "IPv4-mapped, in hex groups"],
    ["::ffff:a00:1", "IPv4-mapped, compressed"],
    ["fe80::1%25eth0", "a zone, URL-escaped"],
    ["fe80::%eth0", "a zone after ::"],
    ["00001::", "five hex digits"],
    ["::ffff:01.2.3.4", "a leading zero in the dotted quad"],
    ["::1.2.3", "a short dotted quad"],
    ["1.2.3.4::", "a dotted quad before ::"],
    ["::1.2.3.4:5", "a dotted quad not last"],
    ["1:2:3:4:5:6:7:1.2.3.4", "a dotted quad past eight groups"],
    [":::", "three colons"],
    ["1:::2", "three colons inside"],
    ["1:2:3:4:5:6:7:8::", ":: with eight groups"],
    [" ::1", "white space"],
    ["[::1]", "brackets"],
    ["0x1::", "a 0x prefix"],
  ])("rejects %j (%s)", (input) => {
    expect(parseIP(input)).toBeUndefined();
  });

  it("refuses a zone or an IPv4-mapped address in a CIDR too", () => {
    expect(parseCidr("fe80::%eth0/64")).toBeUndefined();
    expect(parseCidr("fe80::/64%eth0")).toBeUndefined();
    expect(parseCidr("::ffff:10.0.0.0/104")).toBeUndefined();
    expect(parseCidr("fe80::/064")).toMatchObject({ family: 6, prefix: 64 });
  });

  it("keeps the family beside the value", () => {
    expect(parseIP("10.0.0.1")).toEqual({ family: 4, value: 0x0a000001n });
    expect(parseIP("::a00:1")).toEqual({ family: 6, value: 0x0a000001n });
    expect(ipToBigInt("10.0.0.1")).toBe(167772161n);
    expect(bigIntToIP(6, 0x20010db8000100000000000000000002n)).toBe("2001:db8:1::2");
  });
});

describe("parseCidr", () => {
  it("keeps the address as written and computes the network", () => {
    expect(parseCidr("10.1.2.3/24")).toEqual({ family: 4, ip: 0x0a010203n, network: 0x0a010200n, prefix: 24 });
    expect(isNetworkAddress(parseCidr("10.1.2.3/24")!)).toBe(false);
    expect(isNetworkAddress(parseCidr("10.1.2.0/24")!)).toBe(true);
    expect(formatCidr(parseCidr("2001:DB8::/032")!)).toBe("2001:db8::/32");
  });

  it.each(["10.1.2.0", "10.1.2.0/33", "::/129", "10.1.2.0/", "10.1.2.0/x", "::ffff:10.0.0.0/120", "10.1.2.0/24/1"])(
    "rejects %j",
    (input) => {
      expect(parseCidr(input)).toBeUndefined();
    },
  );

  it("last address, contains, overlap", () => {
    const v4 = parseCidr("10.1.2.0/29")!;
    expect(bigIntToIP(4, lastAddress(v4))).toBe("10.1.2.7");
    expect(bigIntToIP(4, broadcastAddress(parseCidr("10.0.0.0/8")!))).toBe("10.255.255.255");
    expect(bigIntToIP(6, lastAddress(parseCidr("2001:db8:1::/64")!))).toBe("2001:db8:1:0:ffff:ffff:ffff:ffff");
    expect(cidrContains(v4, parseIP("10.1.2.7")!)).toBe(true);
    expect(cidrContains(v4, parseIP("10.1.2.8")!)).toBe(false);
    expect(cidrContains(parseCidr("::/96")!, parseIP("0.0.0.1")!)).toBe(false);
    expect(cidrsOverlap(parseCidr("10.0.0.0/8")!, parseCidr("10.1.0.0/16")!)).toBe(true);
    expect(cidrsOverlap(parseCidr("10.0.0.0/16")!, parseCidr("10.1.0.0/16")!)).toBe(false);
    expect(cidrsOverlap(parseCidr("0.0.0.0/0")!, parseCidr("::/0")!)).toBe(false);
  });

  it("next and prev stop at the ends of the address space", () => {
    expect(formatIP(nextIP(parseIP("10.0.0.255")!)!)).toBe("10.0.1.0");
    expect(formatIP(prevIP(parseIP("fd09::1:0")!)!)).toBe("fd09::ffff");
    expect(nextIP(parseIP("255.255.255.255")!)).toBeUndefined();
    expect(nextIP(parseIP("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")!)).toBeUndefined();
    expect(prevIP(parseIP("::")!)).toBeUndefined();
  });
});
