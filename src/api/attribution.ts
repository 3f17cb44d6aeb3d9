/**
 * Conversations no one owns, for the operator: the list (GET /v1/conversations?unattributed=true)
 * and an explicit attribution (POST /v1/conversations/:conversationId/attribute {"user_id"}).
 *
 * A conversation is unattributed when its event named no one, or named an app user without proof
 * (no valid `postcall_user_token`: docs/guarantees.md "Who can write a user's memory"). Only an
 * operator (API_KEY) can say whose it is. Attribution changes the D1 owner first (only of a row with
 * no owner), then runs the stored raw payload through the one arrival path a webhook takes
 * (src/memory/arrival.ts, origin "attribution": trust `operator`, for that user only); the user's
 * object deduplicates it, so repeating the call remembers it once, and a tombstone drops it.
 */
import type { Env } from "../lib/env";
import { ApiError, badRequest, json, notFound } from "../lib/errors";
import { iso } from "../lib/time";
import { checkUserId } from "../records/identity";
import { parseEnvelope } from "../records/payload";
import { transcriptionArrived } from "../memory/arrival";
import { attributeConversation as attributeRow, listUnattributed } from "../storage/conversations";
import { readTranscript } from "../storage/transcripts";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

export async function listConversationsOwnedByNoOne(env: Env, url: URL): Promise<Response> {
  if (url.searchParams.get("unattributed") !== "true") {
    throw badRequest("invalid_query", "List conversations with ?unattributed=true (a user's conversations are at /v1/users/:userId/conversations).");
  }
  const limit = pageSize(url.searchParams.get("limit"));
  const raw = url.searchParams.get("cursor");
  const after = raw === null ? null : decodeKeyset(raw);
  const results = await listUnattributed(env, { limit: limit + 1, after: after && { receivedAt: after[0], conversationId: after[1] } });
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  return json({
    conversations: page.map((r) => ({
      conversation_id: r.conversation_id,
      agent_id: r.agent_id,
      started_at: iso(r.started_at),
      received_at: iso(r.received_at),
      title: r.title,
      summary: r.summary,
      claimed_user_id: r.claimed_user_id,
      unverified_reason: r.unverified_reason,
      turn_count: r.turn_count,
      has_audio: r.has_audio === 1,
    })),
    next_cursor: results.length > limit && last ? encodeKeyset(last.received_at, last.conversation_id) : null,
  });
}

async function userIdOfBody(request: Request): Promise<string> {
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch {
    throw badRequest("invalid_json", 'The body must be JSON: {"user_id": "..."}.');
  }
  const id = typeof body === "object" && body !== null ? (body as Record<string, unknown>)["user_id"] : undefined;
  if (typeof id !== "string" || id === "." || id === "..") throw badRequest("invalid_user_id", "`user_id` must be a user id (1 to 256 characters).");
  return checkUserId(id, "`user_id`");
}

export async function attributeConversation(request: Request, env: Env, conversationId: string): Promise<Response> {
  const userId = await userIdOfBody(request);
  const now = Math.floor(Date.now() / 1000);
  const owner = await attributeRow(env, conversationId, userId, now);
  if (owner === undefined) {
    throw notFound("conversation_not_found", "No conversation with this id in D1 (it may not have been delivered yet, or was erased).");
  }
  if (owner !== userId) {
    throw new ApiError(409, "conversation_attributed", "This conversation already belongs to another user; only a conversation no one owns can be attributed.");
  }
  const raw = await readTranscript(env.AUDIO, conversationId);
  if (raw === null) throw notFound("conversation_not_found", "The conversation's raw payload is not in R2.");
  const stored = await transcriptionArrived(env, parseEnvelope(raw), raw, { origin: "attribution", operatorUserId: userId, receivedAt: now });
  return json({
    conversation_id: conversationId,
    user_id: userId,
    status: stored.dropped ? "dropped" : stored.duplicate ? "already_attributed" : "attributed",
  });
}
