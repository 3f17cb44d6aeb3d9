/** The recall index's windows of turns and how a window's matching turn is found (src/records/recall-windows.ts). Pure. */
import { describe, expect, it } from "vitest";
import { lineMatcher, lineScores, stemOf, windowsOf, WINDOW_CHARS } from "../src/records/recall-windows";

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

/** The definition lineMatcher must keep: every word of every line cut, folded and stemmed (how it was done before it looked only for the stems). */
function byEveryWord(lines: string[], own: string[], expanded: string[], weight: number): number[] {
  const fold = (t: string) => t.normalize("NFD").replace(/\p{M}+/gu, "").toLowerCase();
  const same = (a: string, b: string) => a === b || (Math.min(a.length, b.length) >= 5 && (a.startsWith(b) || b.startsWith(a)));
  const ownStems = [...new Set(own.map((w) => stemOf(fold(w))))];
  const expStems = [...new Set(expanded.map((w) => stemOf(fold(w))))].filter((s) => !ownStems.includes(s));
  return lines.map((line) => {
    const words = (fold(line).match(/[\p{L}\p{N}]+/gu) ?? []).map(stemOf);
    let score = 0;
    for (const s of ownStems) if (words.some((w) => same(s, w))) score += 1;
    for (const s of expStems) if (words.some((w) => same(s, w))) score += weight;
    return score;
  });
}

describe("lineMatcher", () => {
  it("scores as cutting every word would, on text with accents, digits, astral letters and words inside words", () => {
    const vocabulary = [
      "dentist", "dentists", "Dentistry", "déntist", "recommend", "recommended", "recommending", "café", "cafe", "CAFÉS",
      "58213", "5821", "order", "orders", "reorder", "disorder", "card", "cards", "cardiac", "tooth", "toothache", "doctor",
      "doc", "𝐀pple", "apple", "naïve", "naive", "ﬁle", "file", "e\u0301clair", "éclair", "leak", "leaking", "leaks", "a", "I'd",
    ];
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const pick = <T,>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
    const separators = [" ", ", ", ".", "-", "'", "  ", "(", "😀", "\u00a0"];
    for (let round = 0; round < 300; round++) {
      const lines = Array.from({ length: 1 + Math.floor(random() * 6) }, () =>
        Array.from({ length: Math.floor(random() * 12) }, () => pick(vocabulary) + pick(separators)).join(""),
      );
      const own = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(vocabulary).toLowerCase());
      const expanded = Array.from({ length: Math.floor(random() * 4) }, () => pick(vocabulary).toLowerCase());
      expect(lineMatcher(own, expanded, 0.4)(lines.join("\n")), JSON.stringify({ lines, own, expanded })).toEqual(byEveryWord(lines, own, expanded, 0.4));
    }
  });

  it("a stem inside another word, or split across lines, is not a match", () => {
    expect(lineScores(["reorders and disorder", "den", "tist"], ["order", "dentist"], [], 0.4)).toEqual([0, 0, 0]);
    expect(lineScores(["x\u0301order", "ordering"], ["order"], [], 0.4)).toEqual([0, 1]);
  });
});
