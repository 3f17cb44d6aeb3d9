/**
 * R2 `conversations/<id>/transcript.json`: the `post_call_transcription` body, byte for byte as it
 * was signed (docs/storage.md). D1 keeps what queries need; this is the complete record.
 */
import { transcriptKey } from "../records/keys";

/** Stores the raw body; returns its key. Idempotent: a replay writes the same bytes again. */
export async function putTranscript(
  bucket: R2Bucket,
  conversationId: string,
  userId: string | null,
  raw: Uint8Array,
): Promise<string> {
  const key = transcriptKey(conversationId);
  await bucket.put(key, raw, {
    httpMetadata: { contentType: "application/json" },
    customMetadata: { conversation_id: conversationId, ...(userId ? { user_id: userId } : {}) },
  });
  return key;
}
