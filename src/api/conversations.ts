/**
 * Reading conversations back from D1 (src/storage/conversations.ts): a user's list (newest first,
 * keyset pages) and one conversation with its transcript, analysis and audio. D1 is filled by the
 * owner's outbox a moment after the webhook is acknowledged, so a conversation appears here shortly
 * after it appears in the memory.
 */
import type { Env } from "../lib/env";
import { json, notFound } from "../lib/errors";
import { iso } from "../lib/time";
import { listConversationsOfUser, parseStoredJson, readConversation, turnsView, type StoredConversation } from "../storage/conversations";
import { conflictsOf } from "../storage/quarantine";
import { homeShards } from "../storage/shards";
import { decodeCursor, encodeCursor, pageSize } from "./cursor";

/** JSON text as a value; null for none or for text that is not JSON (src/storage/conversations.ts). */
export const parseJson = parseStoredJson;

/**
 * GET /v1/users/:userId/conversations. A user with no conversations gets an empty list, not a 404:
 * user ids are opaque and postcall keeps no registry of them, so "none yet" is the honest answer.
 */
export async function listConversations(env: Env, userId: string, url: URL): Promise<Response> {
  const limit = pageSize(url.searchParams.get("limit"));
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeCursor(rawCursor);
  // One row more than the page tells whether another page exists without a count query.
  const results = await listConversationsOfUser(env, userId, { limit: limit + 1, after });
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  return json({
    user_id: userId,
    conversations: page.map((r) => ({
      conversation_id: r.conversation_id,
      agent_id: r.agent_id,
      agent_name: r.agent_name,
      status: r.status,
      started_at: iso(r.started_at),
      duration_secs: r.duration_secs,
      title: r.title,
      summary: r.summary,
      call_successful: r.call_successful,
      user_id_source: r.user_id_source,
      phone_number: r.phone_number,
      phone_direction: r.phone_direction,
      turn_count: r.turn_count,
      has_audio: r.has_audio === 1,
    })),
    next_cursor: results.length > limit && last ? encodeCursor({ startedAt: last.started_at, conversationId: last.conversation_id }) : null,
  });
}

/** GET /v1/conversations/:conversationId: the conversation, its transcript, analysis and audio. */
export async function getConversation(env: Env, conversationId: string): Promise<Response> {
  const stored = await readConversation(env, conversationId);
  if (!stored) throw notFound("conversation_not_found", "No conversation with this id (it may not have been delivered yet, or was erased).");
  const conflicts = (await Promise.all((await homeShards(env, conversationId)).map((db) => conflictsOf(db, conversationId)))).flat();
  return json({ ...conversationJson(stored), conflicts: conflictsView(conflicts) });
}

/** Later events for this id under another owner, kept aside raw (src/storage/quarantine.ts). */
function conflictsView(conflicts: Awaited<ReturnType<typeof conflictsOf>>) {
  return { count: conflicts.length, events: conflicts.map((c) => ({ claimed_user_id: c.claimed_user_id, r2_key: c.r2_key, received_at: iso(c.received_at) })) };
}

/** A conversation as the API shows it (also one `conversation` record of a user's export, src/api/export.ts). */
export function conversationJson({ row, transcript, audio: a }: StoredConversation) {
  return {
    conversation_id: row.conversation_id,
    user_id: row.user_id,
    user_id_source: row.user_id_source,
    agent_id: row.agent_id,
    agent_name: row.agent_name,
    status: row.status,
    started_at: iso(row.started_at),
    duration_secs: row.duration_secs,
    title: row.title,
    summary: row.summary,
    call_successful: row.call_successful,
    termination_reason: row.termination_reason,
    main_language: row.main_language,
    phone: row.phone_number === null ? null : { number: row.phone_number, direction: row.phone_direction, provider: row.phone_provider },
    turn_count: row.turn_count,
    event_timestamp: iso(row.event_timestamp),
    received_at: iso(row.received_at),
    analysis: parseJson(row.analysis),
    transcript: turnsView(transcript),
    has_audio: a !== null,
    audio: a === null ? null : { bytes: a.bytes, sha256: a.sha256, stored_at: iso(a.stored_at) },
    // Who vouched for the owner, and a claim that was not believed (docs/guarantees.md).
    vouched_by: row.vouched_by,
    claimed_user_id: row.claimed_user_id,
    unverified_reason: row.unverified_reason,
  };
}
