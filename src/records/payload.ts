/**
 * Lenient normalisation of ElevenLabs post-call payloads into the records postcall stores.
 * Pure: no bindings. Unknown keys are ignored here (the raw payload is kept whole in R2); optional
 * fields of the wrong type are treated as absent; only what postcall cannot work without (the
 * envelope's `type`, `data`, `data.conversation_id`, `data.agent_id`) is required, and its absence
 * is a 400 (ElevenLabs never retries a 4xx, and such a payload would never succeed).
 */
import { badRequest } from "../lib/errors";
import { isValidId } from "../lib/ids";
import { USER_TOKEN_VARIABLE, verifyUserToken } from "../lib/user-token";
import { resolveUser, vouch, type IdentityTrust, type ResolvedUser, type UnverifiedReason, type UserIdSource, type VouchedBy } from "./identity";

export type { IdentityTrust, ResolvedUser };
import { arr, boundedJson, int, isObj, nonEmpty, obj, RECORD_LIMITS, str, unixSeconds, type Json, type Obj } from "./bounds";
import { clip } from "./limits";

export { RECORD_LIMITS, jsonDepth, type Json } from "./bounds";
import { fitsStorageKey } from "./keys";


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
  /** How the owner was vouched for (src/records/identity.ts `vouch`); null when there is no owner. */
  vouchedBy: VouchedBy | null;
  /** An app user id the event claimed without proof (then not the owner), and why it was not believed. */
  claimedUserId: string | null;
  unverified: UnverifiedReason | null;
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
  return { type, eventTimestamp: unixSeconds(parsed["event_timestamp"]), data: obj(parsed["data"]) };
}

export function conversationIdOf(data: Obj): string {
  const id = data["conversation_id"];
  // An id whose storage key would pass R2's 1,024-byte limit could never be delivered: refuse it now
  // (400, never retried) rather than acknowledge an event the outbox can never hand on.
  if (typeof id !== "string" || !isValidId(id) || !fitsStorageKey(id)) {
    throw badRequest(
      "invalid_payload",
      "`data.conversation_id` must be a string of 1 to 256 characters with no control characters.",
    );
  }
  return id;
}

