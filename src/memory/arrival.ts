/**
 * The one way a verified transcription becomes memory, whoever brought it: the webhook (signed by
 * ElevenLabs) or a history import (read from ElevenLabs' API with our key). Both go through the same
 * steps (normalise, identify, dedupe, memory, then D1 and R2 through the owner's outbox), so a
 * conversation imported twice, or imported and also delivered by webhook, is counted once.
 *
 * What differs by origin is only who vouches for the user id:
 *  - "webhook": the user id is a claim of whoever started the session (docs: ELEVENLABS.md section 5),
 *    believed only with its `postcall_user_token` (trust `token`; `claimed` with USER_ID_TRUST="claimed").
 *  - "import": the user id comes from ElevenLabs' own record of the conversation, fetched with the
 *    operator's API key by an import the operator started: trust `operator`, as the README says.
 * The rule itself is `vouch` (src/records/identity.ts), reached through `vouchedOwner`.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import type { IdentityTrust } from "../records/identity";
import { normaliseForMemory, vouchedOwner, type Envelope, type MemoryRecord } from "../records/payload";
import { apiKeyOf } from "../elevenlabs/api";
import { audioExpected } from "../objects/conversation-ledger/audio-backfill";
import { conversationObject, recordTranscription } from "./objects";

export type Origin = "webhook" | "import";

/** Who vouches for the user id of a transcription from this origin (USER_ID_TRUST applies to webhooks only). */
export function identityTrustOf(origin: Origin, userIdTrust: "verified" | "claimed"): IdentityTrust {
  if (origin === "import") return "operator";
  return userIdTrust === "claimed" ? "claimed" : "token";
}

export interface Arrival {
  origin: Origin;
  /** Unix seconds. */
  receivedAt: number;
  /** Fetch the audio at once rather than waiting for its webhook (an import with `include_audio`). */
  audioNow?: boolean;
}

export interface Arrived {
  duplicate: boolean;
  /** An event of an erased conversation (src/memory/tombstone.ts): acknowledged, kept nowhere. */
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
  const owner = await vouchedOwner(envelope, { ...opts, trust: identity, secrets: cfg.webhookSecrets, lifetimeSeconds: cfg.userTokenLifetimeSeconds });
  const record = normaliseForMemory(envelope, opts, owner);
  const stored = await recordTranscription(env, record, raw, arrival.receivedAt);
  // An erased conversation's audio is not fetched back.
  if (!stored.dropped) await expectAudioOf(env, envelope, record, arrival);
  return { duplicate: stored.duplicate, ...(stored.dropped ? { dropped: stored.dropped } : {}), normalised: record, record: stored.record, identity };
}

/**
 * Queues the audio backfill when audio is expected. Done for duplicates too: a redelivery after a
 * 5xx here must still queue it (queueing is idempotent). An import without `include_audio` asks for
 * nothing: its conversations' audio webhooks were sent long ago.
 */
async function expectAudioOf(env: Env, envelope: Envelope, record: MemoryRecord, arrival: Arrival): Promise<void> {
  const cfg = config(env);
  if (apiKeyOf(env) === null) return;
  if (arrival.origin === "import" && !arrival.audioNow) return;
  if (!audioExpected(cfg.audioBackfill, envelope.data)) return;
  const dueAtMs = arrival.audioNow ? Date.now() : Date.now() + cfg.audioBackfillAfterSeconds * 1000;
  await conversationObject(env, record.conversationId).expectAudio({ conversationId: record.conversationId, agentId: record.agentId, dueAtMs });
}

/** After an audio webhook that failed once verified (5xx): fetch it from the API at once instead. */
export async function audioWebhookFailed(env: Env, conversationId: string, agentId: string | null): Promise<void> {
  if (apiKeyOf(env) === null) return;
  try {
    await conversationObject(env, conversationId).expectAudio({ conversationId, agentId, dueAtMs: Date.now() });
  } catch (err) {
    console.error(`could not queue the audio backfill of ${conversationId}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
