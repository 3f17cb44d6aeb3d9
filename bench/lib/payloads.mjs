// Realistic webhook payloads for the bench, built from test/fixtures/transcription.json, and
// signed in Node (node:crypto, independent of the Worker's Web Crypto code) before any load runs.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./workers.mjs";

const FIXTURE = JSON.parse(readFileSync(join(ROOT, "test/fixtures/transcription.json"), "utf8"));

/** ElevenLabs' signature header for `body` at `t`: HMAC-SHA256 over `<t>.<body>`. */
export function signatureHeader(secret, body, t = Math.floor(Date.now() / 1000)) {
  const mac = createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex");
  return `t=${t},v0=${mac}`;
}

/**
 * The fixture with its transcript padded to at least `minBytes` of compact JSON: the fixture's turns
 * repeated (tool calls, metrics, feedback and all), each with its own text and time, as a longer call
 * would send them.
 */
export function paddedTranscription(minBytes, { conversationId, userId, startedAt }) {
  const event = structuredClone(FIXTURE);
  const data = event.data;
  data.conversation_id = conversationId;
  data.conversation_initiation_client_data.dynamic_variables.system__conversation_id = conversationId;
  data.conversation_initiation_client_data.dynamic_variables.user_id = userId;
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
export function signedTranscriptions({ secret, count, users, minBytes, prefix }) {
  // Fixed-width ids keep every body the same size.
  const convId = (i) => `conv_${prefix}_${String(i).padStart(8, "0")}`;
  const userId = (i) => `user_${prefix}_${String(i % users).padStart(6, "0")}`;
  const CONV = "@@CONVERSATION_ID@@";
  const USER = "@@USER_ID@@";
  const startedAt = Math.floor(Date.now() / 1000) - 3600;
  const event = paddedTranscription(minBytes, { conversationId: CONV, userId: USER, startedAt });
  const parts = JSON.stringify(event).split(/(@@CONVERSATION_ID@@|@@USER_ID@@)/).map((p) => (p === CONV || p === USER ? p : Buffer.from(p)));
  const bodyOf = (i) => {
    const c = Buffer.from(convId(i));
    const u = Buffer.from(userId(i));
    return Buffer.concat(parts.map((p) => (p === CONV ? c : p === USER ? u : p)));
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
