/**
 * UserMemory: one Durable Object per user (named `user:<id>`), holding what the agent remembers of
 * them, and the outbox that carries each event on to D1 and R2.
 *
 * Why the outbox: the webhook is acknowledged as soon as the event is committed here (one round
 * trip, SQLite in the object, durable when the RPC returns). Writing D1 and R2 happens afterwards in
 * `alarm()`, retried with backoff until it succeeds, so a D1 or R2 outage delays those copies but
 * never loses an acknowledged event, and never makes ElevenLabs wait on three storage systems.
 *
 * Conversations with no user at all go to an object named `conversation:<id>`, which keeps only
 * the delivery record and the outbox (no memory to update).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { audioStatement, linkOf, type AudioLink, type AudioRow } from "../storage/audio";
import { callFailureStatement, conversationStatements } from "../storage/conversations";
import { transcriptKey } from "../storage/keys";
import { conversationRecord, parseEnvelope, type CallFailureRecord, type ConversationRecord } from "../webhooks/payload";
import type { ResolvedUser } from "./identity";
import { userMemory } from "./route";
import { LIMITS, MEMORY_SCHEMA, MEMORY_SCHEMA_VERSION } from "./schema";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "./variables";
import type { VariableValue } from "../config";

const isScalar = (v: unknown): v is VariableValue =>
  typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));

export interface RecordResult {
  duplicate: boolean;
}

export interface FlushReport {
  delivered: number;
  failed: number;
  pending: number;
}

/**
 * What an outbox row holds. A conversation item keeps only who owns it: the record is rebuilt from
 * the raw bytes (kept in `outbox_blobs`) when it is delivered, so the row stays small however large
 * the transcript (SQLite refuses values over 2 MB) and D1 gets exactly what R2 gets.
 */
type OutboxItem =
  | { kind: "conversation"; user: ResolvedUser; receivedAt: number }
  | { kind: "call_failure"; record: CallFailureRecord; receivedAt: number }
  /** Writes the D1 `audio` row, then tells the user's memory (if the transcript already named one). */
  | { kind: "audio"; link: AudioLink }
  /** Deletes the R2 object of an audio event that turned out to be a redelivery. */
  | { kind: "audio_discard"; key: string };

export interface OutboxStatus {
  pending: number;
  /** Items whose next attempt is due now. */
  due: number;
  /** Largest number of failed attempts of any pending item (0 when none has failed). */
  maxAttempts: number;
  /** Unix seconds when the oldest pending item was queued, or null. */
  oldestCreatedAt: number | null;
  /** Items that failed at least STUCK_ATTEMPTS times: delivery keeps trying them, an operator should look. */
  stuck: { seq: number; kind: string; conversationId: string; attempts: number; nextAttemptAt: number; lastError: string | null }[];
}

/** First retry after about a second, doubling to a ceiling of 10 minutes (each ±10% jitter). */
export const MAX_BACKOFF_MS = 10 * 60 * 1000;
/** From this many failed attempts (about 17 minutes of trying) an item is reported as stuck. */
export const STUCK_ATTEMPTS = 10;
/** When the alarm handler itself fails (not one item), try the whole run again after this long. */
const ALARM_RETRY_MS = 60 * 1000;

export function backoffMs(attempts: number): number {
  const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 20));
  return Math.round(base * (0.9 + Math.random() * 0.2));
}

