/**
 * Property tests (fast-check, run inside workerd like every other test) of the pure pieces that face
 * the network: the signature header parser and verifier, and payload normalisation.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/lib/errors";
import { isValidId, normalisePhone } from "../src/records/identity";
import { RECORD_LIMITS, conversationRecord, jsonDepth, normaliseForMemory, ownerOfRecord, parseEnvelope, type ConversationRecord, type MemoryRecord, type ResolvedUser } from "../src/records/payload";
import { normaliseCallFailure } from "../src/records/call-failure";
import { bytesToHex } from "../src/lib/bytes";
import { checkHeader, parseSignatureHeader, sign, verifySignature } from "../src/webhooks/signature";
import { Base64Decoder, Base64Error } from "../src/webhooks/base64";
import fixture from "./fixtures/transcription.json";

const enc = new TextEncoder();

const mac = fc.uint8Array({ minLength: 32, maxLength: 32 });
const space = fc.stringMatching(/^[ \t]{0,3}$/);
const extraKey = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/).filter((k) => k !== "t" && k !== "v0");
const extraValue = fc.stringMatching(/^[^,]{0,20}$/);

type Field = { kind: "t" } | { kind: "v0"; index: number } | { kind: "extra"; key: string; value: string } | { kind: "bare"; word: string };

describe("signature header parser", () => {
  it("reads back any valid header: any order, spacing, hex case and extra fields", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 999_999_999_999 }),
        fc.array(fc.tuple(mac, fc.boolean()), { minLength: 1, maxLength: 5 }),
        fc.array(fc.oneof(fc.record({ key: extraKey, value: extraValue }), fc.stringMatching(/^[a-z]{1,8}$/)), { maxLength: 4 }),
        fc.infiniteStream(space),
        fc.func(fc.integer()),
        (t, macs, extras, spaces, order) => {
          const fields: Field[] = [
            { kind: "t" },
            ...macs.map((_, index) => ({ kind: "v0" as const, index })),
            ...extras.map((e) => (typeof e === "string" ? { kind: "bare" as const, word: e } : { kind: "extra" as const, ...e })),
          ];
          // A random order that keeps the v0 fields in their own relative order (they are read in order).
          const keyed = fields.map((f, i) => ({ f, k: f.kind === "v0" ? -1 : order(i) }));
          const v0s = keyed.filter((x) => x.f.kind === "v0");
          const others = keyed.filter((x) => x.f.kind !== "v0").sort((a, b) => a.k - b.k);
          const arranged: Field[] = [];
          for (const [i, o] of others.entries()) {
            arranged.push(o.f);
            if (i === 0) arranged.push(...v0s.map((x) => x.f));
          }
          const s = spaces[Symbol.iterator]();
          const sp = () => s.next().value as string;
          const text = arranged
            .map((f) => {
              if (f.kind === "t") return `${sp()}t${sp()}=${sp()}${t}${sp()}`;
              if (f.kind === "v0") {
                const [bytes, upper] = macs[f.index]!;
                const hex = bytesToHex(bytes);
                return `${sp()}v0${sp()}=${sp()}${upper ? hex.toUpperCase() : hex}${sp()}`;
              }
              if (f.kind === "bare") return `${sp()}${f.word}${sp()}`;
              return `${sp()}${f.key}=${f.value}`;
            })
            .join(",");
          const parsed = parseSignatureHeader(text);
          expect(parsed).not.toBeNull();
          expect(parsed!.timestamp).toBe(t);
          expect(parsed!.signatures.map(bytesToHex)).toEqual(macs.map(([b]) => bytesToHex(b)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary strings, and whatever it accepts is well formed", () => {
    const hostile = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.string({ unit: fc.constantFrom("t", "v", "0", "=", ",", " ", "a", "f", "9", "-", ".", "e"), maxLength: 200 }),
      fc.string({ maxLength: 5000 }),
    );
    fc.assert(
      fc.property(hostile, (header) => {
        const parsed = parseSignatureHeader(header);
        if (parsed === null) return;
        expect(Number.isSafeInteger(parsed.timestamp) && parsed.timestamp >= 0).toBe(true);
        expect(parsed.signatures.length).toBeGreaterThan(0);
        for (const sig of parsed.signatures) expect(sig.byteLength).toBe(32);
      }),
      { numRuns: 1000 },
    );
  });

  it("checkHeader fails only with a 401 ApiError, whatever the header", () => {
    const opts = { secrets: ["s"], nowSeconds: 1_800_000_000, maxAgeSeconds: 1800, maxFutureSeconds: 300 };
    fc.assert(
      fc.property(fc.option(fc.string({ unit: "binary", maxLength: 500 }), { nil: null }), (header) => {
        try {
          checkHeader(header, opts);
        } catch (err) {
          expect(err).toBeInstanceOf(ApiError);
          expect((err as ApiError).status).toBe(401);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("verifies what it signed for any secret and body, and refuses any changed byte", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.uint8Array({ maxLength: 512 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (secret, body, where, flip) => {
          const t = 1_800_000_000;
          const opts = { secrets: [secret], nowSeconds: t, maxAgeSeconds: 60, maxFutureSeconds: 60 };
          const header = `t=${t},v0=${await sign(secret, t, body)}`;
          await verifySignature(header, body, opts);
          if (body.length === 0) return;
          const changed = body.slice();
          const i = where % body.length;
          changed[i] = changed[i]! ^ flip;
          await expect(verifySignature(header, changed, opts)).rejects.toMatchObject({ status: 401, code: "signature_mismatch" });
        },
      ),
      { numRuns: 150 },
    );
  });
});

/** Paths into the fixture where a fuzzed value is written. */
const PATHS: (string | number)[][] = [
  ["type"],
  ["event_timestamp"],
  ["data"],
  ["data", "conversation_id"],
  ["data", "agent_id"],
  ["data", "agent_name"],
  ["data", "status"],
  ["data", "user_id"],
  ["data", "transcript"],
  ["data", "transcript", 0],
  ["data", "transcript", 0, "message"],
  ["data", "transcript", 0, "time_in_call_secs"],
  ["data", "transcript", 2, "tool_calls"],
  ["data", "transcript", 2, "tool_results"],
  ["data", "transcript", 1, "feedback"],
  ["data", "metadata"],
  ["data", "metadata", "start_time_unix_secs"],
  ["data", "metadata", "call_duration_secs"],
  ["data", "metadata", "phone_call"],
  ["data", "metadata", "phone_call", "external_number"],
  ["data", "analysis"],
  ["data", "analysis", "transcript_summary"],
  ["data", "analysis", "call_summary_title"],
  ["data", "analysis", "data_collection_results"],
  ["data", "analysis", "data_collection_results", "order_id", "value"],
  ["data", "analysis", "evaluation_criteria_results"],
  ["data", "conversation_initiation_client_data"],
  ["data", "conversation_initiation_client_data", "user_id"],
  ["data", "conversation_initiation_client_data", "dynamic_variables"],
  ["data", "conversation_initiation_client_data", "dynamic_variables", "user_id"],
  ["data", "conversation_initiation_client_data", "dynamic_variables", "system__caller_id"],
];

