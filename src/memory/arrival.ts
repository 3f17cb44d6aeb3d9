/**
 * The one way a verified transcription becomes memory, whoever brought it: the webhook (signed by
 * ElevenLabs), a history import (read from ElevenLabs' API with our key) or an operator's
 * attribution of a conversation no one owned. All go through the same steps (normalise, identify,
 * route to the owner's object, which applies the tombstone, the erasure under way and dedupe, then
 * commits memory, the D1/R2 outbox item and the forwards in one function), so a conversation
 * imported twice, or imported and also delivered by webhook, is counted once.
 *
 * What differs by origin is only who vouches for the user id:
 *  - "webhook": the user id is a claim of whoever started the session (docs: ELEVENLABS.md section 5),
 *    believed only with its `postcall_user_token` (trust `token`; `claimed` with USER_ID_TRUST="claimed").
 *  - "import": the user id comes from ElevenLabs' own record of the conversation, fetched with the
 *    operator's API key by an import the operator started: trust `operator`, as the README says.
 *  - "attribution": the operator (API_KEY) said whose it is: trust `operator`, for that user only.
 * The rule itself is `vouch` (src/records/identity.ts), reached through `vouchedOwner`.
 *
 * What an erasure removed never comes back by any of them (docs/guarantees.md "Erasure lasts"): the
 * owner's object drops it (its tombstone and erasure mark), and an operator's path first asks the
 * erasure ledger (`wasErased`), which also spares an import the fetch.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import type { IdentityTrust } from "../records/identity";
import { userObjectName, type MemoryName } from "../records/object-names";
import { normaliseForMemory, vouchedOwner, type Envelope, type MemoryRecord } from "../records/payload";
import { apiKeyOf } from "../elevenlabs/api";
import { audioExpected } from "../records/audio-expected";
import { contextCache } from "./context-cache";
import { wasErased } from "./erasure-ledger";
import { ledgerObject, memoryToWrite, phoneObject, type UserStub } from "./objects";

export { wasErased };

export type Origin = "webhook" | "import" | "attribution";

/** Who vouches for the user id of a transcription from this origin (USER_ID_TRUST applies to webhooks only). */
export function identityTrustOf(origin: Origin, userIdTrust: "verified" | "claimed"): IdentityTrust {
  if (origin !== "webhook") return "operator";
  return userIdTrust === "claimed" ? "claimed" : "token";
}

export interface Arrival {
  origin: Origin;
  /** Unix seconds. */
  receivedAt: number;
  /** Fetch the audio at once rather than waiting for its webhook (an import with `include_audio`). */
  audioNow?: boolean;
  /** The user an operator attributes the conversation to (origin "attribution"). */
  operatorUserId?: string;
}

export interface Arrived {
  duplicate: boolean;
  /** An event of an erased conversation (src/objects/shared/tombstone.ts): acknowledged, kept nowhere. */
  dropped?: "erased";
  /** The record as normalised with its vouched owner (the claim, if not believed, in `claimedUserId`). */
  normalised: MemoryRecord;
  /** The record as stored (a number linked to an app user is stored for that user). */
  record: MemoryRecord;
  identity: IdentityTrust;
}

