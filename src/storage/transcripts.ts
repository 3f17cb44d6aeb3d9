/**
 * R2 `conversations/<id>/transcript.json`: the `post_call_transcription` body, byte for byte as it
 * was signed (docs/storage.md). D1 keeps what queries need; this is the complete record. Its
 * `user_id` metadata names the conversation's owner: the first writer of the key owns it
 * (src/objects/shared/deliveries.ts), so the first write is create-only.
 */
import { transcriptKey } from "../records/keys";

/**
 * Stores the raw body; returns its key, or null when `createOnly` and the object already exists
 * (nothing written). Otherwise idempotent: a replay writes the same bytes again.
 */
export async function putTranscript(
  bucket: R2Bucket,
  conversationId: string,
  userId: string | null,
  raw: Uint8Array,
  opts: { createOnly?: boolean } = {},
): Promise<string | null> {
  const key = transcriptKey(conversationId);
  const written = await bucket.put(key, raw, {
    httpMetadata: { contentType: "application/json" },
    customMetadata: { conversation_id: conversationId, ...(userId ? { user_id: userId } : {}) },
    // R2's conditional put: only when no object has this key yet (If-None-Match: *).
    ...(opts.createOnly ? { onlyIf: new Headers({ "If-None-Match": "*" }) } : {}),
  });
  return written === null ? null : key;
}

/** Who the stored transcript names as its owner (null: no one), or undefined when there is none. */
export async function transcriptOwner(bucket: R2Bucket, conversationId: string): Promise<string | null | undefined> {
  const head = await bucket.head(transcriptKey(conversationId));
  if (head === null) return undefined;
  return head.customMetadata?.["user_id"] ?? null;
}

/** The stored raw body, or null when there is none. */
export async function readTranscript(bucket: R2Bucket, conversationId: string): Promise<Uint8Array | null> {
  const object = await bucket.get(transcriptKey(conversationId));
  return object === null ? null : new Uint8Array(await object.arrayBuffer());
}
