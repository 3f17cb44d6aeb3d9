/**
 * D1 `audio`: the link between a conversation and its audio object in R2. The audio row is
 * its own table, not a column of `conversations`: audio and transcript arrive in either order, and
 * each writer only ever inserts its own row (queries join them).
 */
import { allShards, type ShardEnv } from "./shards";

export interface AudioLink {
  conversationId: string;
  agentId: string | null;
  /** R2 key of the MP3 (`audio/<uuid>.mp3`). */
  key: string;
  bytes: number;
  /** Hex SHA-256 of the MP3. */
  sha256: string;
  /** Unix seconds. */
  receivedAt: number;
}

/**
 * Writes the audio row in the conversation's home shard (`db`: src/storage/placement.ts `homeWriteShard`;
 * idempotent: the first audio of a conversation is the one kept) and reads, in the same transaction,
 * who D1 says the conversation belongs to (its `conversation_shards` entry, written there by the
 * transcript's delivery): of the audio's and the transcript's deliveries, the later one always sees the
 * earlier one's row. `userId` is null when the transcript is not in D1 yet (its own delivery will see
 * this row) or has no user. Also: the conversation no longer waits for audio, and its agent sends audio
 * (`last_audio_at` moved at most once an hour, then in every shard: an audio event in between writes
 * no row there).
 */
/** How stale `audio_agents.last_audio_at` may be: it only decides a 30-day window. */
const AGENT_REFRESH_SECONDS = 3600;

/** The agent sends audio (at most one row written an hour: the statement changes nothing in between). */
const agentStatement = (db: D1Database, agentId: string, at: number) =>
  db
    .prepare(
      `INSERT INTO audio_agents (agent_id, last_audio_at) VALUES (?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET last_audio_at = excluded.last_audio_at
       WHERE excluded.last_audio_at >= last_audio_at + ${AGENT_REFRESH_SECONDS}`,
    )
    .bind(agentId, at);

export async function storeAudioRow(env: ShardEnv, db: D1Database, link: AudioLink): Promise<{ userId: string | null; agentId: string | null }> {
  const results = await db.batch([
    db
      .prepare(
        `INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (conversation_id) DO NOTHING`,
      )
      .bind(link.conversationId, link.agentId, link.key, link.bytes, link.sha256, link.receivedAt),
    db.prepare("DELETE FROM audio_pending WHERE conversation_id = ?").bind(link.conversationId),
    ...(link.agentId === null ? [] : [agentStatement(db, link.agentId, link.receivedAt)]),
    db.prepare("SELECT user_id, agent_id FROM conversation_shards WHERE conversation_id = ?").bind(link.conversationId),
  ]);
  // The agent's next conversations wait for audio in every shard, not only in this one (each write
  // reads audio_agents in its own home): told when this shard's row moved, so about once an hour.
  if (link.agentId !== null && results[2]!.meta.changes > 0) {
    await Promise.all(allShards(env).filter((other) => other !== db).map((other) => agentStatement(other, link.agentId!, link.receivedAt).run()));
  }
  const row = results.at(-1)?.results[0] as { user_id: string | null; agent_id: string | null } | undefined;
  return { userId: row?.user_id ?? null, agentId: row?.agent_id ?? null };
}

export async function findAudioLink(db: D1Database, conversationId: string): Promise<AudioLink | null> {
  const row = await db
    .prepare("SELECT conversation_id, agent_id, r2_key, bytes, sha256, stored_at FROM audio WHERE conversation_id = ?")
    .bind(conversationId)
    .first<AudioRow>();
  return row ? linkOf(row) : null;
}

export type AudioRow = {
  conversation_id: string;
  agent_id: string | null;
  r2_key: string;
  bytes: number;
  sha256: string;
  stored_at: number;
};

export const linkOf = (r: AudioRow): AudioLink => ({
  conversationId: r.conversation_id,
  agentId: r.agent_id,
  key: r.r2_key,
  bytes: r.bytes,
  sha256: r.sha256,
  receivedAt: r.stored_at,
});

/** The MP3's bytes from R2, whole or the inclusive byte range [start, end]; null when the object is gone. */
export async function readAudioObject(bucket: R2Bucket, key: string, range?: { start: number; end: number }): Promise<R2ObjectBody | null> {
  return bucket.get(key, range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : {});
}

/** Deletes audio objects (a redelivery's extra copy, or a forgotten conversation's). Deleting a missing key is not an error. */
export async function deleteAudioObjects(bucket: R2Bucket, keys: string | string[]): Promise<void> {
  if (Array.isArray(keys) && keys.length === 0) return;
  await bucket.delete(keys);
}
