/**
 * Reading conversations back from D1: a user's list (newest first, keyset pages) and one conversation
 * with its transcript, analysis and audio. D1 is filled by the owner's outbox a moment after the
 * webhook is acknowledged, so a conversation appears here shortly after it appears in the memory.
 */
import type { Env } from "../env";
import { json, notFound } from "../errors";
import { decodeCursor, encodeCursor, pageSize } from "./cursor";
import type { AudioRow as StoredAudioRow } from "../storage/audio";

/** Unix seconds as ISO-8601, the format of every time this API returns. */
export const iso = (seconds: number | null | undefined): string | null =>
  seconds === null || seconds === undefined ? null : new Date(seconds * 1000).toISOString();

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A row of the list: the conversation's summary columns and whether it has audio. */
type ListRow = Pick<
  ConversationRow,
  | "conversation_id"
  | "agent_id"
  | "agent_name"
  | "status"
  | "started_at"
  | "duration_secs"
  | "title"
  | "summary"
  | "call_successful"
  | "user_id_source"
  | "phone_number"
  | "phone_direction"
  | "turn_count"
> & { has_audio: number };

const LIST_COLUMNS = `c.conversation_id, c.agent_id, c.agent_name, c.status, c.started_at, c.duration_secs, c.title, c.summary,
  c.call_successful, c.user_id_source, c.phone_number, c.phone_direction, c.turn_count,
  (a.conversation_id IS NOT NULL) AS has_audio`;

/**
 * GET /v1/users/:userId/conversations. A user with no conversations gets an empty list, not a 404:
 * user ids are opaque and postcall keeps no registry of them, so "none yet" is the honest answer.
 */
export async function listConversations(env: Env, userId: string, url: URL): Promise<Response> {
  const limit = pageSize(url.searchParams.get("limit"));
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeCursor(rawCursor);
  // One row more than the page tells whether another page exists without a count query.
  const stmt =
    after === null
      ? env.DB.prepare(
          `SELECT ${LIST_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, limit + 1)
      : env.DB.prepare(
          `SELECT ${LIST_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? AND (c.started_at < ? OR (c.started_at = ? AND c.conversation_id < ?))
           ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, after.startedAt, after.startedAt, after.conversationId, limit + 1);
  const { results } = await stmt.all<ListRow>();
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

interface ConversationRow {
  conversation_id: string;
  user_id: string | null;
  user_id_source: string | null;
  agent_id: string;
  agent_name: string | null;
  status: string | null;
  started_at: number;
  duration_secs: number;
  title: string | null;
  summary: string | null;
  call_successful: string | null;
  termination_reason: string | null;
  main_language: string | null;
  phone_number: string | null;
  phone_direction: string | null;
  phone_provider: string | null;
  turn_count: number;
  analysis: string | null;
  event_timestamp: number | null;
  received_at: number;
}

interface TurnRow {
  turn_index: number;
  role: string;
  message: string | null;
  time_in_call_secs: number;
  tools: string | null;
  feedback: string | null;
}

type AudioRow = Pick<StoredAudioRow, "bytes" | "sha256" | "stored_at">;

/** GET /v1/conversations/:conversationId: the conversation, its transcript, analysis and audio. */
export async function getConversation(env: Env, conversationId: string): Promise<Response> {
  const [conv, turns, audio] = await env.DB.batch<ConversationRow | TurnRow | AudioRow>([
    env.DB.prepare(
      `SELECT conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at, duration_secs, title,
         summary, call_successful, termination_reason, main_language, phone_number, phone_direction, phone_provider,
         turn_count, analysis, event_timestamp, received_at
       FROM conversations WHERE conversation_id = ?`,
    ).bind(conversationId),
    env.DB.prepare(
      "SELECT turn_index, role, message, time_in_call_secs, tools, feedback FROM turns WHERE conversation_id = ? ORDER BY turn_index",
    ).bind(conversationId),
    env.DB.prepare("SELECT bytes, sha256, stored_at FROM audio WHERE conversation_id = ?").bind(conversationId),
  ]);
  const row = conv!.results[0] as ConversationRow | undefined;
  if (!row) throw notFound("conversation_not_found", "No conversation with this id (it may not have been delivered yet, or was erased).");
  const a = audio!.results[0] as AudioRow | undefined;
  return json({
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
    transcript: (turns!.results as TurnRow[]).map((t) => ({
      index: t.turn_index,
      role: t.role,
      message: t.message,
      time_in_call_secs: t.time_in_call_secs,
      tools: parseJson(t.tools),
      feedback: t.feedback,
    })),
    has_audio: a !== undefined,
    audio: a === undefined ? null : { bytes: a.bytes, sha256: a.sha256, stored_at: iso(a.stored_at) },
  });
}
