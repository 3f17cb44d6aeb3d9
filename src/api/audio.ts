/**
 * GET /v1/conversations/:conversationId/audio: the call recording, streamed from R2 (never held in
 * memory), with what an `<audio>` element needs to seek: Range (206 / 416), Accept-Ranges,
 * Content-Length, and a strong ETag (the MP3's SHA-256, recorded at ingest) for If-None-Match and
 * If-Range, answered without touching R2.
 */
import { AUDIO_LINK_SECONDS, checkAudioLink, mintAudioLink } from "../lib/audio-link";
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { ApiError, json, notFound, unauthorized } from "../lib/errors";
import { idParam } from "../lib/http/params";
import { iso } from "../lib/time";
import { ledgerObject } from "../memory/objects";
import { AUDIO_CONTENT_TYPE } from "../storage/audio-upload";
import { findAudioLink, readAudioObject, type AudioLink } from "../storage/audio";
import { firstOf, homeShards } from "../storage/shards";
import { noneMatch, parseRange } from "./range";

const noAudio = () => notFound("audio_not_found", "No audio is stored for this conversation.");

/**
 * D1 first (where queries go); the conversation's Durable Object when D1 has no row yet (its outbox
 * writes D1 moments after the webhook was acknowledged) or is failing, so audio can be read as soon
 * as its webhook got a 200.
 */
export async function findAudio(env: Env, conversationId: string): Promise<AudioLink | null> {
  try {
    const link = await firstOf(await homeShards(env, conversationId), (db) => findAudioLink(db, conversationId));
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

/**
 * POST /v1/conversations/:conversationId/audio/link (API_KEY): a signed URL that streams this
 * recording for AUDIO_LINK_SECONDS without a key (src/lib/audio-link.ts), so the console's `<audio>`
 * plays and seeks with Range requests instead of downloading the whole MP3 first. 404 when no audio is
 * stored (never stored, or erased).
 */
export async function createAudioLink(env: Env, conversationId: string): Promise<Response> {
  const link = await findAudio(env, conversationId);
  if (!link) throw noAudio();
  const expires = Math.floor(Date.now() / 1000) + AUDIO_LINK_SECONDS;
  const query = await mintAudioLink(config(env).apiKeys, conversationId, expires);
  const path = `/v1/conversations/${encodeURIComponent(conversationId)}/audio?${query}`;
  // A path, not an absolute URL: the Worker may be behind another host name than the one it sees.
  return json({ conversation_id: conversationId, url: path, expires_at: iso(expires), bytes: link.bytes, sha256: link.sha256 });
}

const SIGNED_AUDIO_PATH = /^\/v1\/conversations\/([^/]+)\/audio$/;

/**
 * The one `/v1` request authorised without an API key: a GET of a conversation's audio carrying a
 * link's `signature` (and `expires`). True when it is one and the link holds; a 401 when it is one
 * and the link is forged, for another conversation, or expired; false when it is not one (the key is
 * then required as everywhere else).
 */
export async function audioLinkAuthorises(request: Request, env: Env): Promise<boolean> {
  const url = new URL(request.url);
  const m = SIGNED_AUDIO_PATH.exec(url.pathname);
  if (request.method !== "GET" || m === null || !url.searchParams.has("signature")) return false;
  const conversationId = idParam(m[1], "conversation_id");
  const check = await checkAudioLink(config(env).apiKeys, conversationId, url.searchParams.get("expires"), url.searchParams.get("signature"), Math.floor(Date.now() / 1000));
  if (check.ok) return true;
  if (check.reason === "expired") throw unauthorized("audio_link_expired", "This audio link has expired: ask for a new one (POST /v1/conversations/:id/audio/link).");
  if (check.reason === "no_key") throw new ApiError(500, "misconfigured", "No API_KEY is configured, so no request can be authorised.");
  throw unauthorized("audio_link_invalid", "This audio link is not valid for this conversation.");
}
