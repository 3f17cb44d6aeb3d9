/**
 * D1 `conversations` (with its search document in `conversations_fts`) and `call_failures`: the
 * outbox's writes and the API's reads. A conversation is one row, its transcript one encoded value
 * (src/storage/transcript-codec.ts). Every
 * write is idempotent (INSERT OR IGNORE on natural keys), so the outbox can replay one after a
 * partial failure without doubling anything. D1 holds what queries need; the raw payload lives in
 * R2 (D1 stops at 10 GB).
 */
import { clip, jsonOrNull } from "../records/limits";
import type { ConversationRecord } from "../records/payload";
import type { CallFailureRecord } from "../records/call-failure";
import { ftsDocument, packTranscript, TOOLS_DROPPED, type StoredTurn } from "./transcript-codec";

export type { StoredTurn };

/** The transcript as stored: clipped, bounded, encoded (src/storage/transcript-codec.ts). */
async function packedTranscript(r: ConversationRecord) {
  const packed = await packTranscript(
    r.turns.map((t) => ({
      index: t.index,
      role: t.role,
      message: t.message,
      time_in_call_secs: t.timeInCallSecs,
      tools: t.tools ? (jsonOrNull(t.tools) ?? TOOLS_DROPPED) : null,
      feedback: t.feedback,
    })),
  );
  if (packed.degraded !== null) {
    console.warn(
      JSON.stringify({ event: "transcript_degraded", conversation_id: r.conversationId, dropped: packed.degraded, turns: r.turns.length, kept: packed.turns.length }),
    );
  }
  return packed;
}

async function conversationStatements(
  db: D1Database,
  r: ConversationRecord,
  meta: { transcriptKey: string; receivedAt: number },
): Promise<D1PreparedStatement[]> {
  const transcript = await packedTranscript(r);
  const analysis = jsonOrNull({ evaluation: r.evaluation, data_collection: Object.fromEntries(r.facts.map((f) => [f.id, f.value])) });
  return [
    db
      .prepare(
        `INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at,
           duration_secs, title, summary, call_successful, termination_reason, main_language, phone_number,
           phone_direction, phone_provider, turn_count, analysis, transcript, transcript_key, event_timestamp, received_at,
           projected_at, vouched_by, claimed_user_id, unverified_reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        transcript.blob,
        meta.transcriptKey,
        r.eventTimestamp,
        meta.receivedAt,
        // A replay keeps the first write's time (ON CONFLICT DO NOTHING): the lag is the first projection's.
        Math.floor(Date.now() / 1000),
        r.vouchedBy,
        r.claimedUserId,
        r.unverified,
      ),
    // The search document, in the same transaction. Only when the row above was inserted (a replay
    // finds the row there and adds nothing): keyed by the row's doc_id, the document is the messages.
    db
      .prepare(
        `INSERT INTO conversations_fts (rowid, body)
         SELECT doc_id, ? FROM conversations WHERE conversation_id = ? AND changes() = 1`,
      )
      .bind(ftsDocument(transcript.turns), r.conversationId),
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

function callFailureStatement(db: D1Database, f: CallFailureRecord, receivedAt: number): D1PreparedStatement {
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

/**
 * Writes a conversation (row, search document, directory) in one batch, and reads in the same transaction
 * whether its audio row is already there: of the audio's and the transcript's deliveries, the later
 * one always sees the earlier one's row (src/objects/shared/deliveries.ts).
 */
export async function storeConversation(
  db: D1Database,
  r: ConversationRecord,
  meta: { transcriptKey: string; receivedAt: number },
): Promise<{ hasAudio: boolean }> {
  const results = await db.batch([
    ...(await conversationStatements(db, r, meta)),
    db.prepare("SELECT 1 AS found FROM audio WHERE conversation_id = ?").bind(r.conversationId),
  ]);
  return { hasAudio: (results[results.length - 1]?.results.length ?? 0) > 0 };
}

export async function storeCallFailure(db: D1Database, f: CallFailureRecord, receivedAt: number): Promise<void> {
  await db.batch([callFailureStatement(db, f, receivedAt)]);
}

/**
 * An operator attributes an unattributed conversation to `userId` (POST /v1/conversations/:id/attribute).
 * Only a row with no owner changes (or one already theirs); returns the owner after the call, or
 * undefined when D1 has no row.
 */
export async function attributeConversation(db: D1Database, conversationId: string, userId: string, now: number): Promise<string | null | undefined> {
  const [, owner] = await db.batch([
    db
      .prepare("UPDATE conversations SET user_id = ?, user_id_source = 'operator', vouched_by = 'operator' WHERE conversation_id = ? AND user_id IS NULL")
      .bind(userId, conversationId),
    db.prepare("SELECT user_id FROM conversations WHERE conversation_id = ?").bind(conversationId),
    ...userDirectoryStatements(db, userId, now).slice(0, 1),
  ]);
  const row = owner!.results[0] as { user_id: string | null } | undefined;
  return row === undefined ? undefined : row.user_id;
}

// The reads, split out for size; callers import them from here.
export * from "./conversation-reads";
