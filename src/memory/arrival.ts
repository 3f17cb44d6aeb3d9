/**
 * The one way a verified transcription becomes memory, whoever brought it: the webhook (signed by
 * ElevenLabs) or a history import (read from ElevenLabs' API with our key). Both go through the same
 * steps (normalise, identify, dedupe, memory, then D1 and R2 through the owner's outbox), so a
 * conversation imported twice, or imported and also delivered by webhook, is counted once.
 *
 * What differs by origin is only who vouches for the user id:
 *  - "webhook": the user id is a claim of whoever started the session (docs: ELEVENLABS.md section 5);
 *    the webhook path's verification (USER_ID_TRUST) belongs here, for this origin only.
 *  - "import": the user id comes from ElevenLabs' own record of the conversation, fetched with the
 *    operator's API key by an import the operator started: operator-trusted, as the README says.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { normaliseForMemory, type Envelope, type MemoryRecord } from "../records/payload";
import { apiKeyOf } from "../storage/elevenlabs-api";
import { audioExpected } from "./audio-backfill";
import { conversationObject, recordTranscription } from "./objects";

export type Origin = "webhook" | "import";

/** Who vouches for the user id of a transcription from this origin. */
export type IdentityTrust = "claimed" | "operator_trusted";

export const identityTrustOf = (origin: Origin): IdentityTrust => (origin === "import" ? "operator_trusted" : "claimed");

export interface Arrival {
  origin: Origin;
  /** Unix seconds. */
  receivedAt: number;
  /** Fetch the audio at once rather than waiting for its webhook (an import with `include_audio`). */
  audioNow?: boolean;
}

export interface Arrived {
  duplicate: boolean;
  record: MemoryRecord;
  identity: IdentityTrust;
}

export async function transcriptionArrived(env: Env, envelope: Envelope, raw: Uint8Array, arrival: Arrival): Promise<Arrived> {
  const cfg = config(env);
  const record = normaliseForMemory(envelope, {
    userIdVariable: cfg.userIdVariable,
    defaultCountryCode: cfg.defaultCountryCode,
    nowSeconds: arrival.receivedAt,
  });
  const identity = identityTrustOf(arrival.origin);
  const stored = await recordTranscription(env, record, raw, arrival.receivedAt);
  await expectAudioOf(env, envelope, record, arrival);
  return { duplicate: stored.duplicate, record: stored.record, identity };
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
