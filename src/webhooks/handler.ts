/**
 * POST /webhooks/elevenlabs: every post-call event. The order is the contract:
 * verify (header first, then the raw bytes) -> parse -> route -> store -> answer.
 * Nothing is parsed, routed or stored before the signature has been checked against the exact bytes.
 */
import { ApiError, json } from "../errors";
import { config, type Config } from "../config";
import type { Env } from "../env";
import { ownerOf } from "../memory/route";
import { readBody } from "./body";
import { normaliseCallFailure, normaliseTranscription, parseEnvelope, type Envelope } from "./payload";
import { checkHeader, verifyParsed, type VerifyOptions } from "./signature";
import { storeAudio } from "./audio";
import { contextCache } from "../api/context-cache";

export const SIGNATURE_HEADER = "ElevenLabs-Signature";

export function verifyOptions(cfg: Config, nowMs: number): VerifyOptions {
  if (cfg.webhookSecrets.length === 0) {
    // Fail closed, with a 5xx so that ElevenLabs retries once the secret is in place.
    throw new ApiError(500, "misconfigured", "No ELEVENLABS_WEBHOOK_SECRET is configured; webhooks cannot be verified.");
  }
  return {
    secrets: cfg.webhookSecrets,
    nowSeconds: Math.floor(nowMs / 1000),
    maxAgeSeconds: cfg.signatureMaxAgeSeconds,
    maxFutureSeconds: cfg.signatureMaxFutureSeconds,
  };
}

export async function handlePostCall(request: Request, env: Env): Promise<Response> {
  const cfg = config(env);
  const now = Date.now();
  const opts = verifyOptions(cfg, now);
  const header = request.headers.get(SIGNATURE_HEADER);
  // A request without a usable header is refused before its body is read.
  const signature = checkHeader(header, opts);
  const body = await readBody(request, cfg.maxBodyBytes);
  await verifyParsed(signature, body, opts);
  const envelope = parseEnvelope(body);
  return dispatch(env, cfg, envelope, body, now);
}

async function dispatch(env: Env, cfg: Config, envelope: Envelope, raw: Uint8Array, nowMs: number): Promise<Response> {
  const receivedAt = Math.floor(nowMs / 1000);
  switch (envelope.type) {
    case "post_call_transcription": {
      const record = normaliseTranscription(envelope, {
        userIdVariable: cfg.userIdVariable,
        defaultCountryCode: cfg.defaultCountryCode,
        nowSeconds: receivedAt,
      });
      const { duplicate } = await ownerOf(env, record.userId, record.conversationId).recordConversation({ record, raw, receivedAt });
      // This isolate's cached context for the user (CONTEXT_CACHE_SECONDS) is now out of date.
      if (record.userId !== null) contextCache.forget(record.userId);
      return json({
        status: duplicate ? "duplicate" : "stored",
        type: envelope.type,
        conversation_id: record.conversationId,
        user_id: record.userId,
      });
    }
    case "call_initiation_failure": {
      const record = normaliseCallFailure(envelope, cfg.defaultCountryCode);
      const { duplicate } = await ownerOf(env, null, record.conversationId).recordCallFailure({ record, receivedAt });
      return json({ status: duplicate ? "duplicate" : "stored", type: envelope.type, conversation_id: record.conversationId });
    }
    case "post_call_audio":
      return storeAudio(env, envelope, receivedAt);
    default:
      // New event kinds appear over time; a non-200 would count towards auto-disabling the webhook.
      return json({ status: "ignored", type: envelope.type });
  }
}