export function agentIdOf(data: Obj): string {
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
    const calls = arr(raw["tool_calls"]).map(boundedJson);
    const results = arr(raw["tool_results"]).map(boundedJson);
    turns.push({
      index: turns.length,
      role: clip(str(raw["role"]), 64) ?? "unknown",
      message: clip(str(raw["message"]), RECORD_LIMITS.textChars),
      timeInCallSecs: Math.max(0, int(raw["time_in_call_secs"]) ?? 0),
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

/** Who the conversation says it belongs to (the claim, not yet vouched for); depends on settings. */
export function identityOf(
  envelope: Envelope,
  opts: { userIdVariable: string; defaultCountryCode: string },
): ResolvedUser {
  const data = envelope.data;
  const phone = obj(obj(data["metadata"])["phone_call"]);
  const clientData = obj(data["conversation_initiation_client_data"]);
  return resolveUser(
    {
      dataUserId: data["user_id"],
      clientDataUserId: clientData["user_id"],
      dynamicVariables: obj(clientData["dynamic_variables"]),
      externalNumber: phone["external_number"],
    },
    opts.userIdVariable,
    opts.defaultCountryCode,
  );
}

/**
 * What the webhook's answer and the user's memory need of a transcription: everything but the
 * transcript and the evaluation, which only the delivery to D1 needs (it rebuilds the whole record
 * from the raw bytes, `conversationRecord`). Normalising turns and carrying them over the Durable
 * Object RPC cost the request path work nothing there used.
 */
export type MemoryRecord = Omit<ConversationRecord, "turns" | "evaluation">;

type NormaliseOptions = { userIdVariable: string; defaultCountryCode: string; nowSeconds: number };

export interface TrustOptions extends NormaliseOptions {
  /** How this event's identity is vouched for: `token` for webhooks, `operator` for what the operator feeds in. */
  trust: IdentityTrust;
  /** ELEVENLABS_WEBHOOK_SECRET values, from which the token key is derived (src/lib/user-token.ts). */
  secrets: readonly string[];
  lifetimeSeconds: number;
  /** With trust `operator`: the user the operator names (attribution), instead of the event's claim. */
  operatorUserId?: string;
}

/**
 * The verification step: the event's claimed owner, vouched for as `opts.trust` says (the rule is
 * `vouch` in src/records/identity.ts). Every path that turns an event into memory goes through
 * here: the webhook with `token` (or `claimed`), the operator's paths with `operator`.
 */
export async function vouchedOwner(envelope: Envelope, opts: TrustOptions): Promise<ResolvedUser> {
  const claim = ownerOfEvent(envelope, opts);
  if (opts.trust === "operator" && opts.operatorUserId !== undefined) {
    const claimed = claim.source === "phone_number" ? null : claim.userId;
    return { userId: opts.operatorUserId, source: "operator", phoneNumber: claim.phoneNumber, vouchedBy: "operator", claimedUserId: claimed, unverified: null };
  }
  const clientData = obj(envelope.data["conversation_initiation_client_data"]);
  const token = obj(clientData["dynamic_variables"])[USER_TOKEN_VARIABLE];
  // The token is read only when it matters: a claim that is not a telephony number, and not the operator's.
  const needsToken = claim.userId !== null && claim.source !== "phone_number" && opts.trust !== "operator";
  return vouch(claim, {
    trust: opts.trust,
    token: needsToken ? await verifyUserToken(opts.secrets, token) : { ok: false, reason: "missing" },
    startedAt: startedAtOf(envelope, opts.nowSeconds),
    lifetimeSeconds: opts.lifetimeSeconds,
  });
}

/**
 * The memory's share of a transcription. `owner` is the vouched owner (`vouchedOwner`); without it
 * the claim is taken as it is (pure tests of normalisation).
 */
export function normaliseForMemory(envelope: Envelope, opts: NormaliseOptions, owner?: ResolvedUser): MemoryRecord {
  return memoryRecord(envelope, owner ?? ownerOfEvent(envelope, opts), opts.nowSeconds);
}

/** The owner a record was made with (what an outbox item keeps to rebuild it). */
export function ownerOfRecord(r: MemoryRecord): ResolvedUser {
  return { userId: r.userId, source: r.userIdSource, phoneNumber: r.phoneNumber, vouchedBy: r.vouchedBy, claimedUserId: r.claimedUserId, unverified: r.unverified };
}

/** Unix seconds. Falls back to the event timestamp, then to the receive time. */
export function startedAtOf(envelope: Envelope, nowSeconds: number): number {
  return unixSeconds(obj(envelope.data["metadata"])["start_time_unix_secs"]) ?? envelope.eventTimestamp ?? nowSeconds;
}

function ownerOfEvent(envelope: Envelope, opts: NormaliseOptions): ResolvedUser {
  // Ids are checked before the user, so a payload with neither is refused for its ids.
  conversationIdOf(envelope.data);
  agentIdOf(envelope.data);
  return identityOf(envelope, opts);
}

/**
 * The record for an event whose owner is already known. Deterministic in its inputs, so the outbox
 * can rebuild a record from the raw bytes it kept instead of storing a second, larger copy.
 */
export function conversationRecord(envelope: Envelope, user: ResolvedUser, nowSeconds: number): ConversationRecord {
  const analysis = obj(envelope.data["analysis"]);
  // fromEntries defines own properties, so an id such as "__proto__" stays an ordinary key (an
  // assignment would set the prototype instead; a null-prototype object cannot cross an RPC).
  const evaluation: Record<string, Json> = Object.fromEntries(
    Object.entries(obj(analysis["evaluation_criteria_results"]))
      .filter((e): e is [string, Obj] => isObj(e[1]))
      .map(([key, entry]) => [
        clip(key, RECORD_LIMITS.labelChars)!,
        { result: clip(str(entry["result"]), RECORD_LIMITS.labelChars), rationale: clip(str(entry["rationale"]), RECORD_LIMITS.textChars) },
      ]),
  );
  return { ...memoryRecord(envelope, user, nowSeconds), evaluation, turns: normaliseTurns(envelope.data["transcript"]) };
}

function memoryRecord(envelope: Envelope, user: ResolvedUser, nowSeconds: number): MemoryRecord {
  const data = envelope.data;
  const conversationId = conversationIdOf(data);
  const agentId = agentIdOf(data);
  const metadata = obj(data["metadata"]);
  const phone = obj(metadata["phone_call"]);
  const analysis = obj(data["analysis"]);

  const facts: Fact[] = [];
  for (const [key, entry] of Object.entries(obj(analysis["data_collection_results"]))) {
    if (!isObj(entry)) continue;
    const id = clip(nonEmpty(entry["data_collection_id"]) ?? key, RECORD_LIMITS.labelChars)!;
    const value = entry["value"];
    if (value === null || value === undefined || (typeof value === "string" && value.trim() === "")) continue;
    facts.push({ id, value: boundedJson(typeof value === "string" ? clip(value, RECORD_LIMITS.textChars) : value) as Json });
  }
  const startedAt = startedAtOf(envelope, nowSeconds);
  const label = (v: unknown) => clip(nonEmpty(v), RECORD_LIMITS.labelChars);
  return {
    conversationId,
    agentId,
    agentName: label(data["agent_name"]),
    status: label(data["status"]),
    userId: user.userId,
    userIdSource: user.source,
    vouchedBy: user.vouchedBy ?? null,
    claimedUserId: user.claimedUserId ?? null,
    unverified: user.unverified ?? null,
    phoneNumber: user.phoneNumber,
    phoneDirection: label(phone["direction"]),
    phoneProvider: label(phone["type"]),
    startedAt,
    durationSecs: Math.max(0, int(metadata["call_duration_secs"]) ?? 0),
    title: clip(nonEmpty(analysis["call_summary_title"])?.trim() ?? null, RECORD_LIMITS.labelChars),
    summary: clip(nonEmpty(analysis["transcript_summary"])?.trim() ?? null, RECORD_LIMITS.textChars),
    callSuccessful: label(analysis["call_successful"]),
    terminationReason: label(metadata["termination_reason"]),
    mainLanguage: label(metadata["main_language"]),
    facts,
    eventTimestamp: envelope.eventTimestamp,
  };
}

