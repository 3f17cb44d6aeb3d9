/**
 * Event kinds postcall keeps without turning them into memory (docs/elevenlabs.md):
 *
 *  - `post_call_transcription_otel`: sent instead of the transcription when the workspace's transcript
 *    format is OpenTelemetry. `data` carries `agent_id`, `conversation_id` and `otlp_traces` (OTLP JSON:
 *    resourceSpans, SDK type OTelTracePayload). The raw body goes to R2 under its conversation when
 *    `data.conversation_id` is usable, else under `otel/`. Always a 200 once verified: a 4xx would count
 *    towards disabling the webhook, and nothing in it is needed to keep it.
 *  - the unredacted events (subscription names `unredacted_transcript` and `unredacted_audio` in the
 *    SDK's WebhookEventType; the SDKs do not spell the envelope's `type`, so any type containing
 *    "unredacted" is taken as one). An unredacted transcript is kept raw, apart from the redacted one,
 *    under `conversations/<id>/unredacted/`: no endpoint serves it, and erasing the conversation (or
 *    its user) erases it. Unredacted audio is acknowledged and not kept (README: what is not stored).
 */
import { json } from "../lib/errors";
import type { Env } from "../lib/env";
import { conversationIdOf, type Envelope } from "../records/payload";
import { putOtel, putUnredactedTranscript } from "../storage/raw-events";

function usableConversationId(envelope: Envelope): string | null {
  try {
    return conversationIdOf(envelope.data);
  } catch {
    return null;
  }
}

export async function storeOtherEvent(env: Env, envelope: Envelope, raw: Uint8Array): Promise<Response> {
  if (envelope.type === "post_call_transcription_otel") {
    const conversationId = usableConversationId(envelope);
    await putOtel(env.AUDIO, conversationId, raw);
    return json({ status: "stored", type: envelope.type, conversation_id: conversationId });
  }
  if (/audio/.test(envelope.type)) {
    return json({ status: "ignored", type: envelope.type, reason: "unredacted audio is not kept" });
  }
  const conversationId = conversationIdOf(envelope.data); // a 400 without one: it could never be erased
  await putUnredactedTranscript(env.AUDIO, conversationId, raw);
  return json({ status: "stored", type: envelope.type, conversation_id: conversationId });
}
