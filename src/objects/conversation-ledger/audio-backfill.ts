/**
 * Audio that ElevenLabs has but postcall may not: audio webhooks are never retried, so one 5xx,
 * timeout or deploy during a long upload loses the recording here for good. In a `conversation:<id>`
 * object (the holder of every audio link), a transcription that expects audio queues an
 * `audio_backfill` outbox item due AUDIO_BACKFILL_AFTER_SECONDS later (at once after a failed audio
 * webhook, or for an import with `include_audio`). When it comes due and no audio is linked, the MP3
 * is streamed from the API into R2 through the same bounded-memory multipart upload as the webhook
 * (src/storage/audio-upload.ts: never the whole MP3 in memory), then committed by the same function
 * as the webhook's audio (audio.ts `commitAudio`: tombstone, dedupe, link, D1 item, forwards). An
 * audio webhook arriving afterwards is a duplicate; one that arrived first makes the backfill a no-op.
 *
 * Without ELEVENLABS_API_KEY nothing is queued and nothing is fetched.
 */
import type { Env } from "../../lib/env";
import { newAudioKey } from "../../records/keys";
import { AudioUpload } from "../../storage/audio-upload";
import { ElevenLabsApi, ElevenLabsApiError } from "../../elevenlabs/api";
import * as audioLinks from "./audio-links";
import { isDuplicate } from "../shared/dedupe";
import * as outbox from "../shared/outbox";

/**
 * Queues (or brings forward) the backfill of a conversation's audio. Idempotent: with audio already
 * linked nothing is queued; with a backfill already queued it is only moved earlier. Returns when
 * the object's alarm must fire (ms), or null when nothing is queued.
 */
export function expectAudio(sql: SqlStorage, input: { conversationId: string; agentId: string | null; dueAtMs: number }, now: number): number | null {
  if (audioLinks.readLink(sql, input.conversationId) !== null || isDuplicate(sql, "post_call_audio", input.conversationId)) return null;
  const item = { kind: "audio_backfill", conversationId: input.conversationId, agentId: input.agentId } as const;
  return outbox.enqueueOrBringForward(sql, item, input.conversationId, now, input.dueAtMs);
}

export type Fetched = { status: "fetched"; key: string; bytes: number; sha256: string } | { status: "unavailable" } | { status: "not_configured" };

/**
 * Streams the conversation's audio from ElevenLabs into a new R2 object (not linked: the caller
 * commits it, audio.ts). Throws ElevenLabsApiError when the API fails or the stream breaks off, with
 * nothing left in R2.
 */
export async function fetchAudio(env: Env, conversationId: string): Promise<Fetched> {
  const api = ElevenLabsApi.of(env);
  if (api === null) return { status: "not_configured" };
  const stream = await api.audio(conversationId);
  if (stream === null) return { status: "unavailable" };
  const upload = new AudioUpload(env.AUDIO, newAudioKey());
  try {
    await pump(stream, upload);
    const stored = await upload.complete();
    return { status: "fetched", key: stored.key, bytes: stored.bytes, sha256: stored.sha256 };
  } catch (err) {
    await upload.abort();
    throw err;
  }
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

