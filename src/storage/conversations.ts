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
import { countStatements } from "./counters";
import { userDirectoryStatement } from "./users";
import { homeWriteShard, userWriteShard } from "./placement";
import type { ShardEnv } from "./shards";
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
  // A replay keeps the first write's time (ON CONFLICT DO NOTHING): the lag is the first projection's.
  const projectedAt = Math.floor(Date.now() / 1000);
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
        projectedAt,
        r.vouchedBy,
        r.claimedUserId,
        r.unverified,
      ),
    // The health counters, only when the row above was inserted (src/storage/counters.ts).
    ...countStatements(db, { startedAt: r.startedAt, durationSecs: r.durationSecs, callSuccessful: r.callSuccessful, receivedAt: meta.receivedAt, projectedAt }),
    // The search document, in the same transaction, also only when the row was inserted (the counter
    // before it changed a row only then): keyed by the row's doc_id, the document is the messages.
    db
      .prepare(
        `INSERT INTO conversations_fts (rowid, body)
         SELECT doc_id, ? FROM conversations WHERE conversation_id = ? AND changes() = 1`,
      )
      .bind(ftsDocument(transcript.turns), r.conversationId),
    ...(r.userId === null ? [] : [userDirectoryStatement(db, r.userId, meta.receivedAt)]),
  ];
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

/** An agent's conversations wait for audio while it delivered audio to the shard in the 31 days before. */
const AUDIO_AGENT_MONTH = 31 * 86_400;

/**
 * Writes a conversation: its entry in `conversation_shards` and, while its audio is not there and
 * its agent sends audio (`audio_agents`, so agents without audio cost no row), in `audio_pending`,
 * in its home shard, reading in the same transaction whether its audio row is
 * already there (of the audio's and the transcript's deliveries, the later one always sees the
 * earlier one's row: src/objects/shared/deliveries.ts); then its row, search document, counters and
 * directory row in its owner's shard (one batch when that is the same database). The entry goes first:
 * it is what a lookup by id finds, and a replay after a failure in between writes the rest.
 */
export async function storeConversation(
  env: ShardEnv,
  r: ConversationRecord,
  meta: { transcriptKey: string; receivedAt: number },
): Promise<{ hasAudio: boolean }> {
  const home = await homeWriteShard(env, r.conversationId);
  const owner = r.userId === null ? home : await userWriteShard(env, r.userId);
  const meeting = [
    home
      .prepare(
        `INSERT INTO conversation_shards (conversation_id, user_id, user_id_source, agent_id) VALUES (?, ?, ?, ?)
         ON CONFLICT (conversation_id) DO NOTHING`,
      )
      .bind(r.conversationId, r.userId, r.userIdSource, r.agentId),
    home
      .prepare(
        `INSERT INTO audio_pending (conversation_id, agent_id, user_id, started_at, received_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM audio WHERE conversation_id = ?1)
           AND EXISTS (SELECT 1 FROM audio_agents WHERE agent_id = ?2 AND last_audio_at >= ?5 - ${AUDIO_AGENT_MONTH})
         ON CONFLICT (conversation_id) DO NOTHING`,
      )
      .bind(r.conversationId, r.agentId, r.userId, r.startedAt, meta.receivedAt),
    home.prepare("SELECT user_id FROM conversation_shards WHERE conversation_id = ?").bind(r.conversationId),
    home.prepare("SELECT 1 AS found FROM audio WHERE conversation_id = ?").bind(r.conversationId),
  ];
  const rows = await conversationStatements(owner, r, meta);
  const results = home === owner ? await home.batch([...meeting, ...rows]) : await home.batch(meeting);
  // The deliveries let only the first owner get this far; should another ever, its rows stay out of every shard.
  const entry = results[2]!.results[0] as { user_id: string | null } | undefined;
  if ((entry?.user_id ?? null) !== r.userId) {
    console.error(JSON.stringify({ event: "conversation_owner_mismatch", conversation_id: r.conversationId, user_id: r.userId, owner_user_id: entry?.user_id ?? null }));
    return { hasAudio: false };
  }
  if (home !== owner) await owner.batch(rows);
  return { hasAudio: results[3]!.results.length > 0 };
}

export async function storeCallFailure(db: D1Database, f: CallFailureRecord, receivedAt: number): Promise<void> {
  await db.batch([callFailureStatement(db, f, receivedAt)]);
}

// An operator's attribution moves the row to its owner's shard: src/storage/placement.ts.
export { attributeConversation } from "./placement";
export { userDirectoryStatements } from "./users";

// The reads, split out for size; callers import them from here.
export * from "./conversation-reads";
