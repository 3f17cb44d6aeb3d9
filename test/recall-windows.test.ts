/** The recall index's windows of turns and how a window's matching turn is found (src/records/recall-windows.ts). Pure. */
import { describe, expect, it } from "vitest";
import { lineScores, stemOf, windowsOf, WINDOW_CHARS } from "../src/records/recall-windows";

describe("windowsOf", () => {
  it("packs consecutive turns up to WINDOW_CHARS, a line and a speaker letter each, in order", () => {
    const turns = Array.from({ length: 40 }, (_, i) => [i % 2 ? "u" : "a", `turn ${i} ${"x".repeat(90)}`] as ["u" | "a", string]);
    const w = windowsOf(turns);
    expect(w.length).toBe(Math.ceil((40 * 98) / WINDOW_CHARS));
    for (const x of w) {
      expect(x.body.length).toBeLessThanOrEqual(WINDOW_CHARS);
      expect(x.body.split("\n").length).toBe(x.speakers.length);
    }
    expect(w.flatMap((x) => x.body.split("\n"))).toEqual(turns.map(([, t]) => t));
    expect(w.map((x) => x.speakers).join("")).toBe(turns.map(([l]) => l).join(""));
  });

  it("a turn's own line breaks become spaces, empty turns are dropped, a long turn is a window alone", () => {
    const long = "y".repeat(WINDOW_CHARS + 10);
    const w = windowsOf([["u", "first\nline\r\nbreaks"], ["a", "   "], ["a", long], ["u", "after"]]);
    expect(w).toEqual([
      { speakers: "u", body: "first line breaks" },
      { speakers: "a", body: long },
      { speakers: "u", body: "after" },
    ]);
  });
});

describe("lineScores", () => {
  it("counts distinct query words by stem, expansions at their weight", () => {
    const lines = ["Which dentist did you recommend?", "I'd recommend Dr. Patel, a tooth doctor.", "Thanks."];
    expect(lineScores(lines, ["dentists", "recommending"], [], 0.4)).toEqual([2, 1, 0]);
    expect(lineScores(lines, ["patel"], ["tooth", "doctor"], 0.5)).toEqual([0, 2, 0]);
    expect(stemOf("leaking")).toBe(stemOf("leaks"));
  });
});
