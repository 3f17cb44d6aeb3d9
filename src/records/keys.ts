/**
 * R2 key layout (see docs/storage.md). Conversation ids come from the network, so they are
 * percent-encoded (including "." so that no id is a path-like segment such as ".."): every id maps
 * to exactly one prefix, and no id can name another conversation's objects.
 */
export function conversationPrefix(conversationId: string): string {
  return `conversations/${encodeURIComponent(conversationId).replace(/\./g, "%2E")}/`;
}

/** R2 refuses keys longer than 1,024 bytes; leave room for the longest file name used under a prefix. */
const MAX_KEY_BYTES = 1024;
const LONGEST_FILE_NAME = 64;

/**
 * Whether every key of this conversation fits R2's limit. An id of 256 characters can encode to
 * 2,304 (three bytes of UTF-8, nine characters of percent-encoding each): such an id is refused at
 * the door, since its objects could never be written.
 */
export function fitsStorageKey(conversationId: string): boolean {
  return conversationPrefix(conversationId).length + LONGEST_FILE_NAME <= MAX_KEY_BYTES;
}

/** The raw `post_call_transcription` body, byte for byte as it was signed. */
export const transcriptKey = (conversationId: string) => `${conversationPrefix(conversationId)}transcript.json`;

/**
 * The decoded call audio (MP3) of one post_call_audio event. Not under the conversation's prefix:
 * the audio is streamed to R2 while the body is still arriving, and `conversation_id` may come after
 * `full_audio` in the JSON, so the key cannot depend on it. The link conversation -> key is kept in
 * the conversation's Durable Object and in D1 `audio` (docs/storage.md).
 */
export const newAudioKey = () => `audio/${crypto.randomUUID()}.mp3`;

/** The raw `post_call_transcription_otel` body (OTLP JSON traces), under its conversation when it names one. */
export const otelKey = (conversationId: string) => `${conversationPrefix(conversationId)}otel.json`;

/** An OTLP body that names no usable conversation: kept, under its own id, for the operator. */
export const lonelyOtelKey = () => `otel/${crypto.randomUUID()}.json`;

/**
 * The raw unredacted transcript event, apart from the redacted one (`transcript.json`): never read by
 * any endpoint, and under the conversation's prefix so that erasing the conversation erases it.
 */
export const unredactedTranscriptKey = (conversationId: string) => `${conversationPrefix(conversationId)}unredacted/transcript.json`;
