/**
 * GET /v1/conversations/:conversationId/audio: the call recording, streamed from R2 (never held in
 * memory), with what an `<audio>` element needs to seek: Range (206 / 416), Accept-Ranges,
 * Content-Length, and a strong ETag (the MP3's SHA-256, recorded at ingest) for If-None-Match and
 * If-Range, answered without touching R2.
 */
import type { Env } from "../lib/env";
import { ApiError, notFound } from "../lib/errors";
import { ledgerObject } from "../memory/objects";
import { AUDIO_CONTENT_TYPE } from "../storage/audio-upload";
import { findAudioLink, readAudioObject, type AudioLink } from "../storage/audio";
import { homeShard } from "../storage/shards";
import { noneMatch, parseRange } from "./range";

const noAudio = () => notFound("audio_not_found", "No audio is stored for this conversation.");

/**
 * D1 first (where queries go); the conversation's Durable Object when D1 has no row yet (its outbox
 * writes D1 moments after the webhook was acknowledged) or is failing, so audio can be read as soon
 * as its webhook got a 200.
 */
export async function findAudio(env: Env, conversationId: string): Promise<AudioLink | null> {
  try {
    const link = await findAudioLink(homeShard(env, conversationId), conversationId);
    if (link) return link;
  } catch (err) {
    console.warn(`D1 audio lookup failed, asking the Durable Object: ${err instanceof Error ? err.message : String(err)}`);
  }
  return ledgerObject(env, conversationId).audioLink();
}

export async function getAudio(request: Request, env: Env, conversationId: string): Promise<Response> {
  const link = await findAudio(env, conversationId);
  if (!link) throw noAudio();
  const etag = `"${link.sha256}"`;
  const headers = new Headers({
    ETag: etag,
    "Accept-Ranges": "bytes",
    "Cache-Control": "private",
  });
  if (noneMatch(request.headers.get("If-None-Match"), etag)) return new Response(null, { status: 304, headers });

  const size = link.bytes;
  let range = parseRange(request.headers.get("Range"), size);
  // If-Range: serve the range only if the client's copy is this exact representation.
  const ifRange = request.headers.get("If-Range");
  if (ifRange !== null && ifRange.trim() !== etag) range = { kind: "full" };
  if (range.kind === "unsatisfiable") {
    throw new ApiError(416, "range_not_satisfiable", `The audio is ${size} bytes; the requested range is outside it.`, {
      "Content-Range": `bytes */${size}`,
    });
  }
  const object = await readAudioObject(env.AUDIO, link.key, range.kind === "partial" ? range : undefined);
  if (!object) throw noAudio();
  headers.set("Content-Type", AUDIO_CONTENT_TYPE);
  if (range.kind === "partial") {
    headers.set("Content-Range", `bytes ${range.start}-${range.end}/${size}`);
    headers.set("Content-Length", String(range.end - range.start + 1));
    return new Response(object.body, { status: 206, headers });
  }
  headers.set("Content-Length", String(object.size));
  return new Response(object.body, { status: 200, headers });
}
