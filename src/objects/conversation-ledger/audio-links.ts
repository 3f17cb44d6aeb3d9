/**
 * In a `conversation:<id>` object: the durable link from the conversation to its audio object in R2
 * (`audio` table), written before the audio webhook's 200, and read until (and after) D1 has it.
 */
import { linkOf, type AudioLink, type AudioRow } from "../../storage/audio";

export function insertLink(sql: SqlStorage, link: AudioLink): void {
  sql.exec(
    "INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, received_at) VALUES (?, ?, ?, ?, ?, ?)",
    link.conversationId,
    link.agentId,
    link.key,
    link.bytes,
    link.sha256,
    link.receivedAt,
  );
}

export function readLink(sql: SqlStorage, conversationId: string): AudioLink | null {
  const row = sql
    .exec<AudioRow>("SELECT conversation_id, agent_id, r2_key, bytes, sha256, received_at AS stored_at FROM audio WHERE conversation_id = ?", conversationId)
    .toArray()[0];
  return row ? linkOf(row) : null;
}

/** The R2 keys this object links for the conversation (what forgetting it must delete). */
export function linkedKeys(sql: SqlStorage, conversationId: string): string[] {
  return sql
    .exec<{ r2_key: string }>("SELECT r2_key FROM audio WHERE conversation_id = ?", conversationId)
    .toArray()
    .map((r) => r.r2_key);
}
