/**
 * The hostile-input corpus: one table of requests that must each get a precise 4xx (or a harmless
 * 200 that stores nothing), never a 5xx. Afterwards D1, R2 and the Durable Objects hold nothing from
 * any of them, and a valid event still goes through.
 *
 * Header variants are sent with a signed body of an unknown event type, so that a header that is
 * (rightly) accepted is answered 200 "ignored" and still stores nothing; body variants are properly
 * signed, so that they reach the parser.
 */
import { SELF, listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { STATS_OBJECT_NAME } from "../src/records/object-names";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { userMemory } from "./objects";
import { sign } from "../src/webhooks/signature";
import { API_KEY, BASE, SECRET, context, d1Count, nowSeconds, r2Keys, signatureHeader, storedTurns, transcription, uid, userIdOf } from "./helpers";
import { drainWithAlarm } from "./faults";
import { rowDb } from "./shards";

// Megabyte bodies, bursts and many outbox runs share 2 cores with other work: the default 5 s per test
// is a ceiling against hangs that such a machine can reach. This raises the ceiling; nothing here is timed.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const enc = new TextEncoder();
const MB = 1024 * 1024;

/** A signed event of a type postcall does not know: accepted headers get 200 "ignored", nothing stored. */
const PROBE = JSON.stringify({ type: "hostile_probe", event_timestamp: 1764320400, data: { conversation_id: "probe", agent_id: "a" } });

type Body = string | Uint8Array;
type HeaderFn = (body: Uint8Array) => Promise<string | null> | string | null;

interface Row {
  name: string;
  method?: string;
  path?: string;
  body?: Body;
  /** The ElevenLabs-Signature value; default: a valid signature of the body (webhook rows only). */
  sig?: HeaderFn;
  headers?: Record<string, string>;
  /** API key for /v1 rows; default: a valid one. */
  auth?: string | null;
  status: number;
  /** The error code, or for a 200 the `status` field of the answer (null: not checked). */
  code: string | null;
}

const bytes = (b: Body) => (typeof b === "string" ? enc.encode(b) : b);
const hex = async (b: Uint8Array, t = nowSeconds(), secret = SECRET) => sign(secret, t, b);
const valid: HeaderFn = (b) => signatureHeader(b);
const sigWith = (f: (t: number, mac: string) => string): HeaderFn => async (b) => {
  const t = nowSeconds();
  return f(t, await hex(b, t));
};

const rawJson = new Map<string, string>();
/** A placeholder for raw JSON text (for values JSON.stringify cannot write, such as a lone surrogate escape). */
function raw(json: string): string {
  const token = `__RAW_${rawJson.size}__`;
  rawJson.set(token, json);
  return token;
}

/** A transcription (fixed hostile-looking ids, so that traces are easy to look for) with one edit. */
function transcriptionWith(edit: (e: any) => void): string {
  const e = transcription({ userId: "hostile-user" });
  e["data"].conversation_id = "hostile-conversation";
  edit(e);
  return JSON.stringify(e).replace(/"(__RAW_\d+__)"/g, (_m, token: string) => rawJson.get(token)!);
}

const signatureRows: Row[] = [
  { name: "no signature header", sig: () => null, status: 401, code: "signature_missing" },
  { name: "empty signature header", sig: () => "", status: 401, code: "signature_missing" },
  { name: "blank signature header", sig: () => "   \t ", status: 401, code: "signature_missing" },
  { name: "t= with nothing else", sig: () => "t=", status: 401, code: "signature_malformed" },
  { name: "only a timestamp", sig: () => `t=${nowSeconds()}`, status: 401, code: "signature_malformed" },
  { name: "only a v0", sig: async (b) => `v0=${await hex(b)}`, status: 401, code: "signature_malformed" },
  { name: "a duplicated t (same value)", sig: sigWith((t, m) => `t=${t},t=${t},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "two different t", sig: sigWith((t, m) => `t=${t},v0=${m},t=${t - 1}`), status: 401, code: "signature_malformed" },
  { name: "the header sent twice", sig: () => null, headers: {}, status: 401, code: "signature_malformed" },
  { name: "a non-numeric t", sig: sigWith((_t, m) => `t=soon,v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "an overflowing t (20 digits)", sig: sigWith((_t, m) => `t=99999999999999999999,v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a 12-digit t far in the future", sig: sigWith((_t, m) => `t=999999999999,v0=${m}`), status: 401, code: "signature_in_future" },
  { name: "a negative t", sig: sigWith((t, m) => `t=-${t},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a float t", sig: sigWith((t, m) => `t=${t}.5,v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a t with a plus sign", sig: sigWith((t, m) => `t=+${t},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a hexadecimal t", sig: sigWith((t, m) => `t=0x${t.toString(16)},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a t in exponent form", sig: sigWith((_t, m) => `t=1.7e9,v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "t = 0", sig: async (b) => `t=0,v0=${await hex(b, 0)}`, status: 401, code: "signature_expired" },
  { name: "a correctly signed stale t", sig: async (b) => signatureHeader(b, { t: nowSeconds() - 1801 }), status: 401, code: "signature_expired" },
  { name: "a correctly signed future t", sig: async (b) => signatureHeader(b, { t: nowSeconds() + 301 }), status: 401, code: "signature_in_future" },
  { name: "full-width digits in t", sig: sigWith((t, m) => `t=${String(t).replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d)))},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a v0 one digit short", sig: sigWith((t, m) => `t=${t},v0=${m.slice(1)}`), status: 401, code: "signature_malformed" },
  { name: "a v0 one digit long", sig: sigWith((t, m) => `t=${t},v0=${m}0`), status: 401, code: "signature_malformed" },
  { name: "a v0 of 128 digits", sig: sigWith((t, m) => `t=${t},v0=${m}${m}`), status: 401, code: "signature_malformed" },
  { name: "a v0 that is not hex", sig: sigWith((t) => `t=${t},v0=${"z".repeat(64)}`), status: 401, code: "signature_malformed" },
  { name: "a base64 v0", sig: sigWith((t, m) => `t=${t},v0=${btoa(String.fromCharCode(...m.match(/../g)!.map((h) => parseInt(h, 16))))}`), status: 401, code: "signature_malformed" },
  { name: "a v0 with a trailing =", sig: sigWith((t, m) => `t=${t},v0=${m}=`), status: 401, code: "signature_malformed" },
  { name: "the MAC under another scheme only (v1)", sig: sigWith((t, m) => `t=${t},v1=${m}`), status: 401, code: "signature_malformed" },
  { name: "the MAC under an upper-case scheme (V0)", sig: sigWith((t, m) => `t=${t},V0=${m}`), status: 401, code: "signature_malformed" },
  { name: "semicolons instead of commas", sig: sigWith((t, m) => `t=${t};v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "Latin-1 letters in the header", sig: sigWith((t, m) => `t=${t},v0=${m.slice(0, 63)}é`), status: 401, code: "signature_malformed" },
  { name: "UTF-8 bytes read as Latin-1", sig: sigWith((t, m) => `t=${t},v0=Ã©${m.slice(2)}`), status: 401, code: "signature_malformed" },
  { name: "a 10,000-character header", sig: sigWith((t, m) => `t=${t},x=${"a".repeat(10_000)},v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "the valid v0 after 70 bad ones (past 4 KB)", sig: sigWith((t, m) => `t=${t},${`v0=${"0".repeat(64)},`.repeat(70)}v0=${m}`), status: 401, code: "signature_malformed" },
  { name: "a v0 of zeros", sig: sigWith((t) => `t=${t},v0=${"0".repeat(64)}`), status: 401, code: "signature_mismatch" },
  { name: "a MAC by another secret", sig: (b) => signatureHeader(b, { secret: "whsec_attacker" }), status: 401, code: "signature_mismatch" },
  { name: "a MAC of the body without the timestamp", sig: sigWith((t) => `t=${t},v0=${"f".repeat(64)}`), status: 401, code: "signature_mismatch" },
  { name: "a MAC for another timestamp", sig: async (b) => `t=${nowSeconds()},v0=${await hex(b, nowSeconds() - 10)}`, status: 401, code: "signature_mismatch" },
  // Accepted on purpose (tolerant parsing, rotation); the unknown type is then ignored.
  { name: "upper-case hex", sig: sigWith((t, m) => `t=${t},v0=${m.toUpperCase()}`), status: 200, code: "ignored" },
  { name: "spaces around fields", sig: sigWith((t, m) => ` t = ${t} ,  v0 = ${m} `), status: 200, code: "ignored" },
  { name: "v0 before t", sig: sigWith((t, m) => `v0=${m},t=${t}`), status: 200, code: "ignored" },
  { name: "a bad v0 before the good one", sig: sigWith((t, m) => `t=${t},v0=${"0".repeat(64)},v0=${m}`), status: 200, code: "ignored" },
  { name: "extra schemes and a bare word", sig: sigWith((t, m) => `t=${t},v1=abc,junk,v0=${m},foo=bar`), status: 200, code: "ignored" },
  { name: "the second configured secret", sig: (b) => signatureHeader(b, { secret: "whsec_test_secondary" }), status: 200, code: "ignored" },
  { name: "a lower-case header name", sig: () => null, headers: {}, status: 200, code: "ignored" },
];

const signed = (body: Body, status: number, code: string | null, name: string, extra: Partial<Row> = {}): Row => ({ name, body, status, code, ...extra });

const bodyRows: Row[] = [
  signed("", 400, "invalid_json", "an empty body"),
  signed("not json", 400, "invalid_json", "plain text"),
  signed("{'type': 'post_call_transcription'}", 400, "invalid_json", "single-quoted JSON"),
  signed('{"type":"x",}', 400, "invalid_json", "a trailing comma"),
  signed('{"type":"x"} trailing', 400, "invalid_json", "trailing garbage"),
  signed('{"type":"x" /* c */}', 400, "invalid_json", "a comment"),
  signed('{"type":"x","n":NaN}', 400, "invalid_json", "NaN"),
  signed("null", 400, "invalid_payload", "JSON null"),
  signed("true", 400, "invalid_payload", "JSON true"),
  signed("42", 400, "invalid_payload", "a JSON number"),
  signed('"post_call_transcription"', 400, "invalid_payload", "a JSON string"),
  signed("[]", 400, "invalid_payload", "an empty array"),
  signed(`[${PROBE}]`, 400, "invalid_payload", "an event wrapped in an array"),
  signed("{}", 400, "invalid_payload", "an empty object"),
  ...[["1", "a number"], ["true", "a boolean"], ["null", "null"], ["[]", "an array"], ["{}", "an object"], ['""', "an empty string"]].map(([v, what]) =>
    signed(`{"type":${v},"data":{"conversation_id":"c","agent_id":"a"}}`, 400, "invalid_payload", `type as ${what}`),
  ),
  ...[["\"str\"", "a string"], ["1", "a number"], ["[]", "an array"], ["null", "null"]].map(([v, what]) =>
    signed(`{"type":"post_call_transcription","data":${v}}`, 400, "invalid_payload", `transcription data as ${what}`),
  ),
  ...[["1", "a number"], ["null", "null"], ["true", "a boolean"], ["[\"c\"]", "an array"], ["{}", "an object"], ['""', "an empty string"]].map(([v, what]) =>
    signed(transcriptionWith((e) => (e.data.conversation_id = raw(v!))), 400, "invalid_payload", `conversation_id as ${what}`),
  ),
  ...[["1", "a number"], ["null", "null"], ["[]", "an array"], ['""', "an empty string"]].map(([v, what]) =>
    signed(transcriptionWith((e) => (e.data.agent_id = raw(v!))), 400, "invalid_payload", `agent_id as ${what}`),
  ),
  signed(transcriptionWith((e) => delete e.data.conversation_id), 400, "invalid_payload", "a transcription without conversation_id"),
  signed(transcriptionWith((e) => delete e.data.agent_id), 400, "invalid_payload", "a transcription without agent_id"),
  signed('{"type":"call_initiation_failure","data":{"agent_id":"a"}}', 400, "invalid_payload", "a call failure without conversation_id"),
  signed('{"type":"call_initiation_failure","data":{"conversation_id":"c","agent_id":7}}', 400, "invalid_payload", "a call failure with a numeric agent_id"),
  signed('{"type":"post_call_audio","data":{"conversation_id":"c","agent_id":"a"}}', 400, "invalid_payload", "audio without full_audio"),
  signed('{"type":"post_call_audio","data":{"conversation_id":"c","agent_id":"a","full_audio":42}}', 400, "invalid_payload", "audio with a numeric full_audio"),
  signed(new Uint8Array([0x7b, 0x22, 0x74, 0xff, 0xfe, 0x22, 0x7d]), 400, "invalid_json", "invalid UTF-8"),
  signed(new Uint8Array([...enc.encode('{"type":"'), 0xc0, 0xaf, ...enc.encode('"}')]), 400, "invalid_json", "an overlong UTF-8 encoding"),
  signed(new Uint8Array([...enc.encode('{"type":"'), 0xed, 0xa0, 0x80, ...enc.encode('"}')]), 400, "invalid_json", "a UTF-8-encoded surrogate"),
  signed(new Uint8Array([0xff, 0xfe, ...[...PROBE].flatMap((c) => [c.charCodeAt(0), 0])]), 400, "invalid_json", "UTF-16 JSON"),
  signed(new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(PROBE)]), 200, "ignored", "a UTF-8 byte-order mark before the JSON"),
  signed('{"type":"post_call_transcription","type":"hostile_probe","data":{}}', 200, "ignored", "a duplicated key (the last one wins)"),
  signed('{"type":"hostile_probe","__proto__":{"type":"post_call_transcription"},"data":{}}', 200, "ignored", "a __proto__ key"),
  signed(`{"type":"hostile_probe","event_timestamp":1e400,"data":{"n":-1e400}}`, 200, "ignored", "numbers that overflow to Infinity"),
  signed(`{"type":"hostile_probe","event_timestamp":${"9".repeat(5000)}}`, 200, "ignored", "a 5,000-digit number"),
  signed(`{"type":1e400,"data":{}}`, 400, "invalid_payload", "a type that is an overflowing number"),
  signed(transcriptionWith((e) => (e.data.conversation_id = raw("1e400"))), 400, "invalid_payload", "a conversation_id that is an overflowing number"),
  signed("[".repeat(10_000) + "]".repeat(10_000), 400, "invalid_payload", "a 10,000-deep array"),
  signed('{"a":'.repeat(10_000) + "1" + "}".repeat(10_000), 400, "invalid_payload", "a 10,000-deep object"),
  signed(`{"type":"post_call_transcription","data":${'{"data":'.repeat(10_000)}{}${"}".repeat(10_000)}}`, 400, "invalid_payload", "data nested 10,000 deep"),
  signed(`{"type":${"[".repeat(10_000)}${"]".repeat(10_000)}}`, 400, "invalid_payload", "a type nested 10,000 deep"),
  signed("[".repeat(100_000), 400, "invalid_json", "100,000 unclosed brackets"),
  signed(JSON.stringify({ type: "hostile_probe", data: { blob: "x".repeat(MB) } }), 200, "ignored", "a megabyte string in an unknown event"),
  signed(transcriptionWith((e) => (e.data.conversation_id = "c".repeat(MB))), 400, "invalid_payload", "a megabyte conversation_id"),
  signed(transcriptionWith((e) => (e.data.agent_id = "a".repeat(MB))), 400, "invalid_payload", "a megabyte agent_id"),
  signed(transcriptionWith((e) => (e.data.user_id = "u".repeat(MB))), 400, "invalid_user_id", "a megabyte user_id"),
  signed(`{"type":"hostile_probe","pad":"${"p".repeat(17 * MB)}"}`, 413, "payload_too_large", "a body over MAX_BODY_BYTES"),
];

const idRows: Row[] = [
  ...[
    ["a NUL", "conv\u0000x"],
    ["a newline", "conv\nx"],
    ["an escape character", "conv\u001b[31mred"],
    ["DEL", "conv\u007f"],
    ["257 characters", "c".repeat(257)],
    ["a percent-encoded length past R2's key limit", "€".repeat(200)],
  ].map(([what, id]) => signed(transcriptionWith((e) => (e.data.conversation_id = id)), 400, "invalid_payload", `a conversation_id with ${what}`)),
  signed(transcriptionWith((e) => (e.data.conversation_id = raw('"conv\\ud800"'))), 400, "invalid_payload", "a conversation_id with a lone surrogate"),
  signed(transcriptionWith((e) => (e.data.agent_id = "agent\u0000")), 400, "invalid_payload", "an agent_id with a NUL"),
  signed(transcriptionWith((e) => (e.data.user_id = "../../etc/passwd\u0000")), 400, "invalid_user_id", "a data.user_id with traversal and a NUL"),
  signed(transcriptionWith((e) => (e.data.user_id = "u".repeat(257))), 400, "invalid_user_id", "a 257-character data.user_id"),
  signed(transcriptionWith((e) => (e.data.conversation_initiation_client_data.user_id = "x\r\nSet-Cookie: a=b")), 400, "invalid_user_id", "a client-data user_id with CRLF"),
  signed(
    transcriptionWith((e) => (e.data.conversation_initiation_client_data.dynamic_variables.user_id = raw('"\\udfff"'))),
    400,
    "invalid_user_id",
    "a user_id dynamic variable that is a lone surrogate",
  ),
  signed('{"type":"call_initiation_failure","data":{"conversation_id":"../x\\u0000","agent_id":"a"}}', 400, "invalid_payload", "a call failure id with traversal and a NUL"),
  // Hostile-looking but well-formed ids in events that are not signed by us never get past the MAC.
  ...["../../../etc/passwd", "..%2F..%2Fsecrets", "x'; DROP TABLE conversations; --", "\" OR 1=1 --", "conversations/other/transcript.json"].map(
    (id) => ({
      name: `an unsigned event with conversation_id ${JSON.stringify(id)}`,
      body: transcriptionWith((e) => (e.data.conversation_id = id)),
      sig: (b: Uint8Array) => signatureHeader(b, { secret: "whsec_attacker" }),
      status: 401,
      code: "signature_mismatch",
    }),
  ),
];

const ctx = (id: string) => `/v1/users/${id}/context`;
const pathRows: Row[] = [
  { name: "a NUL in the user id", path: ctx("a%00b"), status: 400, code: "invalid_user_id" },
  { name: "a newline in the user id", path: ctx("a%0Ab"), status: 400, code: "invalid_user_id" },
  { name: "DEL in the user id", path: ctx("a%7F"), status: 400, code: "invalid_user_id" },
  { name: "broken percent-encoding", path: ctx("%E0%A4%A"), status: 400, code: "invalid_user_id" },
  { name: "a lone % sign", path: ctx("100%"), status: 400, code: "invalid_user_id" },
  { name: "an encoded lone surrogate", path: ctx("%ED%A0%80"), status: 400, code: "invalid_user_id" },
  { name: "a 257-character user id", path: ctx("u".repeat(257)), status: 400, code: "invalid_user_id" },
  { name: "a 10,000-character user id", path: ctx("u".repeat(10_000)), status: 400, code: "invalid_user_id" },
  { name: "an empty user id", path: "/v1/users//context", status: 404, code: "not_found" },
  { name: "dot segments climbing out of /v1 (the URL resolves them)", path: "/v1/users/../../webhooks/elevenlabs", status: 405, code: "method_not_allowed" },
  { name: "encoded dot segments (resolved too)", path: "/v1/users/%2e%2e/context", status: 404, code: "not_found" },
  { name: "a path below context", path: `${ctx("u1")}/extra`, status: 404, code: "not_found" },
  { name: "an unknown /v1 path", path: "/v1/admin", status: 404, code: "not_found" },
  { name: "no API key", path: ctx("u1"), auth: null, status: 401, code: "api_key_missing" },
  { name: "a wrong API key", path: ctx("u1"), auth: "Bearer nope", status: 401, code: "api_key_invalid" },
  { name: "Basic auth", path: ctx("u1"), auth: `Basic ${btoa(`user:${API_KEY}`)}`, status: 401, code: "api_key_missing" },
  { name: "the key with a suffix", path: ctx("u1"), auth: `Bearer ${API_KEY}x`, status: 401, code: "api_key_invalid" },
  { name: "two keys in one header", path: ctx("u1"), auth: `Bearer ${API_KEY} ${API_KEY}`, status: 401, code: "api_key_missing" },
  // Valid ids, however odd: answered with the defaults of a user who never called, stored nowhere.
  ...["..%2F..%2Fetc%2Fpasswd", "%27%3B%20DROP%20TABLE%20conversations%3B--", "%F0%9F%98%80", "user%2Fwith%2Fslashes", "u".repeat(256)].map((id) => ({
    name: `a never-seen user ${decodeURIComponent(id).slice(0, 40)}`,
    path: ctx(id),
    status: 200,
    code: null,
  })),
];

const methodRows: Row[] = [
  ...["GET", "PUT", "PATCH", "DELETE", "OPTIONS"].map((method) => ({ name: `${method} on the webhook`, method, body: method === "GET" || method === "OPTIONS" ? undefined : PROBE, status: 405, code: "method_not_allowed" })),
  { name: "HEAD on the webhook", method: "HEAD", status: 405, code: null },
  { name: "POST on the context", method: "POST", path: ctx("u1"), body: "{}", status: 405, code: "method_not_allowed" },
  { name: "DELETE on the context", method: "DELETE", path: ctx("u1"), status: 405, code: "method_not_allowed" },
  { name: "POST on /health", method: "POST", path: "/health", body: "{}", status: 405, code: "method_not_allowed" },
  { name: "POST with a trailing slash (the same route)", path: "/webhooks/elevenlabs/", body: PROBE, status: 200, code: "ignored" },
  { name: "POST to an upper-case path", path: "/WEBHOOKS/ELEVENLABS", body: PROBE, status: 404, code: "not_found" },
  // The MAC covers the bytes; the declared type is not trusted, nor needed.
  ...["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/xml"].map((type) => ({
    name: `Content-Type ${type}`,
    body: PROBE,
    headers: { "Content-Type": type },
    status: 200,
    code: "ignored",
  })),
  { name: "a Content-Encoding the body does not have", body: PROBE, headers: { "Content-Encoding": "gzip" }, status: 200, code: "ignored" },
];

const rows: Row[] = [
  ...signatureRows.map((r) => ({ ...r, body: r.body ?? PROBE })),
  ...bodyRows,
  ...idRows,
  ...pathRows.map((r) => ({ ...r, method: r.method ?? "GET" })),
  ...methodRows,
];

async function send(row: Row): Promise<Response> {
  const method = row.method ?? "POST";
  const path = row.path ?? "/webhooks/elevenlabs";
  const headers = new Headers(row.headers ?? (row.body !== undefined ? { "Content-Type": "application/json" } : {}));
  const body = row.body === undefined ? undefined : bytes(row.body);
  if (path.startsWith("/v1")) {
    const auth = row.auth === undefined ? `Bearer ${API_KEY}` : row.auth;
    if (auth !== null) headers.set("Authorization", auth);
  } else if (body !== undefined || row.sig) {
    const sig = await (row.sig ?? valid)(body ?? new Uint8Array(0));
    if (sig !== null) headers.set("ElevenLabs-Signature", sig);
  }
  if (row.name === "the header sent twice") {
    const h = await signatureHeader(body!);
    headers.append("ElevenLabs-Signature", h);
    headers.append("ElevenLabs-Signature", h);
  }
  if (row.name === "a lower-case header name") headers.set("elevenlabs-signature", await signatureHeader(body!));
  return SELF.fetch(`${BASE}${path}`, { method, headers, body });
}

interface Snapshot {
  d1: Record<string, number>;
  r2: string[];
  objects: string[];
}

async function snapshot(): Promise<Snapshot> {
  const d1: Record<string, number> = {};
  for (const table of ["conversations", "call_failures", "audio"]) d1[table] = await d1Count(table);
  d1["turns"] = await storedTurns();
  // The health counters' object (src/memory/stats.ts) is where refusals are counted, by design: a
  // flush of this isolate's tallies may create it at any moment. Every other object must stay as it was.
  const stats = env.USER_MEMORY.idFromName(STATS_OBJECT_NAME);
  const ledgers = (await listDurableObjectIds(env.CONVERSATION_LEDGER)).map((id) => `ledger:${id.toString()}`);
  const objects = [...(await listDurableObjectIds(env.USER_MEMORY)).filter((id) => !id.equals(stats)).map((id) => id.toString()), ...ledgers].sort();
  return { d1, r2: (await r2Keys()).sort(), objects };
}

/**
 * User-table names in a Durable Object (a read that found nothing leaves none). A table check on
 * purpose: the point is that a rejected request leaves no table behind, which no method can say.
 */
async function tablesOf(id: DurableObjectId, ns: DurableObjectNamespace = env.USER_MEMORY as unknown as DurableObjectNamespace): Promise<string[]> {
  return runInDurableObject(ns.get(id), (_o, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'")
      .toArray()
      .map((r) => r.name),
  );
}

describe("hostile-input corpus", () => {
  let before: Snapshot;
  const answered: { name: string; status: number }[] = [];

  beforeAll(async () => {
    // Something to keep: the corpus must not disturb what was already there either.
    const event = transcription();
    const res = await SELF.fetch(`${BASE}/webhooks/elevenlabs`, {
      method: "POST",
      headers: { "ElevenLabs-Signature": await signatureHeader(JSON.stringify(event)) },
      body: JSON.stringify(event),
    });
    expect(res.status).toBe(200);
    await drainWithAlarm(userMemory(env, userIdOf(event)!));
    before = await snapshot();
  });

  it("has at least 80 distinct cases", () => {
    expect(rows.length).toBeGreaterThanOrEqual(80);
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
  });

  it.each(rows.map((r) => [r.name, r] as const))("%s", async (_name, row) => {
    const res = await send(row);
    answered.push({ name: row.name, status: res.status });
    expect(res.status, row.name).toBe(row.status);
    if (row.method === "HEAD") return;
    const body = await res.json<{ error?: { code: string; message: string }; status?: string }>();
    if (row.status >= 400) {
      expect(body.error?.code, row.name).toBe(row.code);
      expect(typeof body.error?.message).toBe("string");
    } else if (row.code !== null) {
      expect(body.status, row.name).toBe(row.code);
    }
  });

  it("answered every case, none with a 5xx", () => {
    expect(answered.length).toBe(rows.length);
    expect(answered.filter((a) => a.status >= 500)).toEqual([]);
  });

  it("left no trace in D1, R2 or the Durable Objects", async () => {
    const after = await snapshot();
    expect(after.d1).toEqual(before.d1);
    expect(after.r2).toEqual(before.r2);
    // Objects that were only read (never-seen users) may exist as ids, but hold no tables.
    // The only new objects are the never-seen users that were read, and they hold no tables.
    const newIds = after.objects.filter((id) => !before.objects.includes(id));
    const read = pathRows
      .filter((r) => r.status === 200)
      .map((r) => env.USER_MEMORY.idFromName(`user:${decodeURIComponent(r.path!.split("/")[3]!)}`).toString());
    expect(newIds.every((id) => read.includes(id))).toBe(true);
    for (const id of newIds) expect(await tablesOf(env.USER_MEMORY.idFromString(id))).toEqual([]);
    for (const name of ["hostile-user", "../../etc/passwd", "x'; DROP TABLE conversations; --"]) {
      expect(await tablesOf(env.USER_MEMORY.idFromName(`user:${name}`))).toEqual([]);
    }
    expect(await tablesOf(env.CONVERSATION_LEDGER.idFromName("conversation:hostile-conversation"), env.CONVERSATION_LEDGER as unknown as DurableObjectNamespace)).toEqual([]);
  });

  afterAll(async () => {
    // And the service still works: a valid event is stored, delivered and remembered.
    const userId = uid("after_corpus");
    const event = transcription({ userId });
    const text = JSON.stringify(event);
    const res = await SELF.fetch(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "ElevenLabs-Signature": await signatureHeader(text) }, body: text });
    expect(res.status).toBe(200);
    await drainWithAlarm(userMemory(env, userId));
    expect(await d1Count("conversations", "conversation_id = ?", event["data"].conversation_id)).toBe(1);
    expect((await context(userId))["call_count"]).toBe(1);
  });
});

describe("hostile-looking ids in signed events are data, kept verbatim and contained", () => {
  it.each(["../../../etc/passwd", "..%2F..%2Fsecrets", "x'; DROP TABLE conversations; --", "conversations/other/transcript.json", "ünïcødé 🎧"])(
    "stores conversation id %j under its own key only",
    async (hostile) => {
      const conversationId = `${hostile}#${uid("k")}`;
      const userId = `${hostile}#${uid("u")}`;
      const event = transcription({ conversationId, userId });
      const text = JSON.stringify(event);
      const res = await SELF.fetch(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "ElevenLabs-Signature": await signatureHeader(text) }, body: text });
      expect(res.status).toBe(200);
      await drainWithAlarm(userMemory(env, userId));
      const row = await (await rowDb(conversationId)).prepare("SELECT conversation_id, user_id FROM conversations WHERE conversation_id = ?").bind(conversationId).first();
      expect(row).toEqual({ conversation_id: conversationId, user_id: userId });
      const keys = (await r2Keys()).filter((k) => k.includes(encodeURIComponent(conversationId).replace(/\./g, "%2E")));
      expect(keys).toEqual([`conversations/${encodeURIComponent(conversationId).replace(/\./g, "%2E")}/transcript.json`]);
      expect((await r2Keys()).every((k) => k.startsWith("conversations/") && !k.includes("/../") && k.split("/").length === 3)).toBe(true);
      expect((await context(userId))["call_count"]).toBe(1);
      expect(await d1Count("conversations")).toBeGreaterThan(0);
    },
  );
});
