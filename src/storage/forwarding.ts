/**
 * D1 for forwarding (docs/forwarding.md): the reads the Queue consumer builds event bodies from, and
 * `forward_failures`, the dead letters (migrations/0008_forwarding.sql). A dead letter keeps the queued
 * message (a reference, never the event's content), its last status and error.
 */
import type { DeadLetter, ForwardMessage } from "../records/forward-events";
import { clip } from "../records/limits";
import type { CallFailureRow } from "./conversations";

export type { CallFailureRow };

/** `db`: the conversation's home shard. */
export async function readCallFailure(db: D1Database, conversationId: string): Promise<CallFailureRow | null> {
  return db
    .prepare(
      `SELECT conversation_id, agent_id, failure_reason, provider, from_number, to_number, sip_status_code, call_sid,
         metadata, event_timestamp, received_at FROM call_failures WHERE conversation_id = ?`,
    )
    .bind(conversationId)
    .first<CallFailureRow>();
}

export interface AudioEventRow {
  conversation_id: string;
  agent_id: string | null;
  bytes: number;
  sha256: string;
  stored_at: number;
  /** Who D1 says the conversation belongs to (null: its transcript is not stored yet, or has no user). */
  user_id: string | null;
  user_id_source: string | null;
}

/** `db`: the conversation's home shard, where its audio row and its owner's entry are. */
export async function readAudioEvent(db: D1Database, conversationId: string): Promise<AudioEventRow | null> {
  return db
    .prepare(
      `SELECT a.conversation_id, a.agent_id, a.bytes, a.sha256, a.stored_at, c.user_id, c.user_id_source
       FROM audio a LEFT JOIN conversation_shards c ON c.conversation_id = a.conversation_id WHERE a.conversation_id = ?`,
    )
    .bind(conversationId)
    .first<AudioEventRow>();
}

export interface FailureRow {
  failure_id: string;
  event_id: string;
  event_type: string;
  destination: string;
  conversation_id: string | null;
  user_id: string | null;
  message: string;
  last_status: number | null;
  last_error: string;
  attempts: number;
  first_failed_at: number;
  last_failed_at: number;
  retried_at: number | null;
}

/** Records a dead letter; the same (event, destination) failing again updates its row (attempts add up). */
export async function storeFailure(db: D1Database, failureId: string, d: DeadLetter): Promise<void> {
  const m: ForwardMessage = { v: 1, id: d.message.id, event: d.message.event, destination: d.message.destination };
  await db
    .prepare(
      `INSERT INTO forward_failures (failure_id, event_id, event_type, destination, conversation_id, user_id, message,
         last_status, last_error, attempts, first_failed_at, last_failed_at, retried_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
       ON CONFLICT (failure_id) DO UPDATE SET last_status = excluded.last_status, last_error = excluded.last_error,
         attempts = forward_failures.attempts + excluded.attempts, last_failed_at = excluded.last_failed_at,
         user_id = coalesce(excluded.user_id, forward_failures.user_id), retried_at = NULL`,
    )
    .bind(
      failureId,
      m.id,
      m.event.type,
      m.destination,
      m.event.conversationId,
      d.userId,
      JSON.stringify(m),
      d.status,
      clip(d.error, 1000) ?? "",
      d.attempts,
      d.failedAt,
      d.failedAt,
    )
    .run();
}

/** A page of dead letters, newest failure first, strictly after the keyset position `after`. */
export async function listFailures(db: D1Database, limit: number, after: [number, string] | null): Promise<FailureRow[]> {
  const where = after === null ? "" : "WHERE (last_failed_at, failure_id) < (?, ?)";
  const stmt = db.prepare(`SELECT * FROM forward_failures ${where} ORDER BY last_failed_at DESC, failure_id DESC LIMIT ?`);
  const { results } = await (after === null ? stmt.bind(limit) : stmt.bind(after[0], after[1], limit)).all<FailureRow>();
  return results;
}

export async function readFailure(db: D1Database, failureId: string): Promise<FailureRow | null> {
  return db.prepare("SELECT * FROM forward_failures WHERE failure_id = ?").bind(failureId).first<FailureRow>();
}

export async function markRetried(db: D1Database, failureId: string, at: number): Promise<void> {
  await db.prepare("UPDATE forward_failures SET retried_at = ? WHERE failure_id = ?").bind(at, failureId).run();
}

/** A retried dead letter was delivered: it is no longer a failure. */
export async function removeFailure(db: D1Database, failureId: string): Promise<void> {
  await db.prepare("DELETE FROM forward_failures WHERE failure_id = ?").bind(failureId).run();
}

/**
 * Erasure: the user's dead letters go with them. Their user.erased notices stay until delivered (the
 * only trace kept: a destination that never heard of the erasure still has to be told).
 */
export async function eraseFailuresOfUser(db: D1Database, userId: string): Promise<number> {
  const res = await db.prepare("DELETE FROM forward_failures WHERE user_id = ? AND event_type != 'user.erased'").bind(userId).run();
  return res.meta.changes ?? 0;
}

export interface FailureSummary {
  /** Dead letters waiting, in all. */
  total: number;
  byDestination: { destination: string; n: number; last_failed_at: number }[];
  oldestFailedAt: number | null;
}

/** The dead letters at a glance, for the health page: one grouped read of the small failures table. */
export async function failureSummary(db: D1Database): Promise<FailureSummary> {
  const { results } = await db
    .prepare(
      `SELECT destination, count(*) AS n, max(last_failed_at) AS last_failed_at, min(first_failed_at) AS oldest
       FROM forward_failures GROUP BY destination ORDER BY n DESC LIMIT 50`,
    )
    .all<{ destination: string; n: number; last_failed_at: number; oldest: number }>();
  let total = 0;
  let oldest: number | null = null;
  for (const r of results) {
    total += r.n;
    oldest = oldest === null ? r.oldest : Math.min(oldest, r.oldest);
  }
  return { total, byDestination: results.map(({ destination, n, last_failed_at }) => ({ destination, n, last_failed_at })), oldestFailedAt: oldest };
}
