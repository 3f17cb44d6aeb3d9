/**
 * D1 writes for conversations, turns and call failures. Every statement is idempotent (INSERT OR
 * IGNORE on natural keys), so the outbox can replay a write after a partial failure without
 * doubling anything. D1 holds what queries need; the raw payload lives in R2 (D1 stops at 10 GB).
 */
import type { CallFailureRecord, ConversationRecord, Turn } from "../webhooks/payload";

// D1 refuses rows over 2 MB and statements with more than 100 bound parameters. Long texts are
// clipped here (the whole payload is in R2), so that a write can never fail for its size and stall
// the outbox forever.
export const MAX_TEXT_CHARS = 32_768;
const TURN_COLUMNS = 7;
const TURNS_PER_STATEMENT = Math.floor(100 / TURN_COLUMNS);

export function clip(text: string | null, max = MAX_TEXT_CHARS): string | null {
  if (text === null) return null;
  return text.length <= max ? text : text.slice(0, max - 1) + "…";
}

/** JSON text, or null when it is larger than `max` (the complete value stays in the R2 payload). */
export function jsonOrNull(value: unknown, max = MAX_TEXT_CHARS): string | null {
  if (value === null || value === undefined) return null;
  const s = JSON.stringify(value);
  return s.length <= max ? s : null;
}

function turnStatements(db: D1Database, conversationId: string, turns: Turn[]): D1PreparedStatement[] {
  const out: D1PreparedStatement[] = [];
  for (let i = 0; i < turns.length; i += TURNS_PER_STATEMENT) {
    const slice = turns.slice(i, i + TURNS_PER_STATEMENT);
    const values = slice.map(() => "(?, ?, ?, ?, ?, ?, ?)").join(", ");
    const params: unknown[] = [];
    for (const t of slice) {
      params.push(
        conversationId,
        t.index,
        t.role,
        clip(t.message),
        t.timeInCallSecs,
        t.tools ? (jsonOrNull(t.tools) ?? JSON.stringify({ truncated: true })) : null,
        t.feedback,
      );
    }
    out.push(
      db
        .prepare(
          `INSERT OR IGNORE INTO turns (conversation_id, turn_index, role, message, time_in_call_secs, tools, feedback) VALUES ${values}`,
        )
        .bind(...params),
    );
  }
  return out;
}

export function conversationStatements(
  db: D1Database,
  r: ConversationRecord,
  meta: { transcriptKey: string; receivedAt: number },
): D1PreparedStatement[] {
  const analysis = jsonOrNull({ evaluation: r.evaluation, data_collection: Object.fromEntries(r.facts.map((f) => [f.id, f.value])) });
  return [
    db
      .prepare(
        `INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at,
           duration_secs, title, summary, call_successful, termination_reason, main_language, phone_number,
           phone_direction, phone_provider, turn_count, analysis, transcript_key, event_timestamp, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (conversation_id) DO NOTHING`,
      )
      .bind(
        r.conversationId,
        r.userId,
        r.userIdSource,
        r.agentId,
        clip(r.agentName, 256),
        r.status,
        r.startedAt,
        r.durationSecs,
        clip(r.title, 1024),
        clip(r.summary),
        r.callSuccessful,
        clip(r.terminationReason, 1024),
        r.mainLanguage,
        r.phoneNumber,
        r.phoneDirection,
        r.phoneProvider,
        r.turns.length,
        analysis,
        meta.transcriptKey,
        r.eventTimestamp,
        meta.receivedAt,
      ),
    ...turnStatements(db, r.conversationId, r.turns),
    ...(r.userId === null ? [] : [userDirectoryStatement(db, r.userId, meta.receivedAt)]),
  ];
}

/**
 * Refreshes a user's row in the `users` directory from their conversations. Recomputed, never
 * incremented, so a replayed or reordered write cannot skew it; deletes the row when the user has no
 * conversations left (after erasure or retention).
 */
export function userDirectoryStatements(db: D1Database, userId: string, now: number): D1PreparedStatement[] {
  return [
    userDirectoryStatement(db, userId, now),
    db.prepare("DELETE FROM users WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM conversations WHERE user_id = ?)").bind(userId, userId),
  ];
}

function userDirectoryStatement(db: D1Database, userId: string, now: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO users (user_id, first_call_at, last_call_at, conversation_count, updated_at)
       SELECT user_id, min(started_at), max(started_at), count(*), ? FROM conversations WHERE user_id = ? GROUP BY user_id
       ON CONFLICT (user_id) DO UPDATE SET first_call_at = excluded.first_call_at, last_call_at = excluded.last_call_at,
         conversation_count = excluded.conversation_count, updated_at = excluded.updated_at`,
    )
    .bind(now, userId);
}

export function callFailureStatement(db: D1Database, f: CallFailureRecord, receivedAt: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT OR IGNORE INTO call_failures (conversation_id, agent_id, failure_reason, provider, from_number, to_number,
         sip_status_code, call_sid, metadata, event_timestamp, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      f.conversationId,
      f.agentId,
      clip(f.failureReason, 256),
      f.provider,
      f.fromNumber,
      f.toNumber,
      f.sipStatusCode,
      clip(f.callSid, 256),
      jsonOrNull(f.metadata),
      f.eventTimestamp,
      receivedAt,
    );
}
