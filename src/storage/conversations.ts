/**
 * D1 `conversations` (with its search document in `conversations_fts`) and `call_failures`: the
 * outbox's writes and the API's reads. A conversation is one row, its transcript one encoded value
 * (src/storage/transcript-codec.ts). Every
 * write is idempotent (INSERT OR IGNORE on natural keys), so the outbox can replay one after a
 * partial failure without doubling anything. D1 holds what queries need; the raw payload lives in
 * R2 (D1 stops at 10 GB).
 */
import { clip, jsonOrNull } from "../records/limits";
import type { CallFailureRecord, ConversationRecord } from "../records/payload";
import { decodeTranscript, ftsDocument, packTranscript, TOOLS_DROPPED, type StoredTurn, type StoredValue } from "./transcript-codec";

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
 * one always sees the earlier one's row (src/memory/deliveries.ts).
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

/** The columns of a conversation row as the API reads them. */
export interface ConversationRow {
  conversation_id: string;
  user_id: string | null;
  user_id_source: string | null;
  agent_id: string;
  agent_name: string | null;
  status: string | null;
  started_at: number;
  duration_secs: number;
  title: string | null;
  summary: string | null;
  call_successful: string | null;
  termination_reason: string | null;
  main_language: string | null;
  phone_number: string | null;
  phone_direction: string | null;
  phone_provider: string | null;
  turn_count: number;
  /** JSON text: evaluation results and data collection (null when it was too large to keep here). */
  analysis: string | null;
  event_timestamp: number | null;
  received_at: number;
  /** How the owner was vouched for: token, telephony, operator, claimed (null: no owner, or stored before migration 0005). */
  vouched_by: string | null;
  claimed_user_id: string | null;
  unverified_reason: string | null;
}

export interface StoredConversation {
  row: ConversationRow;
  transcript: StoredTurn[];
  audio: { bytes: number; sha256: string; stored_at: number } | null;
}

/** JSON text as a value, or null when absent or unreadable (stored JSON columns). */
export function parseStoredJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A transcript's turns as the API and forwarded events show them. */
export function turnsView(transcript: StoredTurn[]) {
  return transcript.map((t) => ({
    index: t.index,
    role: t.role,
    message: t.message,
    time_in_call_secs: t.time_in_call_secs,
    tools: parseStoredJson(t.tools),
    feedback: t.feedback,
  }));
}

/** One conversation with its transcript and audio row, or null when D1 has none. */
export async function readConversation(
  db: D1Database,
  conversationId: string,
  opts: { transcript: boolean } = { transcript: true },
): Promise<StoredConversation | null> {
  // Without the transcript (a forwarded event that only links to it) neither the blob is read nor decoded.
  const [conv, audio] = await db.batch<unknown>([
    db.prepare(
      `SELECT conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at, duration_secs, title,
         summary, call_successful, termination_reason, main_language, phone_number, phone_direction, phone_provider,
         turn_count, analysis, event_timestamp, received_at, vouched_by, claimed_user_id, unverified_reason${opts.transcript ? ", transcript" : ""}
       FROM conversations WHERE conversation_id = ?`,
    ).bind(conversationId),
    db.prepare("SELECT bytes, sha256, stored_at FROM audio WHERE conversation_id = ?").bind(conversationId),
  ]);
  const found = conv!.results[0] as (ConversationRow & { transcript: StoredValue | null }) | undefined;
  if (!found) return null;
  const { transcript, ...row } = found;
  return {
    row,
    // Throws TranscriptDecodeError (a 500) for a value it cannot read: never a silently empty transcript.
    transcript: opts.transcript ? await decodeTranscript(transcript) : [],
    audio: (audio!.results[0] as StoredConversation["audio"] | undefined) ?? null,
  };
}

