/**
 * The D1 reads behind `GET /v1/users/:userId/export` (src/api/export.ts): a user's conversations in
 * keyset pages, their transcripts in groups bounded by stored bytes, and the call failures of their
 * phone numbers. Each function reads one bounded page, so the export holds at most one page (and
 * one group of stored transcripts, one of them decoded) at a time, whatever the number of calls.
 * The conversations are in the user's shard (`storedTranscriptsOf` takes it: src/storage/shards.ts).
 */
import { decodeTranscript, type StoredTurn, type StoredValue } from "./transcript-codec";
import { audioRowsElsewhere, type CallFailureRow, type ConversationRow } from "./conversation-reads";
import { mergePages, onEveryShard, userPage, userShards, type ShardEnv } from "./shards";

/** A conversation's row (without its transcript), the size of its stored transcript, and its audio row. */
export interface ExportConversationRow extends ConversationRow {
  transcript_bytes: number;
  audio_r2_key: string | null;
  audio_bytes: number | null;
  audio_sha256: string | null;
  audio_stored_at: number | null;
}

const ROW_COLUMNS = `c.conversation_id, c.user_id, c.user_id_source, c.agent_id, c.agent_name, c.status, c.started_at,
  c.duration_secs, c.title, c.summary, c.call_successful, c.termination_reason, c.main_language, c.phone_number,
  c.phone_direction, c.phone_provider, c.turn_count, c.analysis, c.event_timestamp, c.received_at,
  coalesce(length(c.transcript), 0) AS transcript_bytes,
  a.r2_key AS audio_r2_key, a.bytes AS audio_bytes, a.sha256 AS audio_sha256, a.stored_at AS audio_stored_at`;

/**
 * Up to `limit` of the user's conversations, oldest first (index conversations_by_user read
 * backwards), strictly after the keyset position `after`. Oldest first so an export reads like the
 * user's history and a conversation stored while the export runs lands at the end, not in a page
 * already read.
 */
export async function conversationPageForExport(
  env: ShardEnv,
  userId: string,
  page: { limit: number; after: { startedAt: number; conversationId: string } | null },
): Promise<ExportConversationRow[]> {
  return userPage(env, userId, "asc", page.limit, (db) => exportPageOf(env, db, userId, page));
}

async function exportPageOf(
  env: ShardEnv,
  db: D1Database,
  userId: string,
  page: { limit: number; after: { startedAt: number; conversationId: string } | null },
): Promise<ExportConversationRow[]> {
  const { limit, after } = page;
  const from = `FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id WHERE c.user_id = ?`;
  const order = "ORDER BY c.started_at ASC, c.conversation_id ASC LIMIT ?";
  const stmt =
    after === null
      ? db.prepare(`SELECT ${ROW_COLUMNS} ${from} ${order}`).bind(userId, limit)
      : db
          .prepare(`SELECT ${ROW_COLUMNS} ${from} AND (c.started_at > ? OR (c.started_at = ? AND c.conversation_id > ?)) ${order}`)
          .bind(userId, after.startedAt, after.startedAt, after.conversationId, limit);
  const { results } = await stmt.all<ExportConversationRow>();
  // The join found the audio rows homed in the user's shard; the others are in their own homes.
  type Audio = { r2_key: string; bytes: number; sha256: string; stored_at: number };
  const elsewhere = await audioRowsElsewhere<Audio>(env, db, results.filter((r) => r.audio_r2_key === null).map((r) => r.conversation_id), "r2_key, bytes, sha256, stored_at");
  return results.map((r) => {
    const a = elsewhere.get(r.conversation_id);
    return a ? { ...r, audio_r2_key: a.r2_key, audio_bytes: a.bytes, audio_sha256: a.sha256, audio_stored_at: a.stored_at } : r;
  });
}

/**
 * The stored transcripts of these conversations (still encoded), read in one D1 batch. The caller
 * groups ids so a group's stored bytes stay within a budget (`transcriptGroups`) and decodes one at a
 * time (`decodeStoredTranscript`), so at most one decoded transcript is held. A conversation erased
 * meanwhile is simply missing from the map.
 */
export async function storedTranscriptsOf(env: ShardEnv, userId: string, conversationIds: string[]): Promise<Map<string, StoredValue | null>> {
  const out = new Map<string, StoredValue | null>();
  if (conversationIds.length === 0) return out;
  // Every shard that may hold the user's rows (usually one); a row is in one of them.
  const answers = await Promise.all(
    (await userShards(env, userId)).map((db) =>
      db.batch<{ transcript: StoredValue | null }>(conversationIds.map((id) => db.prepare("SELECT transcript FROM conversations WHERE conversation_id = ?").bind(id))),
    ),
  );
  for (const results of answers) {
    for (const [i, id] of conversationIds.entries()) {
      const row = results[i]?.results[0];
      if (row) out.set(id, row.transcript);
    }
  }
  return out;
}

/** Throws TranscriptDecodeError for a value it cannot read: never a silently empty transcript. */
export const decodeStoredTranscript = (value: StoredValue | null): Promise<StoredTurn[]> => decodeTranscript(value);

/**
 * Splits rows into consecutive groups of at most `maxRows` whose stored transcripts add up to at most
 * `budget` bytes (a larger one goes alone).
 */
export function transcriptGroups<T extends { transcript_bytes: number }>(rows: T[], budget: number, maxRows: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const r of rows) {
    if (current.length > 0 && (bytes + r.transcript_bytes > budget || current.length >= maxRows)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += r.transcript_bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

export type { CallFailureRow };

/**
 * Up to `limit` call failures from or to any of these numbers (the ones erasure removes with the
 * user: src/storage/erase.ts), by conversation id after `after`.
 */
export async function callFailurePageForExport(
  env: ShardEnv,
  numbers: string[],
  page: { limit: number; after: string | null },
): Promise<CallFailureRow[]> {
  if (numbers.length === 0) return [];
  // Each failure is in its conversation's home shard: every shard's page, merged by the same key.
  const pages = await onEveryShard(env, (db) => callFailurePageOf(db, numbers, page));
  return mergePages(pages, (a, b) => a.conversation_id < b.conversation_id, page.limit);
}

async function callFailurePageOf(db: D1Database, numbers: string[], page: { limit: number; after: string | null }): Promise<CallFailureRow[]> {
  const list = numbers.map(() => "?").join(", ");
  const { results } = await db
    .prepare(
      `SELECT conversation_id, agent_id, failure_reason, provider, from_number, to_number, sip_status_code, call_sid,
         metadata, event_timestamp, received_at
       FROM call_failures WHERE (from_number IN (${list}) OR to_number IN (${list})) AND conversation_id > ?
       ORDER BY conversation_id LIMIT ?`,
    )
    .bind(...numbers, ...numbers, page.after ?? "", page.limit)
    .all<CallFailureRow>();
  return results;
}
