/** HTTP Range and If-None-Match parsing for the audio endpoint (pure). */
import { describe, expect, it } from "vitest";
import { noneMatch, parseRange } from "../src/api/range";

describe("parseRange", () => {
  it.each([
    [null, 100, { kind: "full" }],
    ["bytes=0-9", 100, { kind: "partial", start: 0, end: 9 }],
    ["bytes=10-", 100, { kind: "partial", start: 10, end: 99 }],
    ["bytes=-10", 100, { kind: "partial", start: 90, end: 99 }],
    ["bytes=-1000", 100, { kind: "partial", start: 0, end: 99 }],
    ["bytes=90-1000", 100, { kind: "partial", start: 90, end: 99 }],
    ["BYTES = 5 - 6", 100, { kind: "partial", start: 5, end: 6 }],
    ["bytes=99-99", 100, { kind: "partial", start: 99, end: 99 }],
    ["bytes=100-", 100, { kind: "unsatisfiable" }],
    ["bytes=100-200", 100, { kind: "unsatisfiable" }],
    ["bytes=-0", 100, { kind: "unsatisfiable" }],
    ["bytes=0-", 0, { kind: "unsatisfiable" }],
    ["bytes=-5", 0, { kind: "unsatisfiable" }],
    ["bytes=99999999999999999999-", 100, { kind: "unsatisfiable" }],
    ["bytes=5-1", 100, { kind: "full" }],
    ["bytes=-", 100, { kind: "full" }],
    ["bytes=0-1,3-4", 100, { kind: "full" }],
    ["items=0-1", 100, { kind: "full" }],
    ["bytes=a-b", 100, { kind: "full" }],
    ["", 100, { kind: "full" }],
  ])("%j of %i bytes", (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe("noneMatch", () => {
  const etag = '"abc"';
  it.each([
    [null, false],
    ['"abc"', true],
    ['W/"abc"', true],
    ['"x", "abc"', true],
    ["*", true],
    ['"abcd"', false],
    ["abc", false],
  ])("%j", (header, expected) => {
    expect(noneMatch(header, etag)).toBe(expected);
  });
});
