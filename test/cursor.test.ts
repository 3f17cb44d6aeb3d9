/** Page cursors and page sizes for the conversation list. */
import { describe, expect, it } from "vitest";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decodeCursor, encodeCursor, pageSize } from "../src/api/cursor";
import type { ApiError } from "../src/lib/errors";

describe("cursor", () => {
  it.each([
    { startedAt: 1764320100, conversationId: "conv_01jx3m7r0a9b8c7d6e5f4g3h2j" },
    { startedAt: 0, conversationId: "a" },
    { startedAt: -5, conversationId: "ünïcödé/../%2F'; DROP TABLE conversations; --" },
  ])("round-trips %j through an URL-safe string", (p) => {
    const c = encodeCursor(p);
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c)).toEqual(p);
  });

  const b64 = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  it.each([
    ["empty", ""],
    ["not base64url", "abc$"],
    ["impossible length", "a"],
    ["not JSON", b64("hello")],
    ["not an array", b64('{"s":1}')],
    ["another version", b64('[2,1,"c"]')],
    ["a fractional time", b64('[1,1.5,"c"]')],
    ["a string time", b64('[1,"1","c"]')],
    ["an empty id", b64('[1,1,""]')],
    ["a control character", b64('[1,1,"a\\u0000"]')],
    ["too long", "A".repeat(3000)],
  ])("rejects %s with 400 invalid_cursor", (_name, c) => {
    expect(() => decodeCursor(c)).toThrow(expect.objectContaining({ status: 400, code: "invalid_cursor" }) as ApiError);
  });
});

describe("pageSize", () => {
  it("defaults and bounds", () => {
    expect(pageSize(null)).toBe(DEFAULT_PAGE_SIZE);
    expect(pageSize("1")).toBe(1);
    expect(pageSize(String(MAX_PAGE_SIZE))).toBe(MAX_PAGE_SIZE);
  });
  it.each(["0", "101", "-1", "2.5", "", "ten", "1e2", "99999"])("rejects %j with 400 invalid_limit", (v) => {
    expect(() => pageSize(v)).toThrow(expect.objectContaining({ status: 400, code: "invalid_limit" }) as ApiError);
  });
});
