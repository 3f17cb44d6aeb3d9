/** The transcript codec (src/storage/transcript-codec.ts) and the snippet builder (src/storage/snippet.ts): pure units. */
import { describe, expect, it } from "vitest";
import { MAX_TEXT_CHARS } from "../src/records/limits";
import { bestTurn, fold, MATCH_END, MATCH_START, queryTerms, queryTokens, snippetOf } from "../src/records/snippet";
import {
  boundTurns,
  decodeTranscript,
  ftsDocument,
  packTranscript,
  TOOLS_DROPPED,
  TRANSCRIPT_LIMITS,
  TranscriptDecodeError,
  type StoredTurn,
} from "../src/storage/transcript-codec";

const turn = (index: number, message: string | null, extra: Partial<StoredTurn> = {}): StoredTurn => ({
  index,
  role: index % 2 === 0 ? "agent" : "user",
  message,
  time_in_call_secs: index * 3,
  tools: null,
  feedback: null,
  ...extra,
});

/** Text deflate cannot shrink much: pseudo-random letters. */
function noise(n: number, seed = 1): string {
  let x = seed;
  let s = "";
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += String.fromCharCode(97 + (x % 26));
  }
  return s;
}

describe("transcript codec", () => {
  it("round-trips turns, unicode and all, as format 1 (deflate-raw)", async () => {
    const turns = [
      turn(0, "Grüß Gott — ça va? 東京 🙏🏽 שלום عربى e\u0301", { tools: JSON.stringify({ calls: [{ a: "\u0000\u2028" }], results: [] }), feedback: "like" }),
      turn(1, null),
      turn(2, ""),
    ];
    const { blob, degraded } = await packTranscript(turns);
    expect(blob[0]).toBe(0x01);
    expect(degraded).toBeNull();
    const back = await decodeTranscript(blob);
    expect(back).toEqual(turns);
    // D1 hands BLOBs back as arrays of byte values.
    expect(await decodeTranscript(Array.from(blob))).toEqual(back);
    expect(await decodeTranscript(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength) as ArrayBuffer)).toEqual(back);
  });

  it("keeps a lone surrogate (not encodable as UTF-8) instead of failing", async () => {
    const back = await decodeTranscript((await packTranscript([turn(0, `${String.fromCharCode(0xd800)} lone`)])).blob);
    // JSON.stringify escapes it (\ud800), so it even survives the round trip.
    expect(back[0]!.message === `${String.fromCharCode(0xd800)} lone`).toBe(true);
  });

  it("encodes an empty transcript", async () => {
    const { blob } = await packTranscript([]);
    expect(await decodeTranscript(blob)).toEqual([]);
    expect(await decodeTranscript(null)).toEqual([]);
  });

  it("reads format 0 (plain JSON from migration 0004), in turn order", async () => {
    const json = JSON.stringify([
      [1, "user", "b", 3, null, null],
      [0, "agent", "a", 0, '{"calls":[],"results":[]}', "like"],
    ]);
    expect(await decodeTranscript(json)).toEqual([
      turn(0, "a", { tools: '{"calls":[],"results":[]}', feedback: "like" }),
      turn(1, "b"),
    ]);
    expect(await decodeTranscript(new TextEncoder().encode(json))).toHaveLength(2);
  });

  it("clips long messages and keeps a long transcript whole while it fits", async () => {
    const turns = [turn(0, "m".repeat(3 * 1024 * 1024)), ...Array.from({ length: 20 }, (_, i) => turn(i + 1, noise(MAX_TEXT_CHARS, i + 1)))];
    const { blob, turns: kept, degraded } = await packTranscript(turns);
    expect(degraded).toBeNull();
    expect(kept[0]!.message!.length).toBe(MAX_TEXT_CHARS);
    expect(kept[0]!.message!.endsWith("…")).toBe(true);
    const back = await decodeTranscript(blob);
    expect(back).toHaveLength(21);
    expect(back[5]!.message).toBe(noise(MAX_TEXT_CHARS, 5));
  });

  it("bounds a transcript with a MAX_TEXT_CHARS message in every one of 10,000 turns: tools go first, then message length", async () => {
    // One string shared by every turn (327 million characters in all, far past any webhook body): the
    // bound must not build a JSON text of that size.
    const big = noise(MAX_TEXT_CHARS);
    const tools = JSON.stringify({ calls: [noise(1000)], results: [] });
    const turns = Array.from({ length: 10_000 }, (_, i) => turn(i, big, { tools: i % 10 === 0 ? tools : null }));
    const bounded = boundTurns(turns);
    expect(bounded.json.byteLength).toBeLessThanOrEqual(TRANSCRIPT_LIMITS.jsonBytes);
    // 10,000 turns of 64 characters are about the limit: the last few hundred turns may go too.
    expect(["messages", "turns"]).toContain(bounded.degraded);
    expect(bounded.turns.length).toBeGreaterThan(9_000);
    expect(bounded.turns[0]!.tools).toBe(TOOLS_DROPPED);
    const { blob } = await packTranscript(turns);
    expect(blob.byteLength).toBeLessThanOrEqual(TRANSCRIPT_LIMITS.storedBytes);
    const back = await decodeTranscript(blob);
    expect(back).toEqual(bounded.turns);

    // 2,000 such turns keep every turn, with shorter messages.
    const fewer = boundTurns(turns.slice(0, 2_000));
    expect(fewer.degraded).toBe("messages");
    expect(fewer.turns).toHaveLength(2_000);
    expect(fewer.turns[1_999]!.message!.startsWith(big.slice(0, 20))).toBe(true);
    expect(fewer.json.byteLength).toBeLessThanOrEqual(TRANSCRIPT_LIMITS.jsonBytes);
  });

  it("drops tool payloads only when that is enough", () => {
    const turns = Array.from({ length: 40 }, (_, i) => turn(i, "short", { tools: JSON.stringify({ calls: [noise(MAX_TEXT_CHARS - 40, i)], results: [] }) }));
    const bounded = boundTurns(turns);
    expect(bounded.degraded).toBe("tools");
    expect(bounded.turns).toHaveLength(40);
    expect(bounded.turns.every((t) => t.tools === TOOLS_DROPPED && t.message === "short")).toBe(true);
  });

  it("keeps the first turns when even short messages do not fit", () => {
    const turns = Array.from({ length: 30_000 }, (_, i) => turn(i, noise(200, i)));
    const bounded = boundTurns(turns);
    expect(bounded.degraded).toBe("turns");
    expect(bounded.json.byteLength).toBeLessThanOrEqual(TRANSCRIPT_LIMITS.jsonBytes);
    expect(bounded.turns.length).toBeGreaterThan(1000);
    expect(bounded.turns[0]!.index).toBe(0);
  });

  it.each([
    ["an empty value", new Uint8Array(0), /empty/],
    ["an unknown format byte", new Uint8Array([0x07, 1, 2]), /unknown format byte 0x07/],
    ["corrupt deflate data", new Uint8Array([0x01, 0xff, 0xff, 0xff, 0x00, 0x13]), /corrupt|JSON/],
    ["plain JSON that is not turns", '[{"index":0}]', /turn 0 is malformed/],
    ["truncated plain JSON", "[[0,", /not valid JSON/],
  ])("refuses %s with a clear error", async (_what, value, message) => {
    const err = await decodeTranscript(value).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TranscriptDecodeError);
    expect(String((err as Error).message)).toMatch(message);
  });

  it("refuses a blob whose compressed bytes were cut short", async () => {
    const { blob } = await packTranscript([turn(0, noise(5000))]);
    await expect(decodeTranscript(blob.subarray(0, blob.byteLength / 2))).rejects.toBeInstanceOf(TranscriptDecodeError);
  });

  it("builds the search document from the messages, one per line", () => {
    expect(ftsDocument([turn(0, "a b"), turn(1, null), turn(2, ""), turn(3, "c")])).toBe("a b\nc");
  });
});

