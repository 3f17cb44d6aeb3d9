/** The pure streaming pieces alone: the JSON scanner and the base64 decoder, split at every boundary. */
import { describe, expect, it } from "vitest";
import { Base64Decoder, Base64Error } from "../src/webhooks/base64";
import { JsonScanner, JsonSyntaxError, type ScanSink } from "../src/webhooks/json-scan";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `input` cut at the given offsets. */
function pieces(input: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts, input.length]) {
    out.push(input.slice(prev, c));
    prev = c;
  }
  return out;
}

/** Every way to cut `input` once, twice (when short enough), and into single bytes. */
function allSplits(input: Uint8Array, pairs = input.length <= 80): Uint8Array[][] {
  const out: Uint8Array[][] = [[input]];
  for (let i = 0; i <= input.length; i++) {
    out.push(pieces(input, [i]));
    if (pairs) for (let j = i; j <= input.length; j++) out.push(pieces(input, [i, j]));
  }
  out.push(pieces(input, Array.from({ length: input.length - 1 }, (_, k) => k + 1)));
  return out;
}

interface ScanResult {
  rest: string;
  value: string;
  events: string[];
  lifted: number;
}

function scan(chunks: Uint8Array[], path?: [string] | [string, string]): ScanResult {
  const rest: Uint8Array[] = [];
  let value = "";
  const events: string[] = [];
  const sink: ScanSink = {
    rest: (b) => rest.push(b.slice()),
    valueStart: () => events.push("start"),
    valueBytes: (b) => {
      value += String.fromCharCode(...b);
    },
    valueCodeUnit: (u) => {
      value += String.fromCharCode(u);
    },
    valueEnd: () => events.push("end"),
  };
  const scanner = new JsonScanner(sink, path);
  for (const c of chunks) scanner.write(c);
  scanner.finish();
  const all = new Uint8Array(rest.reduce((n, r) => n + r.length, 0));
  let off = 0;
  for (const r of rest) {
    all.set(r, off);
    off += r.length;
  }
  return { rest: dec.decode(all), value, events, lifted: scanner.liftedCount };
}

function scanError(chunks: Uint8Array[]): string | null {
  try {
    scan(chunks);
    return null;
  } catch (e) {
    if (e instanceof JsonSyntaxError) return e.message;
    throw e;
  }
}

