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
import { callFailureStatement, conversationStatements } from "../storage/conversations";
import { transcriptKey } from "../storage/keys";
import type { CallFailureRecord, ConversationRecord } from "../webhooks/payload";
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

type OutboxItem =
  | { kind: "conversation"; record: ConversationRecord; receivedAt: number }
  | { kind: "call_failure"; record: CallFailureRecord; receivedAt: number };

const MAX_BACKOFF_MS = 10 * 60 * 1000;

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
    if (this.isDuplicate("post_call_transcription", r.conversationId)) return { duplicate: true };
    this.ctx.storage.transactionSync(() => {
      this.markSeen("post_call_transcription", r.conversationId, receivedAt);
      if (r.userId !== null) this.remember(r, receivedAt);
      const seq = this.enqueue({ kind: "conversation", record: r, receivedAt }, r.conversationId, receivedAt);
      for (let part = 0, off = 0; off < raw.byteLength; part++, off += LIMITS.blobPartBytes) {
        this.sql.exec(
          "INSERT INTO outbox_blobs (seq, part, data) VALUES (?, ?, ?)",
          seq,
          part,
          raw.slice(off, off + LIMITS.blobPartBytes).buffer,
        );
      }
      this.compact(r.userId !== null && r.facts.length > 0);
    });
    await this.scheduleFlush(Date.now());
    return { duplicate: false };
  }

  async recordCallFailure(input: { record: CallFailureRecord; receivedAt: number }): Promise<RecordResult> {
    const { record, receivedAt } = input;
    this.ensureSchema(receivedAt);
    if (this.isDuplicate("call_initiation_failure", record.conversationId)) return { duplicate: true };
    this.ctx.storage.transactionSync(() => {
      this.markSeen("call_initiation_failure", record.conversationId, receivedAt);
      this.enqueue({ kind: "call_failure", record, receivedAt }, record.conversationId, receivedAt);
    });
    await this.scheduleFlush(Date.now());
    return { duplicate: false };
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

  /**
   * Keeps the object's size bounded however many calls a user makes; counters stay exact. Runs on
   * every event, so each step reads only what it may delete (rows read are billed, and a full scan
   * of a 10,000-row table per event is milliseconds): the recent-conversation list is trimmed only
   * once the exact call count says it can be over its bound, facts only when this event wrote some,
   * and `seen` keeps the last N rows recorded by rowid (it only ever grows at the top), found from
   * max(rowid) instead of by sorting the table.
   */
  private compact(factsWritten: boolean): void {
    const calls = this.sql.exec<{ n: number }>("SELECT call_count AS n FROM profile WHERE id = 1").toArray()[0]?.n ?? 0;
    if (calls > LIMITS.recentConversations) {
      this.sql.exec(
        `DELETE FROM conversations WHERE rowid IN
           (SELECT rowid FROM conversations ORDER BY started_at DESC, conversation_id DESC LIMIT -1 OFFSET ?)`,
        LIMITS.recentConversations,
      );
    }
    if (factsWritten) {
      this.sql.exec(
        "DELETE FROM facts WHERE fact_id IN (SELECT fact_id FROM facts ORDER BY collected_at DESC, fact_id LIMIT -1 OFFSET ?)",
        LIMITS.facts,
      );
    }
    this.sql.exec("DELETE FROM seen WHERE rowid <= (SELECT max(rowid) FROM seen) - ?", LIMITS.seenEvents);
  }

  private enqueue(item: OutboxItem, conversationId: string, now: number): number {
    const row = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO outbox (kind, conversation_id, body, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        item.kind,
        conversationId,
        JSON.stringify(item),
        now,
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
    await this.flush();
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
          console.warn(`outbox item ${row.seq} failed (attempt ${row.attempts + 1}): ${message}`);
          this.sql.exec(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            Date.now() + backoffMs(row.attempts),
            message.slice(0, 1000),
            row.seq,
          );
        }
      }
    }
    const { at: next, n: pending } = this.sql
      .exec<{ at: number | null; n: number }>("SELECT min(next_attempt_at) AS at, count(*) AS n FROM outbox")
      .one();
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
    if (item.kind === "call_failure") {
      await this.env.DB.batch([callFailureStatement(this.env.DB, item.record, item.receivedAt)]);
      return;
    }
    const r = item.record;
    const key = transcriptKey(r.conversationId);
    // The raw payload goes to R2 first, so a D1 row never points at an object that is not there.
    await this.env.AUDIO.put(key, this.rawPayload(seq), {
      httpMetadata: { contentType: "application/json" },
      customMetadata: { conversation_id: r.conversationId, ...(r.userId ? { user_id: r.userId } : {}) },
    });
    await this.env.DB.batch(conversationStatements(this.env.DB, r, { transcriptKey: key, receivedAt: item.receivedAt }));
  }
}