function setPath(root: any, path: (string | number)[], value: unknown): void {
  let node = root;
  for (const key of path.slice(0, -1)) {
    if (typeof node !== "object" || node === null) return;
    node = node[key];
  }
  if (typeof node === "object" && node !== null) node[path.at(-1)!] = value;
}

/** Values nested `n` deep, to cross the depth bound. */
const deep = fc.integer({ min: 1, max: 300 }).map((n) => {
  let v: unknown = "leaf";
  for (let i = 0; i < n; i++) v = i % 2 ? [v] : { k: v };
  return v;
});
const fuzzValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.constantFrom(1e300, -1e300, 9e15, -1, 0.5, Number.MAX_SAFE_INTEGER + 2, "", " ", "\u0000", "1700000000", "+14155550100") },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 300 }) },
);
const fuzzedEvent = fc
  .array(fc.tuple(fc.constantFrom(...PATHS), fuzzValue), { maxLength: 6 })
  .map((edits) => {
    const event = structuredClone(fixture) as any;
    for (const [path, value] of edits) setPath(event, path, value);
    return event;
  });

const OPTS = { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: 1_800_000_000 };

function checkRecord(r: ConversationRecord): void {
  expect(isValidId(r.conversationId) && isValidId(r.agentId)).toBe(true);
  if (r.userId !== null) expect(isValidId(r.userId)).toBe(true);
  for (const n of [r.startedAt, r.durationSecs]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
  expect(r.startedAt).toBeLessThanOrEqual(RECORD_LIMITS.maxUnixSeconds);
  expect(r.summary === null || r.summary.length <= RECORD_LIMITS.textChars).toBe(true);
  for (const s of [r.title, r.agentName, r.status, r.callSuccessful, r.terminationReason, r.mainLanguage]) {
    expect(s === null || s.length <= RECORD_LIMITS.labelChars).toBe(true);
  }
  r.turns.forEach((t, i) => {
    expect(t.index).toBe(i);
    expect(Number.isSafeInteger(t.timeInCallSecs) && t.timeInCallSecs >= 0).toBe(true);
    expect(t.message === null || t.message.length <= RECORD_LIMITS.textChars).toBe(true);
    for (const v of [...(t.tools?.calls ?? []), ...(t.tools?.results ?? [])]) expect(jsonDepth(v, 1e6)).toBeLessThanOrEqual(RECORD_LIMITS.jsonDepth);
  });
  for (const f of r.facts) expect(jsonDepth(f.value, 1e6)).toBeLessThanOrEqual(RECORD_LIMITS.jsonDepth);
  // It can cross a Durable Object RPC (structured clone) and be stored as JSON.
  expect(() => structuredClone(r)).not.toThrow();
  expect(() => JSON.stringify(r)).not.toThrow();
}

function expect400(err: unknown, codes: string[]): void {
  expect(err).toBeInstanceOf(ApiError);
  expect((err as ApiError).status).toBe(400);
  expect(codes).toContain((err as ApiError).code);
}

describe("payload normalisation", () => {
  it("parseEnvelope returns an envelope or a 400 for any bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.jsonValue().map((v) => enc.encode(JSON.stringify(v) ?? "null"))), (bytes) => {
        try {
          const e = parseEnvelope(bytes);
          expect(typeof e.type === "string" && e.type.length > 0).toBe(true);
          expect(e.eventTimestamp === null || (Number.isSafeInteger(e.eventTimestamp) && e.eventTimestamp >= 0)).toBe(true);
        } catch (err) {
          expect400(err, ["invalid_json", "invalid_payload"]);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("normalises any fuzzed transcription into a bounded record, or refuses it with a 400", () => {
    fc.assert(
      fc.property(fuzzedEvent, (event) => {
        let record: ConversationRecord;
        try {
          // As the Worker makes it: the memory's share on arrival (the claim as the owner here), then
          // the whole record from the envelope and that owner at delivery (src/memory/deliveries.ts).
          const envelope = parseEnvelope(enc.encode(JSON.stringify(event)));
          record = conversationRecord(envelope, ownerOfRecord(normaliseForMemory(envelope, OPTS)), OPTS.nowSeconds);
        } catch (err) {
          expect400(err, ["invalid_payload", "invalid_user_id"]);
          return;
        }
        checkRecord(record);
      }),
      { numRuns: 400 },
    );
  });

  it("rebuilds exactly the same record from the raw bytes and the owner (what the outbox relies on)", () => {
    let rebuilt = 0;
    fc.assert(
      fc.property(fuzzedEvent, (event) => {
        const raw = enc.encode(JSON.stringify(event));
        let memory: MemoryRecord;
        try {
          memory = normaliseForMemory(parseEnvelope(raw), OPTS);
        } catch {
          return; // refused on arrival: nothing is queued (the property above checks it is a 400)
        }
        // What an outbox item keeps of the record (its owner, as JSON), and what is rebuilt from it and
        // the raw bytes: the whole record at delivery, and the memory's share of a call an erasure kept aside.
        const user = JSON.parse(JSON.stringify(ownerOfRecord(memory))) as ResolvedUser;
        const { turns: _turns, evaluation: _evaluation, ...share } = conversationRecord(parseEnvelope(raw.slice()), user, OPTS.nowSeconds);
        expect(share).toEqual(memory);
        expect(normaliseForMemory(parseEnvelope(raw.slice()), { userIdVariable: "", defaultCountryCode: "", nowSeconds: OPTS.nowSeconds }, user)).toEqual(memory);
        rebuilt++;
      }),
      { numRuns: 300 },
    );
    // Not vacuous: most fuzzed events are accepted.
    expect(rebuilt).toBeGreaterThan(100);
  });

  it("normalises any fuzzed call failure, or refuses it with a 400", () => {
    const failure = fc
      .record({ conversation_id: fuzzValue, agent_id: fuzzValue, failure_reason: fuzzValue, metadata: fc.oneof(fuzzValue, deep.map((d) => ({ type: "sip", body: d }))) }, { requiredKeys: [] })
      .map((data) => ({ type: "call_initiation_failure", data: { conversation_id: "c1", agent_id: "a1", ...data } }));
    fc.assert(
      fc.property(failure, (event) => {
        try {
          const r = normaliseCallFailure(parseEnvelope(enc.encode(JSON.stringify(event))), "");
          expect(isValidId(r.conversationId)).toBe(true);
          expect(r.failureReason.length).toBeLessThanOrEqual(256);
          expect(jsonDepth(r.metadata, 1e6)).toBeLessThanOrEqual(RECORD_LIMITS.jsonDepth);
          expect(JSON.stringify(r.metadata ?? null).length).toBeLessThanOrEqual(RECORD_LIMITS.jsonChars + 200);
          expect(() => structuredClone(r)).not.toThrow();
        } catch (err) {
          expect400(err, ["invalid_payload"]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("normalisePhone never throws and yields E.164 or null", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[+0-9 ()\-.]{0,20}$/), fc.jsonValue()), fc.constantFrom("", "1", "44", "49"), (raw, cc) => {
        const n = normalisePhone(raw, cc);
        expect(n === null || /^\+[1-9]\d{6,14}$/.test(n)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe("Base64Decoder (streaming)", () => {
  const enc = new TextEncoder();

  /** Decodes `text` fed in pieces cut at `cuts`, into an output block of `outBytes`. */
  function decodeInPieces(text: string, cuts: number[], outBytes: number): Uint8Array | Base64Error {
    const chunks: Uint8Array[] = [];
    const decoder = new Base64Decoder((b) => chunks.push(b.slice()), outBytes);
    const input = enc.encode(text);
    const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
    try {
      let from = 0;
      for (const p of [...points, input.length]) {
        decoder.write(input, from, p);
        from = p;
      }
      decoder.finish();
    } catch (err) {
      if (err instanceof Base64Error) return err;
      throw err;
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  const base64Of = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

  it("gives the same bytes as atob however the input is cut, with or without padding and whitespace", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(3, 4, 64, 48 * 1024),
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(" ", "\n", "\r\n", "\t")), { maxLength: 6 }),
        (bytes, cuts, outBytes, unpadded, spaces) => {
          let text = base64Of(bytes);
          if (unpadded) text = text.replace(/=+$/, "");
          for (const [at, ws] of spaces) {
            const i = at % (text.length + 1);
            text = text.slice(0, i) + ws + text.slice(i);
          }
          const decoded = decodeInPieces(text, cuts, outBytes);
          expect(decoded).toBeInstanceOf(Uint8Array);
          expect(bytesToHex(decoded as Uint8Array)).toBe(bytesToHex(bytes));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("accepts and refuses exactly what atob does, at any cut", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."AZaz09+/=_- \n*".split("")), maxLength: 40 }), fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
        let expected: Uint8Array | null;
        try {
          expected = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
        } catch {
          expected = null;
        }
        const decoded = decodeInPieces(text, cuts, 4);
        if (expected === null) expect(decoded).toBeInstanceOf(Base64Error);
        else expect(bytesToHex(decoded as Uint8Array)).toBe(bytesToHex(expected));
      }),
      { numRuns: 1000 },
    );
  });
});
