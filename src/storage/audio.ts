/**
 * The link between a conversation and its audio object, and its D1 statements. The audio row is
 * its own table, not a column of `conversations`: audio and transcript arrive in either order, and
 * each writer only ever inserts its own row (queries join them).
 */
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

/** Idempotent: the first audio of a conversation is the one kept (a replay changes nothing). */
export function audioStatement(db: D1Database, link: AudioLink): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (conversation_id) DO NOTHING`,
    )
    .bind(link.conversationId, link.agentId, link.key, link.bytes, link.sha256, link.receivedAt);
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
