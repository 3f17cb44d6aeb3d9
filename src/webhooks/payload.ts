/**
 * Lenient normalisation of ElevenLabs post-call payloads into the records postcall stores.
 * Pure: no bindings. Unknown keys are ignored here (the raw payload is kept whole in R2); optional
 * fields of the wrong type are treated as absent; only what postcall cannot work without (the
 * envelope's `type`, `data`, `data.conversation_id`, `data.agent_id`) is required, and its absence
 * is a 400 (ElevenLabs never retries a 4xx, and such a payload would never succeed).
 */
import { badRequest } from "../errors";
import { isValidId, normalisePhone, resolveUser, type UserIdSource } from "../memory/identity";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: unknown };

export interface Envelope {
  type: string;
  eventTimestamp: number | null;
  data: Obj;
}

export interface Turn {
  index: number;
  role: string;
  message: string | null;
  timeInCallSecs: number;
  /** `tool_calls` and `tool_results` of the turn, or null when it made none. */
  tools: { calls: unknown[]; results: unknown[] } | null;
  feedback: "like" | "dislike" | null;
}

export interface Fact {
  id: string;
  value: Json;
}

export interface ConversationRecord {
  conversationId: string;
  agentId: string;
  agentName: string | null;
  status: string | null;
  userId: string | null;
  userIdSource: UserIdSource | null;
  phoneNumber: string | null;
  phoneDirection: string | null;
  phoneProvider: string | null;
  /** Unix seconds. Falls back to the event timestamp, then to the receive time. */
  startedAt: number;
  durationSecs: number;
  title: string | null;
  summary: string | null;
  callSuccessful: string | null;
  terminationReason: string | null;
  mainLanguage: string | null;
  evaluation: Record<string, Json>;
  facts: Fact[];
  turns: Turn[];
  eventTimestamp: number | null;
}

export interface CallFailureRecord {
  conversationId: string;
  agentId: string;
  failureReason: string;
  provider: string | null;
  fromNumber: string | null;
  toNumber: string | null;
  sipStatusCode: number | null;
  callSid: string | null;
  metadata: Json;
  eventTimestamp: number | null;
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const nonEmpty = (v: unknown): string | null => (typeof v === "string" && v.trim() !== "" ? v : null);
const num = (v: unknown): number | null => {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  return null;
};
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

// Stateless for whole-buffer decoding, so one instance serves every request.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export function parseEnvelope(body: Uint8Array): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw badRequest("invalid_json", "The body is not valid UTF-8 JSON.");
  }
  if (!isObj(parsed)) throw badRequest("invalid_payload", "The body must be a JSON object.");
  const type = parsed["type"];
  if (typeof type !== "string" || type === "") {
    throw badRequest("invalid_payload", "The field `type` must be a non-empty string.");
  }
  // Documented as a number on one page and a string on another: accept both.
  const eventTimestamp = num(parsed["event_timestamp"]);
  return { type, eventTimestamp: eventTimestamp === null ? null : Math.floor(eventTimestamp), data: obj(parsed["data"]) };
}

export function conversationIdOf(data: Obj): string {
  const id = data["conversation_id"];
  if (typeof id !== "string" || !isValidId(id)) {
    throw badRequest(
      "invalid_payload",
      "`data.conversation_id` must be a string of 1 to 256 characters with no control characters.",
    );
  }
  return id;
}

function agentIdOf(data: Obj): string {
  const id = data["agent_id"];
  if (typeof id !== "string" || !isValidId(id)) {
    throw badRequest("invalid_payload", "`data.agent_id` must be a string of 1 to 256 characters.");
  }
  return id;
}

function feedbackOf(v: unknown): "like" | "dislike" | null {
  const score = isObj(v) ? v["score"] : null;
  return score === "like" || score === "dislike" ? score : null;
}

export function normaliseTurns(transcript: unknown): Turn[] {
  const turns: Turn[] = [];
  for (const raw of arr(transcript)) {
    if (!isObj(raw)) continue;
    const calls = arr(raw["tool_calls"]);
    const results = arr(raw["tool_results"]);
    turns.push({
      index: turns.length,
      role: str(raw["role"]) ?? "unknown",
      message: str(raw["message"]),
      timeInCallSecs: Math.max(0, Math.floor(num(raw["time_in_call_secs"]) ?? 0)),
      tools: calls.length > 0 || results.length > 0 ? { calls, results } : null,
      feedback: feedbackOf(raw["feedback"]),
    });
  }
  return turns;
}