/** A row of a user's conversation list: the summary columns and whether it has audio. */
export type ConversationSummary = Pick<
  ConversationRow,
  | "conversation_id"
  | "agent_id"
  | "agent_name"
  | "status"
  | "started_at"
  | "duration_secs"
  | "title"
  | "summary"
  | "call_successful"
  | "user_id_source"
  | "phone_number"
  | "phone_direction"
  | "turn_count"
> & { has_audio: number };

const SUMMARY_COLUMNS = `c.conversation_id, c.agent_id, c.agent_name, c.status, c.started_at, c.duration_secs, c.title, c.summary,
  c.call_successful, c.user_id_source, c.phone_number, c.phone_direction, c.turn_count,
  (a.conversation_id IS NOT NULL) AS has_audio`;

/**
 * A page of a user's conversations, newest first (index conversations_by_user), strictly after the
 * keyset position `after`. Returns up to `limit` rows.
 */
export async function listConversationsOfUser(
  db: D1Database,
  userId: string,
  page: { limit: number; after: { startedAt: number; conversationId: string } | null },
): Promise<ConversationSummary[]> {
  const { limit, after } = page;
  const stmt =
    after === null
      ? db.prepare(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, limit)
      : db.prepare(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? AND (c.started_at < ? OR (c.started_at = ? AND c.conversation_id < ?))
           ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, after.startedAt, after.startedAt, after.conversationId, limit);
  return (await stmt.all<ConversationSummary>()).results;
}

/** Who D1 says owns a conversation (null: no one), or undefined when D1 has no row for it. */
export async function conversationOwner(db: D1Database, conversationId: string): Promise<string | null | undefined> {
  const row = await db.prepare("SELECT user_id FROM conversations WHERE conversation_id = ?").bind(conversationId).first<{ user_id: string | null }>();
  return row === null ? undefined : row.user_id;
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

export type UnattributedSummary = ConversationSummary & { received_at: number; claimed_user_id: string | null; unverified_reason: string | null };

/**
 * Conversations no one owns (unverified claims and conversations that named no one), newest
 * received first, strictly after the keyset position `after` (index conversations_unattributed).
 */
export async function listUnattributed(
  db: D1Database,
  page: { limit: number; after: { receivedAt: number; conversationId: string } | null },
): Promise<UnattributedSummary[]> {
  const cols = `${SUMMARY_COLUMNS}, c.received_at, c.claimed_user_id, c.unverified_reason`;
  const from = "FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id WHERE c.user_id IS NULL";
  const stmt =
    page.after === null
      ? db.prepare(`SELECT ${cols} ${from} ORDER BY c.received_at DESC, c.conversation_id DESC LIMIT ?`).bind(page.limit)
      : db
          .prepare(
            `SELECT ${cols} ${from} AND (c.received_at < ? OR (c.received_at = ? AND c.conversation_id < ?))
             ORDER BY c.received_at DESC, c.conversation_id DESC LIMIT ?`,
          )
          .bind(page.after.receivedAt, page.after.receivedAt, page.after.conversationId, page.limit);
  return (await stmt.all<UnattributedSummary>()).results;
}

/** A `call_failures` row as D1 returns it (the export and forwarding read it). */
export interface CallFailureRow {
  conversation_id: string;
  agent_id: string;
  failure_reason: string;
  provider: string | null;
  from_number: string | null;
  to_number: string | null;
  sip_status_code: number | null;
  call_sid: string | null;
  metadata: string | null;
  event_timestamp: number | null;
  received_at: number;
}

/** A call failure as the API shows it (an export's `call_failure` record, a forwarded `call.failed`'s data). */
export function callFailureView(f: CallFailureRow) {
  return {
    conversation_id: f.conversation_id,
    agent_id: f.agent_id,
    failure_reason: f.failure_reason,
    provider: f.provider,
    from_number: f.from_number,
    to_number: f.to_number,
    sip_status_code: f.sip_status_code,
    call_sid: f.call_sid,
    metadata: parseStoredJson(f.metadata),
  };
}
