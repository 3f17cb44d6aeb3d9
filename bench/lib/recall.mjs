// What the recall eval (bench/recall-eval.mjs) and the bench's recall scenario (bench/run.mjs) share:
// turning a stored call into the post_call_transcription ElevenLabs would send, ingesting a user's
// history the way the README's integration does, and calling POST /tools/recall the way the
// ElevenLabs tool (elevenlabs/recall-tool.json) calls it.
//
// The integration, step by step (README, "Who is the user?" and "Let the agent recall past calls"):
// 1. before each call the app reads GET /v1/users/:id/context and passes every returned dynamic
//    variable (postcall_user_token among them) into the session, plus `user_id`;
// 2. ElevenLabs echoes them in the post-call event's conversation_initiation_client_data, signed;
// 3. mid-call, the tool sends `{{postcall_user_token}}` (a dynamic-variable parameter) to /tools/recall.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./workers.mjs";
import { signatureHeader } from "./payloads.mjs";

const FIXTURE = JSON.parse(readFileSync(join(ROOT, "test/fixtures/transcription.json"), "utf8"));

/** One transcript turn with every field ElevenLabs sends (test/fixtures/transcription.json's shape). */
function turnOf({ role, message }, t) {
  return {
    role,
    message,
    tool_calls: [],
    tool_results: [],
    feedback: null,
    llm_override: null,
    time_in_call_secs: t,
    conversation_turn_metrics: null,
    rag_retrieval_info: null,
    llm_usage: null,
    interrupted: false,
    original_message: null,
    source_medium: "audio",
  };
}

/**
 * The post_call_transcription for `call` ({ conversation_id, started_at (ISO), duration_secs, title,
 * summary, facts, turns: [{ role, message }] }), with the session's dynamic variables as the app
 * passed them (`dynamicVariables`: the context answer's, plus user_id).
 */
export function transcriptionEvent(call, { userId, agentId, agentName, dynamicVariables }) {
  const event = structuredClone(FIXTURE);
  const d = event.data;
  const started = Math.floor(Date.parse(call.started_at) / 1000);
  const duration = call.duration_secs ?? 60 + call.turns.length * 15;
  d.agent_id = agentId;
  d.agent_name = agentName;
  d.conversation_id = call.conversation_id;
  d.user_id = userId;
  const step = Math.max(1, Math.floor(duration / Math.max(1, call.turns.length)));
  d.transcript = call.turns.map((turn, i) => turnOf(turn, i * step));
  d.metadata.start_time_unix_secs = started;
  d.metadata.accepted_time_unix_secs = started;
  d.metadata.call_duration_secs = duration;
  d.metadata.cost = duration * 2;
  d.analysis.call_summary_title = call.title;
  d.analysis.transcript_summary = call.summary;
  d.analysis.data_collection_results = Object.fromEntries(
    Object.entries(call.facts ?? {}).map(([id, value]) => [
      id,
      { data_collection_id: id, value, rationale: "Stated by the caller.", json_schema: { type: typeof value === "number" ? "integer" : "string" } },
    ]),
  );
  const client = d.conversation_initiation_client_data;
  client.user_id = userId;
  client.dynamic_variables = {
    ...dynamicVariables,
    user_id: userId,
    system__agent_id: agentId,
    system__conversation_id: call.conversation_id,
    system__time_utc: new Date(started * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    system__call_duration_secs: duration,
  };
  event.event_timestamp = started + duration;
  return event;
}

/** GET /v1/users/:id/context, as the app does before a session: the dynamic variables to pass in. */
export async function contextVariables(url, apiKey, userId) {
  const res = await fetch(`${url}/v1/users/${encodeURIComponent(userId)}/context`, { headers: { authorization: `Bearer ${apiKey}` } });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET /v1/users/${userId}/context: ${res.status} ${body}`);
  return JSON.parse(body).dynamic_variables;
}

/** POSTs one signed event to /webhooks/elevenlabs; throws unless 200. */
export async function postEvent(url, secret, event) {
  const body = Buffer.from(JSON.stringify(event));
  const res = await fetch(`${url}/webhooks/elevenlabs`, {
    method: "POST",
    headers: { "content-type": "application/json", "elevenlabs-signature": signatureHeader(secret, body) },
    body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /webhooks/elevenlabs (${event.data.conversation_id}): ${res.status} ${text}`);
}

/**
 * Ingests one user's calls in order, each preceded by the context read the app makes before a
 * session (so every event carries the postcall_user_token the service minted). Returns the token
 * from a last context read: what the app would pass into the next session, and so what the tool
 * sends mid-call.
 */
export async function ingestHistory({ url, secret, apiKey, agentId, agentName, userId, calls }) {
  for (const call of calls) {
    const dynamicVariables = await contextVariables(url, apiKey, userId);
    await postEvent(url, secret, transcriptionEvent(call, { userId, agentId, agentName, dynamicVariables }));
  }
  const last = await contextVariables(url, apiKey, userId);
  return last.postcall_user_token;
}

/** The body the ElevenLabs tool sends (elevenlabs/recall-tool.json): the LLM's query, the rest from variables. */
export function recallBody({ query, token, conversationId, agentId, limit }) {
  return JSON.stringify({
    query,
    user_token: token,
    ...(conversationId ? { conversation_id: conversationId } : {}),
    ...(agentId ? { agent_id: agentId } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
}

/** POST /tools/recall; returns { status, body (parsed JSON or null), ms }. */
export async function recall(url, agentKey, params) {
  const t0 = performance.now();
  const res = await fetch(`${url}/tools/recall`, {
    method: "POST",
    headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" },
    body: recallBody(params),
  });
  const text = await res.text();
  const ms = performance.now() - t0;
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // left null: reported as a malformed answer
  }
  return { status: res.status, body, text, ms };
}

/**
 * Whether this tree has POST /tools/recall: null if it does, else why not (for a clear skip).
 * A missing route answers 404; a present one answers 200 (or 401 without a good key).
 */
export async function recallUnavailable(url, agentKey) {
  const res = await fetch(`${url}/tools/recall`, {
    method: "POST",
    headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" },
    body: JSON.stringify({ query: "probe", user_token: "" }),
  });
  const text = await res.text();
  if (res.status === 404) return "route `POST /tools/recall` does not exist in this tree (issue 13 builds it on branch `recall`)";
  if (res.status !== 200) return `POST /tools/recall answered ${res.status} to a well-formed probe with a good key: ${text.slice(0, 200)}`;
  return null;
}