export class UserMemory extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private schemaReady = false;
  private flushing: Promise<FlushReport> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
  }

  private hasSchema(): boolean {
    if (!this.schemaReady) {
      this.schemaReady = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profile'").toArray().length > 0;
    }
    return this.schemaReady;
  }

  private ensureSchema(now: number): void {
    if (this.hasSchema()) return;
    this.sql.exec(MEMORY_SCHEMA);
    this.sql.exec(
      "INSERT OR IGNORE INTO profile (id, schema_version, created_at, updated_at) VALUES (1, ?, ?, ?)",
      MEMORY_SCHEMA_VERSION,
      now,
      now,
    );
    this.schemaReady = true;
  }

  private isDuplicate(kind: string, conversationId: string): boolean {
    return this.sql.exec("SELECT 1 FROM seen WHERE kind = ? AND conversation_id = ?", kind, conversationId).toArray().length > 0;
  }

  private markSeen(kind: string, conversationId: string, now: number): void {
    this.sql.exec("INSERT INTO seen (kind, conversation_id, received_at) VALUES (?, ?, ?)", kind, conversationId, now);
  }

  /**
   * Commits a transcription event: the delivery record, the user's memory and an outbox item, in one
   * transaction. Returns `duplicate: true` (and changes nothing) for an event seen before.
   */
  async recordConversation(input: { record: ConversationRecord; raw: Uint8Array; receivedAt: number }): Promise<RecordResult> {
    const { record: r, raw, receivedAt } = input;
    this.ensureSchema(receivedAt);
    if (this.isDuplicate("post_call_transcription", r.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => {
      this.markSeen("post_call_transcription", r.conversationId, receivedAt);
      if (r.userId !== null) this.remember(r, receivedAt);
      const user: ResolvedUser = { userId: r.userId, source: r.userIdSource, phoneNumber: r.phoneNumber };
      const seq = this.enqueue({ kind: "conversation", user, receivedAt }, r.conversationId, receivedAt);
      for (let part = 0, off = 0; off < raw.byteLength; part++, off += LIMITS.blobPartBytes) {
        this.sql.exec(
          "INSERT INTO outbox_blobs (seq, part, data) VALUES (?, ?, ?)",
          seq,
          part,
          raw.slice(off, off + LIMITS.blobPartBytes).buffer,
        );
      }
      this.compact();
    });
    await this.scheduleFlush(Date.now());
    return { duplicate: false };
  }

  async recordCallFailure(input: { record: CallFailureRecord; receivedAt: number }): Promise<RecordResult> {
    const { record, receivedAt } = input;
    this.ensureSchema(receivedAt);
    if (this.isDuplicate("call_initiation_failure", record.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => {
      this.markSeen("call_initiation_failure", record.conversationId, receivedAt);
      this.enqueue({ kind: "call_failure", record, receivedAt }, record.conversationId, receivedAt);
    });
    await this.scheduleFlush(Date.now());
    return { duplicate: false };
  }

  /**
   * A redelivery changes nothing, but it is a chance to repair a missing alarm: if the first delivery
   * committed and then failed to set its alarm (so the sender saw a 5xx and retried), the outbox
   * would otherwise wait for the next event to be drained.
   */
  private async duplicate(): Promise<RecordResult> {
    const next = this.sql.exec<{ at: number | null }>("SELECT min(next_attempt_at) AS at FROM outbox").one().at;
    if (next !== null) await this.scheduleFlush(next);
    return { duplicate: true };
  }

  /**
   * Commits a post_call_audio event whose MP3 is already in R2: the link conversation -> object and an
   * outbox item that writes it to D1. Called on the `conversation:<id>` object (audio carries no user
   * id). A redelivery keeps the first audio and queues the new object's deletion, so no object is
   * ever left unlinked.
   */
  async recordAudio(link: AudioLink): Promise<RecordResult> {
    this.ensureSchema(link.receivedAt);
    const duplicate = this.isDuplicate("post_call_audio", link.conversationId);
    this.ctx.storage.transactionSync(() => {
      if (duplicate) {
        this.enqueue({ kind: "audio_discard", key: link.key }, link.conversationId, link.receivedAt);
        return;
      }
      this.markSeen("post_call_audio", link.conversationId, link.receivedAt);
      this.sql.exec(
        "INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, received_at) VALUES (?, ?, ?, ?, ?, ?)",
        link.conversationId,
        link.agentId,
        link.key,
        link.bytes,
        link.sha256,
        link.receivedAt,
      );
      this.enqueue({ kind: "audio", link }, link.conversationId, link.receivedAt);
    });
    await this.scheduleFlush(Date.now());
    return { duplicate };
  }

  /** The audio link this object holds, before or after D1 has it. Never writes. */
  async audioLink(conversationId: string): Promise<AudioLink | null> {
    if (!this.hasSchema()) return null;
    const row = this.sql
      .exec<AudioRow>(
        "SELECT conversation_id, agent_id, r2_key, bytes, sha256, received_at AS stored_at FROM audio WHERE conversation_id = ?",
        conversationId,
      )
      .toArray()[0];
    return row ? linkOf(row) : null;
  }

  /** Notes that one of this user's conversations has audio (from the audio's delivery). */
  async markAudio(conversationId: string): Promise<void> {
    if (!this.hasSchema()) return;
    this.sql.exec("UPDATE conversations SET has_audio = 1 WHERE conversation_id = ?", conversationId);
  }

  /** Updates profile counters, the recent-conversation list and facts. Runs inside a transaction. */
  private remember(r: ConversationRecord, now: number): void {
    this.sql.exec(
      `UPDATE profile SET
         user_id = coalesce(user_id, ?),
         call_count = call_count + 1,
         total_duration_secs = total_duration_secs + ?,
         first_call_at = min(coalesce(first_call_at, ?), ?),
         last_conversation_id = CASE WHEN last_call_at IS NULL OR ? >= last_call_at THEN ? ELSE last_conversation_id END,
         last_call_summary = CASE WHEN last_call_at IS NULL OR ? >= last_call_at THEN ? ELSE last_call_summary END,
         last_call_at = max(coalesce(last_call_at, ?), ?),
         updated_at = ?
       WHERE id = 1`,
      r.userId,
      r.durationSecs,
      r.startedAt,
      r.startedAt,
      r.startedAt,
      r.conversationId,
      r.startedAt,
      r.summary,
      r.startedAt,
      r.startedAt,
      now,
    );
    this.sql.exec(
      `INSERT OR IGNORE INTO conversations (conversation_id, started_at, duration_secs, title, summary, outcome, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      r.conversationId,
      r.startedAt,
      r.durationSecs,
      r.title,
      r.summary,
      r.callSuccessful,
      now,
    );
    for (const fact of r.facts) {
      const value = JSON.stringify(fact.value);
      if (value.length > LIMITS.factValueChars) continue;
      // Latest wins by when the conversation happened, not by when its webhook arrived.
      this.sql.exec(
        `INSERT INTO facts (fact_id, value, conversation_id, collected_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (fact_id) DO UPDATE SET value = excluded.value, conversation_id = excluded.conversation_id,
           collected_at = excluded.collected_at, updated_at = excluded.updated_at
         WHERE excluded.collected_at >= facts.collected_at`,
        fact.id,
        value,
        r.conversationId,
        r.startedAt,
        now,
      );
    }
  }

  /** Keeps the object's size bounded however many calls a user makes; counters stay exact. */
  private compact(): void {
    this.sql.exec(
      `DELETE FROM conversations WHERE conversation_id NOT IN
         (SELECT conversation_id FROM conversations ORDER BY started_at DESC, conversation_id DESC LIMIT ?)`,
      LIMITS.recentConversations,
    );
    this.sql.exec(
      "DELETE FROM facts WHERE fact_id NOT IN (SELECT fact_id FROM facts ORDER BY collected_at DESC, fact_id LIMIT ?)",
      LIMITS.facts,
    );
    this.sql.exec(
      `DELETE FROM seen WHERE rowid NOT IN (SELECT rowid FROM seen ORDER BY received_at DESC LIMIT ?)`,
      LIMITS.seenEvents,
    );
  }

  /** `now` is Unix seconds (created_at); the first attempt is due at once (next_attempt_at is in ms). */
  private enqueue(item: OutboxItem, conversationId: string, now: number): number {
    const row = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO outbox (kind, conversation_id, body, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        item.kind,
        conversationId,
        JSON.stringify(item),
        Date.now(),
        now,
      )
      .one();
    return row.seq;
  }

  /** What the next conversation needs: counters, recent topics and facts. Never writes. */
  async snapshot(): Promise<MemorySnapshot> {
    if (!this.hasSchema()) return EMPTY_SNAPSHOT;
    const p = this.sql
      .exec<{ call_count: number; last_call_at: number | null; last_call_summary: string | null }>(
        "SELECT call_count, last_call_at, last_call_summary FROM profile WHERE id = 1",
      )
      .toArray()[0];
    if (!p) return EMPTY_SNAPSHOT;
    const recent = this.sql
      .exec<{ title: string | null; summary: string | null }>(
        "SELECT title, summary FROM conversations ORDER BY started_at DESC, conversation_id DESC LIMIT ?",
        LIMITS.topicConversations,
      )
      .toArray();
    const facts = this.sql
      .exec<{ fact_id: string; value: string }>("SELECT fact_id, value FROM facts ORDER BY fact_id")
      .toArray()
      .map((f) => ({ id: f.fact_id, value: JSON.parse(f.value) as unknown }))
      .filter((f): f is { id: string; value: VariableValue } => isScalar(f.value));
    return {
      callCount: p.call_count,
      lastCallAt: p.last_call_at,
      lastCallSummary: p.last_call_summary,
      recent,
      facts,
    };
  }

  // ---- outbox delivery -------------------------------------------------------------------------

  private async scheduleFlush(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    try {
      await this.flush();
    } catch (err) {
      // Failures of single items are handled inside the run; this is the run itself failing. The
      // runtime retries a throwing alarm only a few times before dropping it, which would strand
      // the outbox until the next event: re-arm it ourselves instead.
      console.error("outbox run failed; retrying in 60 s", err instanceof Error ? (err.stack ?? err.message) : String(err));
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS);
    }
  }

  /** The outbox at a glance, for operators and tests. Never writes. */
  async outboxStatus(): Promise<OutboxStatus> {
    if (!this.hasSchema()) return { pending: 0, due: 0, maxAttempts: 0, oldestCreatedAt: null, stuck: [] };
    const now = Date.now();
    const agg = this.sql
      .exec<{ pending: number; due: number; max_attempts: number | null; oldest: number | null }>(
        `SELECT count(*) AS pending, count(CASE WHEN next_attempt_at <= ? THEN 1 END) AS due,
           max(attempts) AS max_attempts, min(created_at) AS oldest FROM outbox`,
        now,
      )
      .one();
    const stuck = this.sql
      .exec<{ seq: number; kind: string; conversation_id: string; attempts: number; next_attempt_at: number; last_error: string | null }>(
        "SELECT seq, kind, conversation_id, attempts, next_attempt_at, last_error FROM outbox WHERE attempts >= ? ORDER BY seq LIMIT 100",
        STUCK_ATTEMPTS,
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
    return { pending: agg.pending, due: agg.due, maxAttempts: agg.max_attempts ?? 0, oldestCreatedAt: agg.oldest, stuck };
  }

  /** Delivers due outbox items to D1 and R2. Safe to call at any time; concurrent calls share one run. */
  async flush(): Promise<FlushReport> {
    if (!this.hasSchema()) return { delivered: 0, failed: 0, pending: 0 };
    while (this.flushing) await this.flushing.catch(() => {});
    this.flushing = this.runFlush();
    try {
      return await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  private async runFlush(): Promise<FlushReport> {
    let delivered = 0;
    let failed = 0;
    // Items are tried in order, but a failed item is pushed into the future (its own backoff) before
    // the next query, so an item that can never be delivered never holds back the ones behind it.
    for (;;) {
      const now = Date.now();
      const due = this.sql
        .exec<{ seq: number; body: string; attempts: number }>(
          "SELECT seq, body, attempts FROM outbox WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?",
          now,
          LIMITS.flushBatch,
        )
        .toArray();
      if (due.length === 0) break;
      for (const row of due) {
        try {
          await this.deliver(row.seq, JSON.parse(row.body) as OutboxItem);
          this.ctx.storage.transactionSync(() => {
            this.sql.exec("DELETE FROM outbox WHERE seq = ?", row.seq);
            this.sql.exec("DELETE FROM outbox_blobs WHERE seq = ?", row.seq);
          });
          delivered++;
        } catch (err) {
          failed++;
          const message = err instanceof Error ? err.message : String(err);
          // Never dropped: an item keeps being retried every MAX_BACKOFF_MS for as long as it fails,
          // and is reported (here and in outboxStatus) once it looks stuck rather than unlucky.
          const attempt = row.attempts + 1;
          if (attempt >= STUCK_ATTEMPTS) {
            console.error(`outbox item ${row.seq} is stuck after ${attempt} attempts; still retrying: ${message}`);
          } else {
            console.warn(`outbox item ${row.seq} failed (attempt ${attempt}): ${message}`);
          }
          this.sql.exec(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            Date.now() + backoffMs(row.attempts),
            message.slice(0, 1000),
            row.seq,
          );
        }
      }
    }
    const next = this.sql.exec<{ at: number | null }>("SELECT min(next_attempt_at) AS at FROM outbox").one().at;
    const pending = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n;
    if (next !== null) await this.scheduleFlush(next);
    return { delivered, failed, pending };
  }

  private rawPayload(seq: number): Uint8Array {
    const parts = this.sql
      .exec<{ data: ArrayBuffer }>("SELECT data FROM outbox_blobs WHERE seq = ? ORDER BY part", seq)
      .toArray()
      .map((p) => new Uint8Array(p.data));
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  }

  private async deliver(seq: number, item: OutboxItem): Promise<void> {
    const db = this.env.DB;
    switch (item.kind) {
      case "call_failure":
        await db.batch([callFailureStatement(db, item.record, item.receivedAt)]);
        return;
      case "audio_discard":
        await this.env.AUDIO.delete(item.key);
        return;
      case "audio": {
        // Audio and transcript meet in D1, whichever came first. Each delivery writes its row and
        // reads the other's in one batch (a transaction): of two concurrent deliveries the later
        // one always sees the earlier one's row, so the user's memory learns of the audio either here
        // or in the transcript's delivery below.
        const [, owner] = await db.batch([
          audioStatement(db, item.link),
          db.prepare("SELECT user_id FROM conversations WHERE conversation_id = ?").bind(item.link.conversationId),
        ]);
        const userId = (owner?.results[0] as { user_id: string | null } | undefined)?.user_id;
        if (userId) await userMemory(this.env, userId).markAudio(item.link.conversationId);
        return;
      }
      case "conversation": {
        const raw = this.rawPayload(seq);
        // Rebuilt with the owner resolved at receipt, so a later change of settings cannot move it.
        const r: ConversationRecord = conversationRecord(parseEnvelope(raw), item.user, item.receivedAt);
        const key = transcriptKey(r.conversationId);
        // The raw payload goes to R2 first, so a D1 row never points at an object that is not there.
        await this.env.AUDIO.put(key, raw, {
          httpMetadata: { contentType: "application/json" },
          customMetadata: { conversation_id: r.conversationId, ...(r.userId ? { user_id: r.userId } : {}) },
        });
        const results = await db.batch([
          ...conversationStatements(db, r, { transcriptKey: key, receivedAt: item.receivedAt }),
          db.prepare("SELECT 1 AS found FROM audio WHERE conversation_id = ?").bind(r.conversationId),
        ]);
        if (r.userId !== null && (results[results.length - 1]?.results.length ?? 0) > 0) {
          this.sql.exec("UPDATE conversations SET has_audio = 1 WHERE conversation_id = ?", r.conversationId);
        }
        return;
      }
    }
  }
}
