/**
 * Audio that ElevenLabs has but postcall may not: audio webhooks are never retried, so one 5xx,
 * timeout or deploy during a long upload loses the recording here for good. In a `conversation:<id>`
 * object (the holder of every audio link), a transcription that expects audio queues an
 * `audio_backfill` outbox item due AUDIO_BACKFILL_AFTER_SECONDS later (at once after a failed audio
 * webhook, or for an import with `include_audio`). When it comes due and no audio is linked, the MP3
 * is streamed from the API into R2 through the same bounded-memory multipart upload as the webhook
 * (src/storage/audio-upload.ts: never the whole MP3 in memory), then linked exactly as the webhook
 * links it (`seen`, `audio`, an `audio` outbox item for D1). An audio webhook arriving afterwards is a
 * duplicate; one that arrived first makes the backfill a no-op.
 *
 * Without ELEVENLABS_API_KEY nothing is queued and nothing is fetched.
 */
import type { Env } from "../../lib/env";
import { newAudioKey } from "../../records/keys";
import { AudioUpload } from "../../storage/audio-upload";
import { ElevenLabsApi, ElevenLabsApiError } from "../../elevenlabs/api";
import * as audioLinks from "./audio-links";
import { isDuplicate, markSeen } from "../shared/dedupe";
import * as outbox from "../shared/outbox";
import type { BackfillOutcome } from "../../memory/rpc";

/**
 * Queues (or brings forward) the backfill of a conversation's audio. Idempotent: with audio already
 * linked nothing is queued; with a backfill already queued it is only moved earlier. Returns when
 * the object's alarm must fire (ms), or null when nothing is queued.
 */
export function expectAudio(sql: SqlStorage, input: { conversationId: string; agentId: string | null; dueAtMs: number }, now: number): number | null {
  if (audioLinks.readLink(sql, input.conversationId) !== null || isDuplicate(sql, "post_call_audio", input.conversationId)) return null;
  const queued = sql
    .exec<{ seq: number; next_attempt_at: number }>(
      "SELECT seq, next_attempt_at FROM outbox WHERE kind = 'audio_backfill' AND conversation_id = ?",
      input.conversationId,
    )
    .toArray()[0];
  if (queued) {
    if (queued.next_attempt_at <= input.dueAtMs) return queued.next_attempt_at;
    sql.exec("UPDATE outbox SET next_attempt_at = ? WHERE seq = ?", input.dueAtMs, queued.seq);
    return input.dueAtMs;
  }
  const item = { kind: "audio_backfill", conversationId: input.conversationId, agentId: input.agentId } as const;
  outbox.enqueue(sql, item, input.conversationId, now, input.dueAtMs);
  return input.dueAtMs;
}

/**
 * Fetches and links the audio unless it is linked already. The link is decided after the upload, in
 * one synchronous step, so an audio webhook or a second backfill that completed meanwhile wins and
 * this copy is deleted: a conversation never has two audio objects linked.
 */
export async function backfillAudio(env: Env, sql: SqlStorage, conversationId: string, agentId: string | null): Promise<BackfillOutcome> {
  const existing = audioLinks.readLink(sql, conversationId);
  if (existing) return { status: "already_stored", bytes: existing.bytes, sha256: existing.sha256 };
  const api = ElevenLabsApi.of(env);
  if (api === null) return { status: "not_configured" };
  const stream = await api.audio(conversationId);
  if (stream === null) return { status: "unavailable" };
  const upload = new AudioUpload(env.AUDIO, newAudioKey());
  let stored;
  try {
    await pump(stream, upload);
    stored = await upload.complete();
  } catch (err) {
    await upload.abort();
    throw err;
  }
  const receivedAt = Math.floor(Date.now() / 1000);
  const winner = audioLinks.readLink(sql, conversationId);
  if (winner !== null || isDuplicate(sql, "post_call_audio", conversationId)) {
    await upload.discard();
    return winner ? { status: "already_stored", bytes: winner.bytes, sha256: winner.sha256 } : { status: "already_stored", bytes: stored.bytes, sha256: stored.sha256 };
  }
  const link = { conversationId, agentId, key: stored.key, bytes: stored.bytes, sha256: stored.sha256, receivedAt };
  markSeen(sql, "post_call_audio", conversationId, receivedAt);
  audioLinks.insertLink(sql, link);
  outbox.enqueue(sql, { kind: "audio", link }, conversationId, receivedAt);
  return { status: "stored", bytes: stored.bytes, sha256: stored.sha256 };
}

/** Response body -> upload, waiting for R2 whenever a part is full (the webhook's memory bound). */
async function pump(stream: ReadableStream<Uint8Array>, upload: AudioUpload): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      upload.push(value);
      if (upload.hasReadyPart) await upload.drain();
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    if (err instanceof ElevenLabsApiError) throw err;
    throw new ElevenLabsApiError(502, `The audio stream from ElevenLabs broke off after ${upload.bytes} bytes: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Whether a transcription means audio should arrive (AUDIO_BACKFILL and `has_audio`). */
export function audioExpected(mode: "auto" | "always" | "off", data: Record<string, unknown>): boolean {
  if (mode === "off") return false;
  if (mode === "always") return true;
  return data["has_audio"] === true || data["has_user_audio"] === true || data["has_response_audio"] === true;
}
