/**
 * The recall backfill: an object that already held memory before the recall index existed
 * (upgraded to schema version 3, src/objects/user-memory/schema.ts) has its stored conversations indexed from D1,
 * in bounded batches by its alarm, never on a webhook's path. The `recall_backfill` row is the
 * cursor (the last conversation indexed, in (started_at, conversation_id) order); it is deleted when
 * the backfill is done. A conversation a webhook indexed meanwhile is not indexed twice
 * (recall_conversations), one past retention is skipped, and nothing is done during an erasure.
 * Between runs, and while a batch is read from D1, the object serves webhooks and reads as usual.
 */
import { config } from "../../lib/config";
import type { Env } from "../../lib/env";
import { conversationsToIndex } from "../../storage/backfill";
import { profileUser } from "./profile";
import { indexConversation } from "./recall-index";
import { LIMITS } from "../shared/limits";
import { erasingSince } from "../shared/tables";

type Cursor = { after_started_at: number | null; after_conversation_id: string | null; indexed: number };

/**
 * Objects (by their SqlStorage) known to have no backfill: the row is only ever inserted by a schema
 * upgrade (schema.ts), which runs in an instance before its first read of it (Schema.exists()), and a
 * wiped object is created again at the current version, without one. So once the row is gone it stays
 * gone for the instance, and the alarm and the reads ask no more (a statement less per delivery).
 */
const noBackfill = new WeakSet<SqlStorage>();

export function backfillPending(sql: SqlStorage): boolean {
  if (noBackfill.has(sql)) return false;
  const pending = sql.exec("SELECT 1 FROM recall_backfill WHERE id = 1").toArray().length > 0;
  if (!pending) noBackfill.add(sql);
  return pending;
}

/** Conversations indexed so far by the backfill, or null when none is pending. */
export function backfillProgress(sql: SqlStorage): number | null {
  return sql.exec<{ n: number }>("SELECT indexed AS n FROM recall_backfill WHERE id = 1").toArray()[0]?.n ?? null;
}

/** One run: at most LIMITS.backfillBatchesPerRun batches. Returns whether more remains (re-arm the alarm). */
export async function backfillRun(env: Env, storage: DurableObjectStorage, nowMs: number): Promise<boolean> {
  const sql = storage.sql;
  const userId = profileUser(sql);
  if (userId === null) {
    storage.transactionSync(() => sql.exec("DELETE FROM recall_backfill WHERE id = 1"));
    return false;
  }
  const days = config(env).retentionDays;
  const cutoff = days === null ? null : Math.floor(nowMs / 1000) - days * 86_400;
  for (let batch = 0; batch < LIMITS.backfillBatchesPerRun; batch++) {
    if (erasingSince(sql) !== null) return false;
    const cursor = sql.exec<Cursor>("SELECT after_started_at, after_conversation_id, indexed FROM recall_backfill WHERE id = 1").toArray()[0];
    if (cursor === undefined) return false;
    const after =
      cursor.after_started_at === null || cursor.after_conversation_id === null
        ? null
        : { startedAt: cursor.after_started_at, conversationId: cursor.after_conversation_id };
    const rows = await conversationsToIndex(env, userId, after, LIMITS.backfillBatch);
    // The read awaited D1: an erasure may have begun meanwhile (it froze the object before we resumed).
    if (erasingSince(sql) !== null) return false;
    const done = rows.length < LIMITS.backfillBatch;
    storage.transactionSync(() => {
      let indexed = 0;
      for (const c of rows) {
        if (cutoff !== null && c.started_at < cutoff) continue;
        indexConversation(sql, { conversationId: c.conversation_id, startedAt: c.started_at, title: c.title, summary: c.summary, turns: c.turns });
        indexed++;
      }
      const last = rows[rows.length - 1];
      if (done) sql.exec("DELETE FROM recall_backfill WHERE id = 1");
      else {
        sql.exec(
          "UPDATE recall_backfill SET after_started_at = ?, after_conversation_id = ?, indexed = indexed + ? WHERE id = 1",
          last!.started_at,
          last!.conversation_id,
          indexed,
        );
      }
    });
    if (done) return false;
  }
  return true;
}