describe("snippets", () => {
  const terms = (q: string) => queryTerms(queryTokens(q));

  it("folds words as unicode61 remove_diacritics 2 does", () => {
    expect(fold("Crème")).toBe("creme");
    expect(fold("BRÛLÉE")).toBe("brulee");
    expect(fold("e\u0301")).toBe("e");
  });

  it("picks the turn with the most distinct query words, the earliest on ties, the last word as a prefix", () => {
    const turns = [turn(0, "about the order"), turn(1, "the order of the screen replacement"), turn(2, "screen replacement order"), turn(3, "nothing")];
    expect(bestTurn(turns, terms("screen order repl"), { chars: 1e6 })!.index).toBe(1);
    expect(bestTurn(turns, terms("order"), { chars: 1e6 })!.index).toBe(0);
    expect(bestTurn(turns, terms("zzz"), { chars: 1e6 })).toBeNull();
  });

  it("cuts about 16 words around the first match, with markers and ellipses", () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
    words[20] = "Wombat";
    const s = snippetOf(words.join(" "), terms("wombat"));
    expect(s).toBe(`…w16 w17 w18 w19 ${MATCH_START}Wombat${MATCH_END} w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31…`);
    expect(snippetOf("Wombat here", terms("wom"))).toBe(`${MATCH_START}Wombat${MATCH_END} here`);
  });

  it("stays bounded and well-formed on hostile text", () => {
    const t = terms("x");
    for (const message of [
      "🙂".repeat(MAX_TEXT_CHARS / 2),
      "!".repeat(MAX_TEXT_CHARS),
      `${"a".repeat(MAX_TEXT_CHARS - 2)} x`,
      `x${"\u0301".repeat(5000)} y`,
      `${MATCH_START}x${MATCH_END} \u0002\u0003 x`,
      "שלום x עולם",
    ]) {
      const s = snippetOf(message, t);
      expect(s.length, message.slice(0, 20)).toBeLessThan(1200);
      // Markers are balanced: the text's own STX/ETX never reach the snippet.
      const starts = s.split(MATCH_START).length - 1;
      expect(starts).toBe(s.split(MATCH_END).length - 1);
    }
  });

  it("shares one scan budget between hits: a 10,000-turn transcript stops where the budget ends", () => {
    const turns = Array.from({ length: 10_000 }, (_, i) => turn(i, i === 9_999 ? "needle" : "hay ".repeat(100)));
    const budget = { chars: 100_000 };
    expect(bestTurn(turns, terms("needle"), budget)).toBeNull();
    expect(budget.chars).toBeLessThanOrEqual(0);
    expect(bestTurn(turns, terms("needle"), { chars: 10_000_000 })!.index).toBe(9_999);
  });
});
