/** The API key comparison (src/lib/http/auth.ts `sameKey`): exact bytes only, whatever the lengths. */
import { describe, expect, it } from "vitest";
import { sameKey } from "../src/lib/http/auth";

const b = (s: string) => new TextEncoder().encode(s);

describe("sameKey", () => {
  it("accepts exactly the key", () => {
    expect(sameKey(b("test-api-key"), b("test-api-key"))).toBe(true);
    expect(sameKey(b("ключ-🔑"), b("ключ-🔑"))).toBe(true);
  });

  it.each([
    ["a prefix of the key", "test-api"],
    ["the key and more", "test-api-key-and-more"],
    ["the key repeated", "test-api-keytest-api-key"],
    ["one byte changed", "test-api-kez"],
    ["another case", "TEST-API-KEY"],
    ["nothing", ""],
  ])("refuses %s", (_name, presented) => {
    expect(sameKey(b(presented), b("test-api-key"))).toBe(false);
  });
});