describe("JsonScanner", () => {
  const AUDIO = "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYx+/9=";

  it.each([
    ["type, data (agent, conversation, audio)", `{"type":"post_call_audio","data":{"agent_id":"a","conversation_id":"c","full_audio":"${AUDIO}"}}`],
    ["full_audio first, type last", `{"data":{"full_audio":"${AUDIO}","conversation_id":"c","agent_id":"a"},"type":"post_call_audio"}`],
    ["whitespace everywhere JSON allows", ` \r\n\t{ "data" :\n{ "full_audio"\t:  "${AUDIO}" , "x" : [ 1 , { } ] } , "type" : "t" }\n `],
    ["other values around it", `{"a":[{"data":{"full_audio":"no"}}],"b":{"full_audio":"no"},"data":{"n":-1.5e+3,"t":true,"f":false,"z":null,"o":{"full_audio":"deeper"},"full_audio":"${AUDIO}"}}`],
    ["an escaped key", `{"data":{"full\\u005faudio":"${AUDIO}"},"type":"t"}`],
    ["a BOM", `\ufeff{"data":{"full_audio":"${AUDIO}"}}`],
  ])("lifts data.full_audio with %s, at every split", (_name, doc) => {
    const bytes = enc.encode(doc);
    const expectedRest = JSON.parse(doc.replace(/^\ufeff/, ""));
    expectedRest.data[Object.keys(expectedRest.data).find((k) => k === "full_audio")!] = "";
    for (const chunks of allSplits(bytes)) {
      const r = scan(chunks);
      expect(r.value).toBe(AUDIO);
      expect(r.events).toEqual(["start", "end"]);
      expect(r.lifted).toBe(1);
      // The rest is the document with an empty full_audio, valid JSON on its own.
      expect(JSON.parse(r.rest.replace(/^\ufeff/, ""))).toEqual(expectedRest);
    }
  });

  it("decodes every escape inside the lifted value, split anywhere (\\/ included)", () => {
    const raw = `AB\\/CD\\u002f\\u002Bx\\n\\"\\\\\\b\\f\\r\\t\\ud83d\\ude00`;
    const doc = `{"data":{"full_audio":"${raw}"}}`;
    const expected = JSON.parse(doc).data.full_audio;
    for (const chunks of allSplits(enc.encode(doc))) {
      const r = scan(chunks);
      expect(r.value).toBe(expected);
      expect(JSON.parse(r.rest)).toEqual({ data: { full_audio: "" } });
    }
  });

  it("keeps the whole body as rest when there is no full_audio (every other event)", () => {
    const doc = `{"type":"post_call_transcription","data":{"conversation_id":"c","transcript":[{"message":"a \\"quote\\" \\u00e9 é"}]}}`;
    for (const chunks of allSplits(enc.encode(doc), false)) {
      const r = scan(chunks);
      expect(r.rest).toBe(doc);
      expect(r.lifted).toBe(0);
    }
  });

  it("counts a duplicated full_audio, and ignores non-string and misplaced ones", () => {
    expect(scan([enc.encode(`{"data":{"full_audio":"QQ==","full_audio":"Qg=="}}`)]).lifted).toBe(2);
    expect(scan([enc.encode(`{"data":{"full_audio":"QQ=="},"data":{"full_audio":"Qg=="}}`)]).lifted).toBe(2);
    for (const doc of [`{"data":{"full_audio":null}}`, `{"data":{"full_audio":[ "x" ]}}`, `[{"data":{"full_audio":"x"}}]`, `{"full_audio":"x"}`, `{"data":[{"full_audio":"x"}]}`]) {
      const r = scan([enc.encode(doc)]);
      expect(r.lifted, doc).toBe(0);
      expect(r.rest, doc).toBe(doc);
    }
  });

  it("lifts a one-key path too", () => {
    const r = scan([enc.encode(`{"data":{"audio":"x"},"audio":"QUJD"}`)], ["audio"]);
    expect(r.value).toBe("QUJD");
    expect(r.rest).toBe(`{"data":{"audio":"x"},"audio":""}`);
  });

  const corpus = [
    "{}", "[]", "1", "-0", "0.5", "1e5", "1E+5", "1e-5", "-12.34e56", '"x"', "true", "false", "null", " [1, [2, [3]], {}] ",
    '{"a":"\\u00e9"}', '{"a":{"b":{"c":[null,true,false]}}}', '""', "[[[[[]]]]]",
    "", " ", "{", "}", "[", "]", "{]", "[}", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{'a':1}",
    "01", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "1 2", "{}{}", "{} x", "tru", "nul", "falsey", "True", "NaN", "Infinity",
    '"abc', '"\\x"', '"\\u12G4"', '"\\u123"', '"a\nb"', '"a\tb"', "[1 2]", '{"a":1 "b":2}', '["a" "b"]', "[\"\\\"]",
  ];

  it.each(corpus)("agrees with JSON.parse on %j, at every split", (doc) => {
    let valid = true;
    try {
      JSON.parse(doc);
    } catch {
      valid = false;
    }
    for (const chunks of allSplits(enc.encode(doc))) {
      const err = scanError(chunks);
      expect(err === null, `${JSON.stringify(doc)} split ${chunks.map((c) => c.length)}: ${err}`).toBe(valid);
    }
  });

  it("agrees with JSON.parse on thousands of randomly damaged documents", () => {
    const rand = rng(20261128);
    const alphabet = ' {}[]:,"\\-+.0123456789eEtrufalsn/xAz\n';
    const value = (depth: number): unknown => {
      const k = rand();
      if (depth > 3 || k < 0.3) return [1, -2.5, 3e7, "s\"\\/\u00e9", true, false, null][Math.floor(rand() * 7)];
      if (k < 0.65) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [`k${i}`, value(depth + 1)]));
    };
    let checked = 0;
    for (let n = 0; n < 3000; n++) {
      let doc = JSON.stringify({ type: "t", data: { full_audio: "QUJD", x: value(0) } });
      const edits = Math.floor(rand() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (doc.length + 1));
        const ch = alphabet[Math.floor(rand() * alphabet.length)]!;
        doc = rand() < 0.5 ? doc.slice(0, at) + ch + doc.slice(at) : doc.slice(0, at) + doc.slice(at + 1);
      }
      let valid = true;
      try {
        JSON.parse(doc);
      } catch {
        valid = false;
      }
      const bytes = enc.encode(doc);
      const cut = Math.floor(rand() * (bytes.length + 1));
      expect(scanError(pieces(bytes, [cut])) === null, doc).toBe(valid);
      checked++;
    }
    expect(checked).toBe(3000);
  });

  it("handles deep nesting without recursion", () => {
    const doc = "[".repeat(100_000) + "]".repeat(100_000);
    expect(scanError([enc.encode(doc)])).toBeNull();
    expect(scanError([enc.encode("[".repeat(100_000))])).toMatch(/end of the document/);
  });

  it("reports the byte offset of the first error", () => {
    expect(scanError([enc.encode('{"a":'), enc.encode("x}")])).toBe("Expected a value at byte 5");
  });
});

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function decodeAll(chunks: Uint8Array[], outputBytes?: number): Uint8Array {
  const out: number[] = [];
  const d = new Base64Decoder((b) => out.push(...b), outputBytes);
  for (const c of chunks) d.write(c);
  d.finish();
  return new Uint8Array(out);
}

