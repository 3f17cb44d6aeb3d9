/**
 * post_call_audio, after its body has been streamed (src/webhooks/ingest.ts) and its signature
 * verified: the base64 MP3 of `data.full_audio` is already in R2 as an uncompleted upload.
 *
 * Order, so that a 200 is only given for audio that is kept and linked, and anything else leaves
 * nothing behind: check the payload -> complete the upload (the object becomes visible) -> record
 * the link in the conversation's Durable Object (durable when the RPC returns; its outbox then
 * writes D1 `audio`) -> 200. ElevenLabs never retries audio, so a 5xx here loses it: the only
 * answers before the link is durable are failures, and they delete what they completed.
 */
import { badRequest, json } from "../lib/errors";
import type { Env } from "../lib/env";
import { countAnswer } from "../memory/health-counts";
import { ledgerObject } from "../memory/objects";
import { audioWebhookFailed } from "../memory/arrival";
import { isValidId } from "../lib/ids";
import type { AudioUpload } from "../storage/audio-upload";
import type { IngestedBody } from "./ingest";
import { conversationIdOf, type Envelope } from "../records/payload";

export async function storeAudio(
  env: Env,
  envelope: Envelope,
  body: IngestedBody,
  upload: AudioUpload | null,
  receivedAt: number,
): Promise<Response> {
  const conversationId = conversationIdOf(envelope.data);
  const agent = envelope.data["agent_id"];
  const agentId = typeof agent === "string" && isValidId(agent) ? agent : null;
  const placeholder = envelope.data["full_audio"];
  if (body.audioValues === 0 || upload === null || typeof placeholder !== "string") {
    throw badRequest("invalid_payload", "`data.full_audio` must be a base64 string.");
  }
  // The scanner lifted one string; JSON.parse of the rest must agree that it was the one that counts.
  if (body.audioValues > 1 || placeholder !== "") {
    throw badRequest("invalid_payload", "`data.full_audio` appears more than once.");
  }
  if (body.audioError) {
    throw badRequest("invalid_audio", `\`data.full_audio\` is not valid base64: ${body.audioError.message}`);
  }
  let stored;
  try {
    stored = await upload.complete();
  } catch (err) {
    // A 5xx loses this audio (ElevenLabs never retries it): fetch it from the API at once instead.
    await audioWebhookFailed(env, conversationId, agentId);
    throw err;
  }
  let duplicate: boolean;
  let dropped: string | undefined;
  try {
    // An erased conversation's object deletes the bytes itself and answers `dropped` (src/objects/shared/tombstone.ts).
    ({ duplicate, dropped } = await ledgerObject(env, conversationId).recordAudio({
      conversationId,
      agentId,
      key: stored.key,
      bytes: stored.bytes,
      sha256: stored.sha256,
      receivedAt,
    }));
  } catch (err) {
    // Not acknowledged: remove the object rather than leave it unlinked, and fetch it from the API.
    await upload.discard();
    await audioWebhookFailed(env, conversationId, agentId);
    throw err;
  }
  countAnswer(dropped ? "dropped" : duplicate ? "duplicate" : "stored", envelope.type, receivedAt, conversationId);
  return json({
    status: dropped ? "dropped" : duplicate ? "duplicate" : "stored",
    type: envelope.type,
    conversation_id: conversationId,
    bytes: stored.bytes,
    ...(dropped ? { reason: dropped } : {}),
  });
}
