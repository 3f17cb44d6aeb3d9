/** The webhook source allowlist: address and CIDR parsing (IPv4 and IPv6), matching, configuration. */
import { describe, expect, it } from "vitest";
import { ELEVENLABS_EGRESS_IPS, inRange, isAllowed, parseAllowlist, parseIp, parseRange } from "../src/lib/http/source-ip";
import { parseConfig } from "../src/lib/config";
import type { Env } from "../src/lib/env";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

describe("parseIp", () => {
  it.each([
    ["192.0.2.1", 4, "c0000201"],
    ["0.0.0.0", 4, "00000000"],
    ["255.255.255.255", 4, "ffffffff"],
    [" 10.0.0.1 ", 4, "0a000001"],
    ["2001:db8::1", 6, "20010db8000000000000000000000001"],
    ["::", 6, "00000000000000000000000000000000"],
    ["::1", 6, "00000000000000000000000000000001"],
    ["fe80::", 6, "fe800000000000000000000000000000"],
    ["2001:DB8:0:0:8:800:200C:417A", 6, "20010db80000000000080800200c417a"],
    ["1:2:3:4:5:6:7:8", 6, "00010002000300040005000600070008"],
    ["64:ff9b::192.0.2.33", 6, "0064ff9b0000000000000000c0000221"],
    // IPv4-mapped IPv6 is the IPv4 address it carries.
    ["::ffff:192.0.2.1", 4, "c0000201"],
    ["::FFFF:34.67.146.145", 4, "22439291"],
  ])("parses %s", (text, version, bytes) => {
    const ip = parseIp(text);
    expect(ip?.version).toBe(version);
    expect(hex(ip!.bytes)).toBe(bytes);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.-4",
    "1.2.3.4/",
    "a.b.c.d",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "12345::1",
    "::g",
    ":1:2:3:4:5:6:7",
    "fe80::1%eth0",
    "[::1]",
    "::ffff:1.2.3",
    "1.2.3.4:8080",
  ])("rejects %j", (text) => {
    expect(parseIp(text)).toBeNull();
  });
});

describe("parseRange and inRange", () => {
  const match = (range: string, ip: string) => inRange(parseIp(ip)!, parseRange(range)!);

  it("matches IPv4 blocks at every kind of prefix", () => {
    expect(match("10.0.0.0/8", "10.255.1.2")).toBe(true);
    expect(match("10.0.0.0/8", "11.0.0.1")).toBe(false);
    expect(match("192.0.2.0/25", "192.0.2.127")).toBe(true);
    expect(match("192.0.2.0/25", "192.0.2.128")).toBe(false);
    expect(match("0.0.0.0/0", "203.0.113.9")).toBe(true);
    expect(match("34.67.146.145", "34.67.146.145")).toBe(true);
    expect(match("34.67.146.145", "34.67.146.146")).toBe(false);
    expect(match("34.67.146.145/32", "34.67.146.145")).toBe(true);
  });

  it("matches IPv6 blocks, including prefixes that split a byte", () => {
    expect(match("2001:db8::/32", "2001:db8:ffff::1")).toBe(true);
    expect(match("2001:db8::/32", "2001:db9::1")).toBe(false);
    expect(match("2001:db8::/33", "2001:db8:7fff::1")).toBe(true);
    expect(match("2001:db8::/33", "2001:db8:8000::1")).toBe(false);
    expect(match("::/0", "2606:4700::1111")).toBe(true);
    expect(match("::1", "::1")).toBe(true);
  });

  it("never matches across address families", () => {
    expect(match("0.0.0.0/0", "2001:db8::1")).toBe(false);
    expect(match("::/0", "192.0.2.1")).toBe(false);
  });

  it("treats IPv4-mapped addresses and blocks as IPv4", () => {
    expect(match("192.0.2.0/24", "::ffff:192.0.2.77")).toBe(true);
    expect(match("::ffff:192.0.2.0/120", "192.0.2.5")).toBe(true);
    expect(match("::ffff:192.0.2.0/120", "192.0.3.5")).toBe(false);
  });

  it("ignores host bits below the prefix", () => {
    expect(match("10.1.2.3/8", "10.200.0.1")).toBe(true);
  });

  it.each(["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/x", "::/129", "::ffff:1.2.3.4/95", "nope/8"])("rejects %j", (text) => {
    expect(parseRange(text)).toBeNull();
  });
});

describe("parseAllowlist and isAllowed", () => {
  it("is off when empty, and then allows anything, even no address", () => {
    expect(parseAllowlist(undefined)).toBeNull();
    expect(parseAllowlist(" , ")).toBeNull();
    expect(isAllowed(null, null)).toBe(true);
    expect(isAllowed(null, "203.0.113.1")).toBe(true);
  });

  it("expands `elevenlabs` to every published egress address, and only those", () => {
    const list = parseAllowlist("ElevenLabs")!;
    expect(list).toHaveLength(ELEVENLABS_EGRESS_IPS.length);
    expect(ELEVENLABS_EGRESS_IPS).toHaveLength(12);
    for (const ip of ELEVENLABS_EGRESS_IPS) expect(isAllowed(list, ip)).toBe(true);
    expect(isAllowed(list, "34.67.146.144")).toBe(false);
    expect(isAllowed(list, "::ffff:35.204.38.71")).toBe(true);
  });

  it("combines the keyword with the operator's own addresses and blocks", () => {
    const list = parseAllowlist("elevenlabs, 10.0.0.0/8 ,2001:db8::/48")!;
    expect(isAllowed(list, "34.93.26.174")).toBe(true);
    expect(isAllowed(list, "10.9.9.9")).toBe(true);
    expect(isAllowed(list, "2001:db8:0:1::5")).toBe(true);
    expect(isAllowed(list, "2001:db8:1::5")).toBe(false);
  });

  it("refuses a missing or unreadable source address when on (fail closed)", () => {
    const list = parseAllowlist("0.0.0.0/0")!;
    expect(isAllowed(list, null)).toBe(false);
    expect(isAllowed(list, "")).toBe(false);
    expect(isAllowed(list, "not-an-ip")).toBe(false);
    expect(isAllowed(list, "198.51.100.1")).toBe(true);
  });

  it("names the bad entry in a configuration error", () => {
    const env = { ALLOWED_SOURCE_IPS: "elevenlabs,10.0.0.0/40" } as unknown as Env;
    expect(() => parseConfig(env)).toThrow(/ALLOWED_SOURCE_IPS.*10\.0\.0\.0\/40/);
  });
});

describe("RETENTION_DAYS", () => {
  const cfg = (v: string | undefined) => parseConfig({ RETENTION_DAYS: v } as unknown as Env);
  it("is off unless set", () => {
    expect(cfg(undefined).retentionDays).toBeNull();
    expect(cfg("").retentionDays).toBeNull();
    expect(cfg(" ").retentionDays).toBeNull();
  });
  it("accepts whole days from 1 to 36500", () => {
    expect(cfg("30").retentionDays).toBe(30);
    expect(cfg("36500").retentionDays).toBe(36500);
  });
  it.each(["0", "-1", "1.5", "thirty", "36501"])("rejects %j, naming the setting", (v) => {
    expect(() => cfg(v)).toThrow(/RETENTION_DAYS/);
  });
});