function atobBytes(s: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function decodeOrNull(chunks: Uint8Array[], outputBytes?: number): Uint8Array | null {
  try {
    return decodeAll(chunks, outputBytes);
  } catch (e) {
    if (e instanceof Base64Error) return null;
    throw e;
  }
}

describe("Base64Decoder", () => {
  it("decodes lengths 0 to 40 at every split, padded or not, with any output block", () => {
    const rand = rng(7);
    for (let len = 0; len <= 40; len++) {
      const bytes = Uint8Array.from({ length: len }, () => Math.floor(rand() * 256));
      const text = b64(bytes);
      for (const variant of [text, text.replace(/=+$/, "")]) {
        for (const chunks of allSplits(enc.encode(variant), len <= 12)) {
          expect(decodeAll(chunks)).toEqual(bytes);
        }
        for (const block of [3, 4, 6, 7, 48]) expect(decodeAll([enc.encode(variant)], block)).toEqual(bytes);
      }
    }
  });

  it("skips ASCII whitespace anywhere, as atob does", () => {
    const bytes = enc.encode("any carnal pleasure.");
    const spaced = b64(bytes).replace(/(.{3})/g, "$1\n ").replace(/=/g, "\r\n=\t");
    for (const chunks of allSplits(enc.encode(spaced), false)) expect(decodeAll(chunks)).toEqual(bytes);
  });

  it.each([
    ["A", "ends in the middle"],
    ["AAAAA", "ends in the middle"],
    ["A===", "Misplaced"],
    ["AB=", "Incomplete"],
    ["AB===", "Misplaced"],
    ["ABC==", "Misplaced"],
    ["AB=C", "after `=`"],
    ["AB==AB==", "after `=`"],
    ["AB*D", "not base64"],
    ["AB-_", "not base64"],
    ["QUJD\u00e9", "not base64"],
    ["=", "Misplaced"],
  ])("refuses %j (%s)", (input, message) => {
    for (const chunks of allSplits(enc.encode(input))) {
      expect(() => decodeAll(chunks)).toThrow(message);
    }
  });

  it("accepts exactly what atob accepts, with the same bytes, on random strings", () => {
    const rand = rng(99);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const extra = "= \n*";
    let agreedValid = 0;
    for (let n = 0; n < 3000; n++) {
      const len = Math.floor(rand() * 14);
      let s = "";
      for (let i = 0; i < len; i++) {
        s += rand() < 0.85 ? alphabet[Math.floor(rand() * 64)] : extra[Math.floor(rand() * extra.length)];
      }
      const expected = atobBytes(s);
      const bytes = enc.encode(s);
      const got = decodeOrNull(pieces(bytes, [Math.floor(rand() * (bytes.length + 1))]), 3);
      expect(got, JSON.stringify(s)).toEqual(expected);
      if (expected) agreedValid++;
    }
    expect(agreedValid).toBeGreaterThan(500);
  });

  it("reports how far it got", () => {
    const d = new Base64Decoder(() => {});
    d.write(enc.encode("QUJD"));
    expect(() => d.write(enc.encode("QU*D"))).toThrow(expect.objectContaining({ offset: 6 }));
  });
});