/** The first sentence of a summary, used as a topic when the analysis has no title. */
export function firstSentence(text: string): string {
  const trimmed = text.trim().replace(/\s+/g, " ");
  const m = /^(.+?[.!?])(\s|$)/.exec(trimmed);
  return (m ? m[1]! : trimmed).trim();
}

export function normaliseTranscription(
  envelope: Envelope,
  opts: { userIdVariable: string; defaultCountryCode: string; nowSeconds: number },
): ConversationRecord {
  const data = envelope.data;
  const conversationId = conversationIdOf(data);
  const agentId = agentIdOf(data);
  const metadata = obj(data["metadata"]);
  const phone = obj(metadata["phone_call"]);
  const clientData = obj(data["conversation_initiation_client_data"]);
  const dynamicVariables = obj(clientData["dynamic_variables"]);
  const analysis = obj(data["analysis"]);

  const user = resolveUser(
    {
      dataUserId: data["user_id"],
      clientDataUserId: clientData["user_id"],
      dynamicVariables,
      externalNumber: phone["external_number"],
    },
    opts.userIdVariable,
    opts.defaultCountryCode,
  );

  const facts: Fact[] = [];
  for (const [key, entry] of Object.entries(obj(analysis["data_collection_results"]))) {
    if (!isObj(entry)) continue;
    const id = nonEmpty(entry["data_collection_id"]) ?? key;
    const value = entry["value"];
    if (value === null || value === undefined || (typeof value === "string" && value.trim() === "")) continue;
    facts.push({ id, value: value as Json });
  }
  const evaluation: Record<string, Json> = {};
  for (const [key, entry] of Object.entries(obj(analysis["evaluation_criteria_results"]))) {
    if (!isObj(entry)) continue;
    evaluation[key] = { result: str(entry["result"]), rationale: str(entry["rationale"]) };
  }

  const startedAt = num(metadata["start_time_unix_secs"]) ?? envelope.eventTimestamp ?? opts.nowSeconds;
  return {
    conversationId,
    agentId,
    agentName: nonEmpty(data["agent_name"]),
    status: nonEmpty(data["status"]),
    userId: user.userId,
    userIdSource: user.source,
    phoneNumber: user.phoneNumber,
    phoneDirection: nonEmpty(phone["direction"]),
    phoneProvider: nonEmpty(phone["type"]),
    startedAt: Math.floor(startedAt),
    durationSecs: Math.max(0, Math.floor(num(metadata["call_duration_secs"]) ?? 0)),
    title: nonEmpty(analysis["call_summary_title"])?.trim() ?? null,
    summary: nonEmpty(analysis["transcript_summary"])?.trim() ?? null,
    callSuccessful: nonEmpty(analysis["call_successful"]),
    terminationReason: nonEmpty(metadata["termination_reason"]),
    mainLanguage: nonEmpty(metadata["main_language"]),
    evaluation,
    facts,
    turns: normaliseTurns(data["transcript"]),
    eventTimestamp: envelope.eventTimestamp,
  };
}

export function normaliseCallFailure(envelope: Envelope, defaultCountryCode: string): CallFailureRecord {
  const data = envelope.data;
  const conversationId = conversationIdOf(data);
  const agentId = agentIdOf(data);
  const metadata = obj(data["metadata"]);
  const body = obj(metadata["body"]);
  const provider = nonEmpty(metadata["type"]);
  const twilio = provider === "twilio";
  const sipCode = num(body["sip_status_code"]);
  return {
    conversationId,
    agentId,
    failureReason: nonEmpty(data["failure_reason"]) ?? "unknown",
    provider,
    fromNumber: normalisePhone(twilio ? body["From"] : body["from_number"], defaultCountryCode),
    toNumber: normalisePhone(twilio ? body["To"] : body["to_number"], defaultCountryCode),
    sipStatusCode: sipCode === null ? null : Math.floor(sipCode),
    callSid: nonEmpty(twilio ? body["CallSid"] : body["call_sid"]),
    metadata: (isObj(data["metadata"]) ? data["metadata"] : null) as Json,
    eventTimestamp: envelope.eventTimestamp,
  };
}
