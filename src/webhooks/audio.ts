/**
 * post_call_audio: the call recording, base64 MP3 in `data.full_audio`, stored in R2 under the
 * conversation's prefix and recorded in D1's `audio` table (audio and transcript arrive in either
 * order; each writes only its own row, and queries join them).
 */
import { badRequest, json } from "../errors";
import type { Env } from "../env";
import { audioKey } from "../storage/keys";
import { conversationIdOf, type Envelope } from "./payload";
import { bytesToHex } from "./signature";

export async function storeAudio(env: Env, envelope: Envelope, receivedAt: number): Promise<Response> {
  const conversationId = conversationIdOf(envelope.data);
  const agentId = typeof envelope.data["agent_id"] === "string" ? (envelope.data["agent_id"] as string) : null;
  const b64 = envelope.data["full_audio"];
  if (typeof b64 !== "string" || b64 === "") throw badRequest("invalid_payload", "`data.full_audio` must be a base64 string.");
  let audio: Uint8Array;
  try {
    audio = (Uint8Array as unknown as { fromBase64(s: string): Uint8Array }).fromBase64(b64);
  } catch {
    throw badRequest("invalid_audio", "`data.full_audio` is not valid base64.");
  }
  const key = audioKey(conversationId);
  const sha256 = bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", audio)));
  await env.AUDIO.put(key, audio, {
    httpMetadata: { contentType: "audio/mpeg" },
    customMetadata: { conversation_id: conversationId, sha256 },
  });
  await env.DB.prepare(
    `INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (conversation_id) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256, stored_at = excluded.stored_at`,
  )
    .bind(conversationId, agentId, key, audio.byteLength, sha256, receivedAt)
    .run();
  return json({ status: "stored", type: envelope.type, conversation_id: conversationId, bytes: audio.byteLength });
}