export async function transcriptionArrived(env: Env, envelope: Envelope, raw: Uint8Array, arrival: Arrival): Promise<Arrived> {
  const cfg = config(env);
  const opts = { userIdVariable: cfg.userIdVariable, defaultCountryCode: cfg.defaultCountryCode, nowSeconds: arrival.receivedAt };
  const identity = identityTrustOf(arrival.origin, cfg.userIdTrust);
  const owner = await vouchedOwner(envelope, {
    ...opts,
    trust: identity,
    ...(arrival.operatorUserId !== undefined ? { operatorUserId: arrival.operatorUserId } : {}),
    secrets: cfg.webhookSecrets,
    lifetimeSeconds: cfg.userTokenLifetimeSeconds,
  });
  const record = normaliseForMemory(envelope, opts, owner);
  // The erasure ledger: an operator's path (an import next quarter, an attribution) never brings back
  // a conversation an erasure removed, whoever it names now. A webhook's objects carry their own entry
  // (the erasure mark): no D1 round trip before its 200.
  if (arrival.origin !== "webhook" && (await wasErased(env, record.conversationId))) {
    return { duplicate: false, dropped: "erased", normalised: record, record, identity };
  }
  const stored = await recordTranscription(env, record, raw, arrival.receivedAt);
  // An erased conversation's audio is not fetched back.
  if (!stored.dropped) await expectAudioOf(env, envelope, record, arrival);
  return { duplicate: stored.duplicate, ...(stored.dropped ? { dropped: stored.dropped } : {}), normalised: record, record: stored.record, identity };
}

/**
 * Records a transcription with its owner. A conversation identified only by the caller's number goes
 * to the number's object, which either records it (no link) or answers with the app user the number
 * is linked to, who then records it: one extra hop, only for phone-only conversations of linked
 * numbers. A conversation no one owns is recorded by its ledger.
 */
async function recordTranscription(
  env: Env,
  record: MemoryRecord,
  raw: Uint8Array,
  receivedAt: number,
): Promise<{ duplicate: boolean; dropped?: "erased"; record: MemoryRecord }> {
  const input = { record, raw, receivedAt };
  if (record.userId === null) {
    const r = await ledgerObject(env, record.conversationId).recordConversation(input);
    return { duplicate: r.duplicate, ...(r.dropped ? { dropped: r.dropped } : {}), record };
  }
  // A phone-only caller is first resolved by the number's object (shared by every agent: it says who owns the number).
  const first: { stub: UserStub; name?: MemoryName } =
    record.userIdSource === "phone_number" ? { stub: phoneObject(env, record.userId) } : await memoryToWrite(env, record.userId, record.agentId);
  let result = await first.stub.recordConversation(input);
  let stored = record;
  let name = first.name ?? userObjectName(record.userId);
  if (result.linkedTo !== undefined) {
    stored = { ...record, userId: result.linkedTo, userIdSource: "phone_link" };
    const linked = await memoryToWrite(env, result.linkedTo, record.agentId);
    result = await linked.stub.recordConversation({ record: stored, raw, receivedAt });
    name = linked.name;
  }
  // This isolate's cached context for the memory (CONTEXT_CACHE_SECONDS) is now out of date.
  contextCache.forget(name);
  return { duplicate: result.duplicate, ...(result.dropped ? { dropped: result.dropped } : {}), record: stored };
}

/**
 * Queues the audio backfill when audio is expected. Done for duplicates too: a redelivery after a
 * 5xx here must still queue it (queueing is idempotent). An import without `include_audio` asks for
 * nothing: its conversations' audio webhooks were sent long ago.
 */
async function expectAudioOf(env: Env, envelope: Envelope, record: MemoryRecord, arrival: Arrival): Promise<void> {
  const cfg = config(env);
  if (apiKeyOf(env) === null) return;
  if (arrival.origin !== "webhook" && !arrival.audioNow) return;
  if (!audioExpected(cfg.audioBackfill, envelope.data)) return;
  const dueAtMs = arrival.audioNow ? Date.now() : Date.now() + cfg.audioBackfillAfterSeconds * 1000;
  await ledgerObject(env, record.conversationId).expectAudio({ agentId: record.agentId, dueAtMs });
}

/** After an audio webhook that failed once verified (5xx): fetch it from the API at once instead. */
export async function audioWebhookFailed(env: Env, conversationId: string, agentId: string | null): Promise<void> {
  if (apiKeyOf(env) === null) return;
  try {
    await ledgerObject(env, conversationId).expectAudio({ agentId, dueAtMs: Date.now() });
  } catch (err) {
    console.error(`could not queue the audio backfill of ${conversationId}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
