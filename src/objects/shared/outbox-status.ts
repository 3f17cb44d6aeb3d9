/** The outbox at a glance, for the health page, operators and tests. Reads only (outbox.ts writes). */
import type { OutboxStatus } from "../../memory/rpc";
import { STUCK_ATTEMPTS } from "../../records/limits";
import { READY } from "./tables";

/** The outbox at a glance, for operators and tests. */
export function outboxStatus(sql: SqlStorage): OutboxStatus {
  const agg = sql
    .exec<{ pending: number; due: number; max_attempts: number | null; oldest: number | null }>(
      `SELECT count(*) AS pending, count(CASE WHEN next_attempt_at <= ? AND ${READY} THEN 1 END) AS due,
         max(attempts) AS max_attempts, min(created_at) AS oldest FROM outbox`,
      Date.now(),
    )
    .one();
  const byKind = Object.fromEntries(
    sql.exec<{ kind: string; n: number }>("SELECT kind, count(*) AS n FROM outbox GROUP BY kind").toArray().map((r) => [r.kind, r.n]),
  );
  return { pending: agg.pending, due: agg.due, maxAttempts: agg.max_attempts ?? 0, oldestCreatedAt: agg.oldest, byKind, stuck: items(sql, STUCK_ATTEMPTS) };
}

export type OutboxItemState = OutboxStatus["stuck"][number];

/**
 * Pending items in order, with their delivery state: those failed at least `minAttempts` times, at
 * most `limit` (outboxStatus lists the stuck ones; tests read every item's attempts and backoff).
 */
export function items(sql: SqlStorage, minAttempts = 0, limit = 100): OutboxItemState[] {
  return sql
    .exec<{ seq: number; kind: string; conversation_id: string; attempts: number; next_attempt_at: number; last_error: string | null }>(
      "SELECT seq, kind, conversation_id, attempts, next_attempt_at, last_error FROM outbox WHERE attempts >= ? ORDER BY seq LIMIT ?",
      minAttempts,
      limit,
    )
    .toArray()
    .map((r) => ({
      seq: r.seq,
      kind: r.kind,
      conversationId: r.conversation_id,
      attempts: r.attempts,
      nextAttemptAt: r.next_attempt_at,
      lastError: r.last_error,
    }));
}

export const EMPTY_OUTBOX: OutboxStatus = { pending: 0, due: 0, maxAttempts: 0, oldestCreatedAt: null, byKind: {}, stuck: [] };
