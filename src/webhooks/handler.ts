/**
 * POST /webhooks/elevenlabs: every post-call event. The order is the contract:
 * verify (header first, then the raw bytes) -> parse -> route -> store -> answer.
 * Nothing is parsed into a record, routed or stored before the signature has been checked against
 * the exact bytes. The one exception is forced by size: audio bytes go to an R2 multipart upload as
 * they arrive, and that upload only becomes an object after the signature has verified (it is
 * aborted otherwise, see docs/webhook-path.md).
 */
import { ApiError, badRequest, json } from "../lib/errors";
import { config, type Config } from "../lib/config";
import type { Env } from "../lib/env";
import { ledgerObject } from "../memory/objects";
import { transcriptionArrived } from "../memory/arrival";
import { countAnswer, counted } from "../memory/health-counts";
import { storeOtherEvent } from "./other-events";
import { requireAllowedSource } from "../lib/http/auth";
import { AudioUpload } from "../storage/audio-upload";
import { newAudioKey } from "../records/keys";
import { storeAudio } from "./audio";
import { ingestBody } from "./ingest";
import { parseEnvelope, type Envelope } from "../records/payload";
import { normaliseCallFailure } from "../records/call-failure";
import { checkHeader, signatureMismatch, verifyParsed, type SignatureHeader, type VerifyOptions } from "./signature";
import { readBody } from "./body";
import { SignatureCheck } from "./streaming-hmac";

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

/**
 * Bodies up to this size that declare their length (every transcription and failure event) are read
 * in one native call and parsed once with JSON.parse. Profiling showed the byte-level streaming scan
 * costing several times JSON.parse on a 20 KB transcription, work that only audio needs. Audio from
 * ElevenLabs is chunked (no length) and always streams; a small audio event sent with a length is
 * streamed from memory, so this path never holds more than this many bytes.
 */
export const WHOLE_BODY_BYTES = 1024 * 1024;

/** Every outcome is counted for the health page (src/memory/health-counts.ts: in memory, flushed in the background). */
export function handlePostCall(request: Request, env: Env, ctx?: ExecutionContext): Promise<Response> {
  return counted(env, ctx, "post_call", () => verifyAndStore(request, env, ctx));
}

async function verifyAndStore(request: Request, env: Env, ctx?: ExecutionContext): Promise<Response> {
  requireAllowedSource(request, env);
  const cfg = config(env);
  const now = Date.now();
  const opts = verifyOptions(cfg, now);
  // A request without a usable header is refused before its body is read.
  const header = checkHeader(request.headers.get(SIGNATURE_HEADER), opts);
  const declared = request.headers.get("Content-Length");
  if (declared === null || !/^\d+$/.test(declared) || Number(declared) > Math.min(WHOLE_BODY_BYTES, cfg.maxBodyBytes)) {
    return ingestStream(request.body, env, cfg, header, opts, now, ctx);
  }
  const raw = await readBody(request, cfg.maxBodyBytes);
  await verifyParsed(header, raw, opts);
  const envelope = parseEnvelope(raw);
  if (envelope.type === "post_call_audio") return ingestStream(new Blob([raw]).stream(), env, cfg, header, opts, now, ctx);
  return dispatch(env, cfg, envelope, raw, now);
}

/**
 * The streaming path (src/webhooks/ingest.ts): the MAC, the JSON scan and the audio upload all
 * advance together, so an audio body of any size is never held in memory.
 */
async function ingestStream(
  stream: ReadableStream<Uint8Array> | null,
  env: Env,
  cfg: Config,
  header: SignatureHeader,
  opts: VerifyOptions,
  now: number,
  ctx?: ExecutionContext,
): Promise<Response> {
  const slot: { upload: AudioUpload | null } = { upload: null };
  try {
    const body = await ingestBody(stream, {
      startMac: () => SignatureCheck.start(opts.secrets, header.timestamp),
      maxRestBytes: cfg.maxBodyBytes,
      openAudio: () => (slot.upload = new AudioUpload(env.AUDIO, newAudioKey())),
    });
    // Only now is anything decided from the content: verify, then parse, then route.
    if (body.mac) {
      if (!(await body.mac.matches(header.signatures))) throw signatureMismatch();
    } else {
      // Kept whole (every event but audio): one-shot HMAC over exactly the bytes received.
      await verifyParsed(header, body.rest, opts);
    }
    if (body.jsonError) throw badRequest("invalid_json", `The body is not valid JSON: ${body.jsonError.message}.`);
    const envelope = parseEnvelope(body.rest);
    if (envelope.type === "post_call_audio") {
      return await storeAudio(env, envelope, body, slot.upload, Math.floor(now / 1000));
    }
    return await dispatch(env, cfg, envelope, body.rest, now);
  } finally {
    // Anything not completed by storeAudio (a failure, or a `full_audio` in another event type)
    // is aborted before answering; waitUntil keeps it going if the client has gone away.
    if (slot.upload) {
      const aborted = slot.upload.abort();
      ctx?.waitUntil(aborted);
      await aborted;
    }
  }
}

const OTHER_STORED = /^post_call_transcription_otel$|unredacted/;

/** Every event but audio, from its verified raw bytes (the buffered path's semantics). */
async function dispatch(env: Env, cfg: Config, envelope: Envelope, raw: Uint8Array, nowMs: number): Promise<Response> {
  const receivedAt = Math.floor(nowMs / 1000);
  switch (envelope.type) {
    case "post_call_transcription": {
      const stored = await transcriptionArrived(env, envelope, raw, { origin: "webhook", receivedAt });
      const record = stored.normalised;
      countAnswer(stored.dropped ? "dropped" : stored.duplicate ? "duplicate" : "stored", envelope.type, receivedAt, record.conversationId);
      return json({
        status: stored.dropped ? "dropped" : stored.duplicate ? "duplicate" : "stored",
        type: envelope.type,
        conversation_id: stored.record.conversationId,
        user_id: stored.record.userId,
        ...(record.claimedUserId !== null ? { claimed_user_id: record.claimedUserId, unverified: record.unverified } : {}),
        ...(stored.dropped ? { reason: stored.dropped } : {}),
      });
    }
    case "call_initiation_failure": {
      const record = normaliseCallFailure(envelope, cfg.defaultCountryCode);
      const { duplicate, dropped } = await ledgerObject(env, record.conversationId).recordCallFailure({ record, receivedAt });
      const status = dropped ? "dropped" : duplicate ? "duplicate" : "stored";
      countAnswer(status, envelope.type, receivedAt, record.conversationId);
      return json({ status, type: envelope.type, conversation_id: record.conversationId, ...(dropped ? { reason: dropped } : {}) });
    }
    default:
      // The OpenTelemetry transcript and the unredacted events: kept raw in R2 (src/webhooks/other-events.ts).
      if (OTHER_STORED.test(envelope.type)) return storeOtherEvent(env, envelope, raw);
      // New event kinds appear over time; a non-200 would count towards auto-disabling the webhook.
      countAnswer("ignored", envelope.type, receivedAt);
      return json({ status: "ignored", type: envelope.type });
  }
}
