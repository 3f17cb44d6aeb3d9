/**
 * The delivery record (`seen`): one row per (event type, conversation id) this object committed.
 * ElevenLabs retries a failed delivery with byte-identical bodies, so this pair is the idempotency
 * key. Bounded to the newest LIMITS.seenEvents rows (retries come within about 41 minutes).
 */
import { LIMITS } from "../shared/limits";

export type DeliveryKind = "post_call_transcription" | "call_initiation_failure" | "post_call_audio";

export function isDuplicate(sql: SqlStorage, kind: DeliveryKind, conversationId: string): boolean {
  return sql.exec("SELECT 1 FROM seen WHERE kind = ? AND conversation_id = ?", kind, conversationId).toArray().length > 0;
}

/** Records the delivery; returns its rowid (what trimSeen needs to know). */
export function markSeen(sql: SqlStorage, kind: DeliveryKind, conversationId: string, now: number): number {
  return sql.exec<{ id: number }>("INSERT INTO seen (kind, conversation_id, received_at) VALUES (?, ?, ?) RETURNING rowid AS id", kind, conversationId, now).one().id;
}

/** The transcriptions this object recorded (a `conversation:<id>` object's own conversation). */
export function seenTranscriptions(sql: SqlStorage, limit: number): string[] {
  return sql
    .exec<{ conversation_id: string }>("SELECT conversation_id FROM seen WHERE kind = 'post_call_transcription' LIMIT ?", limit)
    .toArray()
    .map((r) => r.conversation_id);
}

/**
 * Keeps the newest rows by rowid (the table only ever grows at the top), found from max(rowid)
 * instead of by sorting: this runs on every event, and rows read are billed. `newest` is the rowid
 * markSeen returned: while it is within the bound there is nothing to delete, and no statement runs.
 */
export function trimSeen(sql: SqlStorage, newest: number): void {
  if (newest <= LIMITS.seenEvents) return;
  sql.exec("DELETE FROM seen WHERE rowid <= (SELECT max(rowid) FROM seen) - ?", LIMITS.seenEvents);
}
