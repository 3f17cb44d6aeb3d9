/**
 * R2 copies of the events postcall keeps but does not turn into memory: the OpenTelemetry form of a
 * transcription (`post_call_transcription_otel`) and the unredacted transcript (docs/storage.md).
 * Byte for byte as signed. Nothing serves them: they are for the operator, and are erased with the
 * conversation (its prefix).
 */
import { lonelyOtelKey, otelKey, unredactedTranscriptKey } from "../records/keys";

async function put(bucket: R2Bucket, key: string, raw: Uint8Array, meta: Record<string, string>): Promise<string> {
  await bucket.put(key, raw, { httpMetadata: { contentType: "application/json" }, customMetadata: meta });
  return key;
}

export function putOtel(bucket: R2Bucket, conversationId: string | null, raw: Uint8Array): Promise<string> {
  return conversationId === null
    ? put(bucket, lonelyOtelKey(), raw, {})
    : put(bucket, otelKey(conversationId), raw, { conversation_id: conversationId });
}

export function putUnredactedTranscript(bucket: R2Bucket, conversationId: string, raw: Uint8Array): Promise<string> {
  return put(bucket, unredactedTranscriptKey(conversationId), raw, { conversation_id: conversationId, unredacted: "true" });
}
