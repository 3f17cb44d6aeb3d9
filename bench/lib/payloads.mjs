// Realistic webhook payloads for the bench, built from test/fixtures/transcription.json, and
// signed in Node (node:crypto, independent of the Worker's Web Crypto code) before any load runs.
import { createHmac, hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { ROOT } from "./workers.mjs";
import { rewriteMessages } from "./text.mjs";

const FIXTURE = JSON.parse(readFileSync(join(ROOT, "test/fixtures/transcription.json"), "utf8"));

/** ElevenLabs' signature header for `body` at `t`: HMAC-SHA256 over `<t>.<body>`. */
export function signatureHeader(secret, body, t = Math.floor(Date.now() / 1000)) {
  const mac = createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex");
  return `t=${t},v0=${mac}`;
}

/**
 * postcall_user_token for `userId` issued at `issuedAt`, made as src/lib/user-token.ts makes it (HKDF
 * of the webhook secret, HMAC-SHA256, 16 bytes): the token the context endpoint hands the app when
 * the session starts, which the README's integration passes into the session (so the event carries
 * it). Minted here rather than read back, so that payloads can be signed before any server runs.
 */
export function userToken(secret, userId, issuedAt) {
  const key = Buffer.from(hkdfSync("sha256", secret, "postcall", "postcall user token v1", 32));
  const body = `pu1.${Buffer.from(userId, "utf8").toString("base64url")}.${Math.floor(issuedAt)}`;
  return `${body}.${createHmac("sha256", key).update(body).digest().subarray(0, 16).toString("base64url")}`;
}

/**
 * The fixture with its transcript padded to at least `minBytes` of compact JSON: the fixture's turns
 * repeated (tool calls, metrics, feedback and all), each with its own text and time, as a longer call
 * would send them.
 */
export function paddedTranscription(minBytes, { conversationId, userId, startedAt, token }) {
  const event = structuredClone(FIXTURE);
  const data = event.data;
  data.conversation_id = conversationId;
  data.conversation_initiation_client_data.dynamic_variables.system__conversation_id = conversationId;
  data.conversation_initiation_client_data.dynamic_variables.user_id = userId;
  if (token !== undefined) data.conversation_initiation_client_data.dynamic_variables.postcall_user_token = token;
  data.metadata.start_time_unix_secs = startedAt;
  event.event_timestamp = startedAt + data.metadata.call_duration_secs;
  const base = FIXTURE.data.transcript;
  const transcript = [];
  for (let i = 0; JSON.stringify(event).length < minBytes || i < base.length; i++) {
    const turn = structuredClone(base[i % base.length]);
    turn.time_in_call_secs = i * 4;
    if (typeof turn.message === "string") turn.message = `${turn.message} (turn ${i + 1})`;
    transcript.push(turn);
    data.transcript = transcript;
  }
  return event;
}

/**
 * `count` distinct signed transcriptions, each with its own conversation id, spread over `users`
 * users. Bodies share one template and differ only in their ids, so they are assembled on demand
 * (a copy, no crypto); every signature is computed here, before the load starts.
 */
export function signedTranscriptions({ secret, count, users, minBytes, prefix, phoneUsers = false, distinct = false }) {
  if (distinct) return distinctTranscriptions({ secret, count, users, minBytes, prefix });
  // Fixed-width ids keep every body the same size. With `phoneUsers`, each user id is a phone number in
  // E.164 (a caller whose memory lives under their number, as the initiation webhook finds it).
  const convId = (i) => `conv_${prefix}_${String(i).padStart(8, "0")}`;
  const userId = phoneUsers
    ? (i) => `+1415${String(i % users).padStart(7, "0")}`
    : (i) => `user_${prefix}_${String(i % users).padStart(6, "0")}`;
  const CONV = "@@CONVERSATION_ID@@";
  const USER = "@@USER_ID@@";
  const TOKEN = "@@TOKEN@@";
  const startedAt = Math.floor(Date.now() / 1000) - 3600;
  const event = paddedTranscription(minBytes, { conversationId: CONV, userId: USER, startedAt, token: TOKEN });
  const parts = JSON.stringify(event).split(/(@@CONVERSATION_ID@@|@@USER_ID@@|@@TOKEN@@)/).map((p) => (p === CONV || p === USER || p === TOKEN ? p : Buffer.from(p)));
  // One token per user, issued at the session's start (fixed-width ids: every token the same length).
  const tokens = new Map();
  const tokenOf = (u) => {
    if (!tokens.has(u)) tokens.set(u, Buffer.from(userToken(secret, u, startedAt)));
    return tokens.get(u);
  };
  const bodyOf = (i) => {
    const c = Buffer.from(convId(i));
    const id = userId(i);
    const u = Buffer.from(id);
    return Buffer.concat(parts.map((p) => (p === CONV ? c : p === USER ? u : p === TOKEN ? tokenOf(id) : p)));
  };
  const t = Math.floor(Date.now() / 1000);
  const headers = new Array(count);
  for (let i = 0; i < count; i++) headers[i] = signatureHeader(secret, bodyOf(i), t);
  const size = bodyOf(0).length;
  return {
    count,
    size,
    turns: event.data.transcript.length,
    signedAt: t,
    conversationId: convId,
    userId,
    /** The i-th request: its body (assembled now) and the header signed before the run. */
    request: (i) => ({ body: bodyOf(i), signature: headers[i] }),
  };
}

/**
 * What postcall v2 stores for one bench conversation, computed once in Node so that the
 * floorBytes baseline (bench/workers/floor.ts, FLOOR_CONTENT = "same") stores as many bytes
 * without parsing or compressing anything itself:
 * - `meta`: the conversation row's metadata columns (ids, agent, status, times, title, summary,
 *   outcome, language, phone, turn count, analysis), as one JSON text;
 * - `transcriptB64`: the transcript (the turns as ElevenLabs sends them) gzipped, base64;
 * - `ftsText`: the turns' text joined by newlines, the document of the contentless FTS5 table;
 * - `summary`: the call summary, kept in the Durable Object's profile and recent rows.
 */
export function floorContent(minBytes) {
  const event = paddedTranscription(minBytes, { conversationId: "conv_floor_00000000", userId: "user_floor_000000", startedAt: 1_764_000_000 });
  const d = event.data;
  const m = d.metadata;
  const a = d.analysis ?? {};
  const meta = JSON.stringify({
    conversation_id: d.conversation_id,
    user_id: "user_floor_000000",
    user_id_source: "dynamic_variable",
    agent_id: d.agent_id,
    agent_name: d.agent_name,
    status: d.status,
    started_at: m.start_time_unix_secs,
    duration_secs: m.call_duration_secs,
    title: a.call_summary_title ?? null,
    summary: a.transcript_summary ?? null,
    call_successful: a.call_successful ?? null,
    termination_reason: m.termination_reason ?? null,
    main_language: m.main_language ?? null,
    phone: m.phone_call ?? null,
    turn_count: d.transcript.length,
    analysis: { evaluation: a.evaluation_criteria_results, data_collection: Object.fromEntries(Object.entries(a.data_collection_results ?? {}).map(([k, v]) => [k, v.value])) },
    event_timestamp: event.event_timestamp,
  });
  const transcript = gzipSync(JSON.stringify(d.transcript));
  const ftsText = d.transcript.map((t) => t.message).filter((t) => typeof t === "string" && t.length > 0).join("\n");
  return { meta, transcriptB64: transcript.toString("base64"), transcriptBytes: transcript.length, ftsText, summary: a.transcript_summary ?? null };
}

/**
 * Like `signedTranscriptions`, but every conversation's messages and summary are distinct text of
 * the same lengths (bench/lib/text.mjs): for measuring bytes stored, where repeated text would
 * compress and index unrealistically well. Each body is built and signed before the run.
 */
function distinctTranscriptions({ secret, count, users, minBytes, prefix }) {
  const convId = (i) => `conv_${prefix}_${String(i).padStart(8, "0")}`;
  const userId = (i) => `user_${prefix}_${String(i % users).padStart(6, "0")}`;
  const startedAt = Math.floor(Date.now() / 1000) - 3600;
  const t = Math.floor(Date.now() / 1000);
  const bodies = [];
  let turns = 0;
  for (let i = 0; i < count; i++) {
    const token = userToken(secret, userId(i), startedAt);
    const event = rewriteMessages(paddedTranscription(minBytes, { conversationId: convId(i), userId: userId(i), startedAt, token }), i + 1);
    turns = event.data.transcript.length;
    const body = Buffer.from(JSON.stringify(event));
    bodies.push({ body, signature: signatureHeader(secret, body, t) });
  }
  return { count, size: bodies[0]?.body.length ?? 0, turns, signedAt: t, conversationId: convId, userId, request: (i) => bodies[i] };
}
