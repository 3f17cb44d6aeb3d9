/**
 * The D1 read behind the recall backfill (src/objects/user-memory/recall-backfill.ts): a user's stored
 * conversations in a stable order (started_at, conversation_id), strictly after a keyset cursor,
 * with their transcripts decoded, merged over every shard that may hold them. Bounded by `limit`.
 */
import { userPage, type ShardEnv } from "./shards";
import { decodeTranscript, type StoredTurn, type StoredValue } from "./transcript-codec";

export interface ConversationToIndex {
  conversation_id: string;
  started_at: number;
  title: string | null;
  summary: string | null;
  turns: StoredTurn[];
}

export async function conversationsToIndex(
  env: ShardEnv,
  userId: string,
  after: { startedAt: number; conversationId: string } | null,
  limit: number,
): Promise<ConversationToIndex[]> {
  const out: ConversationToIndex[] = [];
  for (const { transcript, ...row } of await userPage(env, userId, "asc", limit, (db) => pageOf(db, userId, after, limit))) {
    out.push({ ...row, turns: await decodeTranscript(transcript) });
  }
  return out;
}

async function pageOf(
  db: D1Database,
  userId: string,
  after: { startedAt: number; conversationId: string } | null,
  limit: number,
): Promise<(Omit<ConversationToIndex, "turns"> & { transcript: StoredValue | null })[]> {
  const columns = "conversation_id, started_at, title, summary, transcript";
  const stmt =
    after === null
      ? db.prepare(`SELECT ${columns} FROM conversations WHERE user_id = ? ORDER BY started_at, conversation_id LIMIT ?`).bind(userId, limit)
      : db
          .prepare(
            `SELECT ${columns} FROM conversations WHERE user_id = ? AND (started_at > ? OR (started_at = ? AND conversation_id > ?))
             ORDER BY started_at, conversation_id LIMIT ?`,
          )
          .bind(userId, after.startedAt, after.startedAt, after.conversationId, limit);
  return (await stmt.all<Omit<ConversationToIndex, "turns"> & { transcript: StoredValue | null }>()).results;
}
