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
 *
 * Phone links (docs/storage.md, README "Phone callers"): the object of a phone number (`user:+E164`)
 * may name the app user the number belongs to (`phone_owner`, the truth used to resolve callers);
 * the app user's object lists its numbers (`phones`, a reverse index used to read and erase). The
 * reverse index is always a superset of the truth: entries are added before the truth points at
 * them and removed only after it stopped, so erasing a user always finds every number that
 * resolves to them, whatever step a crash interrupted.
 *
 * One alarm serves the outbox and retention (RETENTION_DAYS): `alarm()` delivers what is due, then
 * removes conversations that have expired, then re-arms itself for whichever comes first.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { audioStatement, linkOf, type AudioLink, type AudioRow } from "../storage/audio";
import { callFailureStatement, conversationStatements } from "../storage/conversations";
import { addCounts, eraseCallFailures, eraseConversations, zeroCounts, type EraseCounts } from "../storage/erase";
import { transcriptKey } from "../storage/keys";
import { concatBytes } from "../webhooks/body";
import { conversationRecord, parseEnvelope, type CallFailureRecord, type ConversationRecord } from "../webhooks/payload";
import { normalisePhone, type ResolvedUser } from "./identity";
import { ownerOf, userMemory } from "./route";
import { LIMITS, MEMORY_SCHEMA, MEMORY_SCHEMA_VERSION } from "./schema";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "./variables";
import { config, type VariableValue } from "../config";

const isScalar = (v: unknown): v is VariableValue =>
  typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));

export interface RecordResult {
  duplicate: boolean;
  /**
   * Set (and nothing recorded) when a conversation identified only by its phone number reached the
   * number's object and that number is linked to an app user: record it there instead.
   */
  linkedTo?: string;
}

export type LinkVia = "conversation" | "api" | "erasure";

export interface OwnerResult {
  /** Who the number belongs to after the call (null: nobody). */
  owner: string | null;
  /** False when a newer link or unlink was already recorded, so this one was ignored. */
  applied: boolean;
}

export interface EraseStep {
  /** False when there is more to erase: call again (every step is idempotent). */
  done: boolean;
  counts: EraseCounts;
  /** Links removed, in either direction. */
  phoneLinks: number;
  /** The numbers that were linked to this user and no longer are. */
  unlinkedPhoneNumbers: string[];
  /** Rows the object held when it was wiped (0 until the last step). */
  memoryRows: number;
}

export interface RetentionReport {
  counts: EraseCounts;
  /** More expired conversations remain (the alarm is re-armed to continue at once). */
  more: boolean;
  /** Why nothing was done: retention is off, the object holds no memory, or an erasure is under way. */
  skipped?: "off" | "no_memory" | "erasing";
}

/** Everything a user's memory holds, as stored (times in Unix seconds). */
export interface MemoryView {
  profile: {
    user_id: string | null;
    call_count: number;
    total_duration_secs: number;
    first_call_at: number | null;
    last_call_at: number | null;
    last_conversation_id: string | null;
    last_call_summary: string | null;
    created_at: number;
    updated_at: number;
  };
  conversations: {
    conversation_id: string;
    started_at: number;
    duration_secs: number;
    title: string | null;
    summary: string | null;
    outcome: string | null;
    received_at: number;
  }[];
  facts: { fact_id: string; value: string; conversation_id: string; collected_at: number; updated_at: number }[];
  phones: { phone_number: string; linked_at: number; via: string; conversation_id: string | null }[];
  owner: { phone_number: string; user_id: string | null; linked_at: number; via: string; conversation_id: string | null } | null;
  pendingDeliveries: number;
  erasingSince: number | null;
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
  | { kind: "audio_discard"; key: string }
  /** Tell the number's object that it belongs to this user (queued by the user's object). */
  | { kind: "link"; phoneNumber: string; userId: string; at: number; conversationId: string }
  /** Tell a former owner that the number is no longer theirs (queued by the number's object). */
  | { kind: "phone_removed"; phoneNumber: string; userId: string; at: number };

type OwnerRow = NonNullable<MemoryView["owner"]>;

const LINKING_SOURCES = new Set(["user_id", "client_data_user_id", "dynamic_variable"]);

/** When retention cannot reach D1 or R2, the alarm tries again after this long. */
const RETENTION_RETRY_MS = 5 * 60 * 1000;

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
      const exists = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profile'").toArray().length > 0;
      if (!exists) return false;
      const version = this.sql.exec<{ v: number }>("SELECT schema_version AS v FROM profile WHERE id = 1").toArray()[0]?.v ?? 0;
      if (version < MEMORY_SCHEMA_VERSION) {
        // An object written by an older version: add what is missing (every statement is IF NOT EXISTS).
        this.ctx.storage.transactionSync(() => {
          this.sql.exec(MEMORY_SCHEMA);
          this.sql.exec("INSERT OR IGNORE INTO upkeep (id) VALUES (1)");
          this.sql.exec("UPDATE profile SET schema_version = ? WHERE id = 1", MEMORY_SCHEMA_VERSION);
        });
      }
      this.schemaReady = true;
    }
    return true;
  }

  private ensureSchema(now: number): void {
    if (this.hasSchema()) return;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(MEMORY_SCHEMA);
      this.sql.exec(
        "INSERT OR IGNORE INTO profile (id, schema_version, created_at, updated_at) VALUES (1, ?, ?, ?)",
        MEMORY_SCHEMA_VERSION,
        now,
        now,
      );
      this.sql.exec("INSERT OR IGNORE INTO upkeep (id) VALUES (1)");
    });
    this.schemaReady = true;
  }

  private erasingSince(): number | null {
    return this.sql.exec<{ e: number | null }>("SELECT erasing_since AS e FROM upkeep WHERE id = 1").toArray()[0]?.e ?? null;
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
    if (r.userIdSource === "phone_number" && this.hasSchema()) {
      // This is a phone number's object. A redelivery of a conversation recorded here before the
      // number was linked stays a duplicate here rather than being counted again for the app user.
      if (this.isDuplicate("post_call_transcription", r.conversationId)) return { duplicate: true };
      const owner = this.ownerRow()?.user_id ?? null;
      if (owner !== null) return { duplicate: false, linkedTo: owner };
    }
    this.ensureSchema(receivedAt);
    if (this.isDuplicate("post_call_transcription", r.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => {
      this.markSeen("post_call_transcription", r.conversationId, receivedAt);
      if (r.userId !== null) this.remember(r, receivedAt);
      if (this.shouldLink(r)) {
        // Reverse index first (see the invariant above), then the outbox tells the number's object.
        this.sql.exec(
          "INSERT OR IGNORE INTO phones (phone_number, linked_at, via, conversation_id) VALUES (?, ?, 'conversation', ?)",
          r.phoneNumber,
          r.startedAt,
          r.conversationId,
        );
        this.enqueue(
          { kind: "link", phoneNumber: r.phoneNumber!, userId: r.userId!, at: r.startedAt, conversationId: r.conversationId },
          r.conversationId,
          receivedAt,
        );
      }
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
      this.compact(r.userId !== null && r.facts.length > 0);
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

  private readonly forgetAudio = (conversationId: string) => ownerOf(this.env, null, conversationId).forgetConversation(conversationId);

  /**
   * On a `conversation:<id>` object only (named by `ownerOf(env, null, id)`): erasure or retention of the
   * conversation. Deletes the audio objects it links and wipes the object, so no trace of the call is
   * left here. Returns how many R2 keys it deleted. Safe to repeat.
   */
  async forgetConversation(conversationId: string): Promise<number> {
    if (!this.hasSchema()) return 0;
    const keys = this.sql
      .exec<{ r2_key: string }>("SELECT r2_key FROM audio WHERE conversation_id = ?", conversationId)
      .toArray()
      .map((r) => r.r2_key);
    if (keys.length > 0) await this.env.AUDIO.delete(keys);
    await this.wipe();
    return keys.length;
  }

  /** Notes that one of this user's conversations has audio (from the audio's delivery). */
  async markAudio(conversationId: string): Promise<void> {
    if (!this.hasSchema()) return;
    this.sql.exec("UPDATE conversations SET has_audio = 1 WHERE conversation_id = ?", conversationId);
  }

  /**
   * A conversation that names an app user and also carries the caller's number links the two, unless
   * the user already lists that number. The user id must come from the app (not from the number
   * itself), and a user id equal to the number is not a link.
   */
  private shouldLink(r: ConversationRecord): boolean {
    if (r.userId === null || r.phoneNumber === null || r.userId === r.phoneNumber) return false;
    if (r.userIdSource === null || !LINKING_SOURCES.has(r.userIdSource)) return false;
    return this.sql.exec("SELECT 1 FROM phones WHERE phone_number = ?", r.phoneNumber).toArray().length === 0;
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
    return this.readSnapshot();
  }

  /**
   * For the initiation webhook, in one round trip: the app user this number is linked to (the
   * caller then needs that user's snapshot), or else the number's own snapshot. Never writes.
   */
  async resolveCaller(): Promise<{ linkedTo: string | null; snapshot: MemorySnapshot }> {
    if (!this.hasSchema()) return { linkedTo: null, snapshot: EMPTY_SNAPSHOT };
    const owner = this.ownerRow()?.user_id ?? null;
    return owner !== null ? { linkedTo: owner, snapshot: EMPTY_SNAPSHOT } : { linkedTo: null, snapshot: this.readSnapshot() };
  }

  private readSnapshot(): MemorySnapshot {
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

  /** Everything this memory holds, or null when it holds nothing (no storage was ever written). */
  async describe(): Promise<MemoryView | null> {
    if (!this.hasSchema()) return null;
    const profile = this.sql
      .exec<MemoryView["profile"]>(
        `SELECT user_id, call_count, total_duration_secs, first_call_at, last_call_at, last_conversation_id,
           last_call_summary, created_at, updated_at FROM profile WHERE id = 1`,
      )
      .one();
    return {
      profile,
      conversations: this.sql
        .exec<MemoryView["conversations"][number]>(
          `SELECT conversation_id, started_at, duration_secs, title, summary, outcome, received_at
           FROM conversations ORDER BY started_at DESC, conversation_id DESC`,
        )
        .toArray(),
      facts: this.sql
        .exec<MemoryView["facts"][number]>("SELECT fact_id, value, conversation_id, collected_at, updated_at FROM facts ORDER BY fact_id")
        .toArray(),
      phones: this.sql
        .exec<MemoryView["phones"][number]>("SELECT phone_number, linked_at, via, conversation_id FROM phones ORDER BY linked_at DESC, phone_number")
        .toArray(),
      owner: this.ownerRow(),
      pendingDeliveries: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n,
      erasingSince: this.erasingSince(),
    };
  }

  // ---- phone links -----------------------------------------------------------------------------

  private ownerRow(): OwnerRow | null {
    return (
      this.sql
        .exec<OwnerRow>("SELECT phone_number, user_id, linked_at, via, conversation_id FROM phone_owner WHERE id = 1")
        .toArray()[0] ?? null
    );
  }

  /**
   * In a phone number's object: the number now belongs to `userId`. Latest wins by `at` (Unix
   * seconds: the conversation's start, or the time of the API call), so links arriving out of order
   * settle on the newest, and an unlink is not undone by an older link. A displaced owner is told
   * through the outbox, after the truth changed.
   */
  async setOwner(input: { phoneNumber: string; userId: string; at: number; via: LinkVia; conversationId: string | null }): Promise<OwnerResult> {
    const now = Math.floor(Date.now() / 1000);
    this.ensureSchema(now);
    const result = this.ctx.storage.transactionSync(() => {
      const row = this.ownerRow();
      if (row && row.linked_at > input.at) return { owner: row.user_id, applied: false, notify: false };
      if (row && row.user_id === input.userId) return { owner: input.userId, applied: true, notify: false };
      this.sql.exec(
        `INSERT INTO phone_owner (id, phone_number, user_id, linked_at, via, conversation_id, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET phone_number = excluded.phone_number, user_id = excluded.user_id,
           linked_at = excluded.linked_at, via = excluded.via, conversation_id = excluded.conversation_id, updated_at = excluded.updated_at`,
        input.phoneNumber,
        input.userId,
        input.at,
        input.via,
        input.conversationId,
        now,
      );
      const previous = row?.user_id ?? null;
      if (previous !== null) {
        this.enqueue({ kind: "phone_removed", phoneNumber: input.phoneNumber, userId: previous, at: input.at }, input.phoneNumber, now);
      }
      return { owner: input.userId, applied: true, notify: previous !== null };
    });
    if (result.notify) await this.scheduleFlush(Date.now());
    return { owner: result.owner, applied: result.applied };
  }

  /**
   * In a phone number's object: the number no longer belongs to `userId` (no-op if it belongs to
   * someone else). A tombstone keeps the time, so an older link still in flight cannot restore it.
   * With `forget` (erasure), an object that holds nothing but the link is wiped instead.
   */
  async clearOwner(userId: string, at: number, via: LinkVia): Promise<{ removed: boolean }> {
    if (!this.hasSchema()) return { removed: false };
    const row = this.ownerRow();
    if (!row || row.user_id !== userId) return { removed: false };
    if (via === "erasure" && this.holdsOnlyALink()) {
      await this.wipe();
      return { removed: true };
    }
    this.sql.exec(
      "UPDATE phone_owner SET user_id = NULL, linked_at = max(linked_at, ?), via = ?, conversation_id = NULL, updated_at = ? WHERE id = 1",
      at,
      via,
      Math.floor(Date.now() / 1000),
    );
    return { removed: true };
  }

  private holdsOnlyALink(): boolean {
    const n = (q: string) => this.sql.exec<{ n: number }>(q).one().n;
    return (
      n("SELECT call_count AS n FROM profile WHERE id = 1") === 0 &&
      n("SELECT count(*) AS n FROM seen") === 0 &&
      n("SELECT count(*) AS n FROM outbox") === 0 &&
      n("SELECT count(*) AS n FROM phones") === 0 &&
      n("SELECT count(*) AS n FROM facts") === 0
    );
  }

  /** In a user's object: list a number as theirs (before the number's object points here). */
  async addPhone(phoneNumber: string, at: number, via: LinkVia): Promise<void> {
    this.ensureSchema(Math.floor(Date.now() / 1000));
    this.sql.exec(
      `INSERT INTO phones (phone_number, linked_at, via, conversation_id) VALUES (?, ?, ?, NULL)
       ON CONFLICT (phone_number) DO UPDATE SET linked_at = max(phones.linked_at, excluded.linked_at), via = excluded.via`,
      phoneNumber,
      at,
      via,
    );
  }

  /** In a user's object: forget a number linked at or before `at` (after its object stopped pointing here). */
  async removePhone(phoneNumber: string, at: number): Promise<{ removed: boolean }> {
    if (!this.hasSchema()) return { removed: false };
    const gone = this.sql.exec("DELETE FROM phones WHERE phone_number = ? AND linked_at <= ? RETURNING phone_number", phoneNumber, at).toArray();
    return { removed: gone.length > 0 };
  }

  // ---- outbox delivery -------------------------------------------------------------------------

  private async scheduleFlush(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  /** The one alarm: deliver what is due, then expire old conversations, then re-arm for the next of either. */
  override async alarm(): Promise<void> {
    try {
      await this.flush();
      await this.upkeep(Date.now());
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
    if (this.erasingSince() !== null) {
      // An erasure has begun: delivering now would write rows it is deleting. The erasure ends by
      // wiping the outbox; until it completes, nothing leaves.
      return { delivered: 0, failed: 0, pending: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n };
    }
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
    return concatBytes(parts);
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
        // Retention starts counting once the conversation is in D1, where it removes it from.
        this.sql.exec("UPDATE upkeep SET retention_anchor = min(coalesce(retention_anchor, ?), ?) WHERE id = 1", r.startedAt, r.startedAt);
        return;
      }
    }
    if (item.kind === "link") {
      const res = await userMemory(this.env, item.phoneNumber).setOwner({
        phoneNumber: item.phoneNumber,
        userId: item.userId,
        at: item.at,
        via: "conversation",
        conversationId: item.conversationId,
      });
      // A newer link or unlink won: this user's reverse entry must go (the truth no longer points here).
      if (res.owner !== item.userId) {
        this.sql.exec("DELETE FROM phones WHERE phone_number = ? AND linked_at <= ?", item.phoneNumber, item.at);
      }
      return;
    }
    if (item.kind === "phone_removed") {
      await userMemory(this.env, item.userId).removePhone(item.phoneNumber, item.at);
      return;
    }
  }

  // ---- retention -------------------------------------------------------------------------------

  private async upkeep(nowMs: number): Promise<void> {
    if (!this.hasSchema() || this.erasingSince() !== null) return;
    const days = config(this.env).retentionDays;
    if (days === null) return;
    try {
      const { more } = await this.expire(nowMs, days, false);
      const due = more ? nowMs : this.retentionDueMs(days);
      if (due !== null) await this.scheduleFlush(due);
    } catch (err) {
      console.warn(`retention failed: ${err instanceof Error ? err.message : String(err)}`);
      await this.scheduleFlush(nowMs + RETENTION_RETRY_MS);
    }
  }

  private retentionDueMs(days: number): number | null {
    if (!this.hasSchema()) return null; // expired whole (a conversation's own object): nothing left to expire
    const anchor = this.sql.exec<{ a: number | null }>("SELECT retention_anchor AS a FROM upkeep WHERE id = 1").one().a;
    return anchor === null ? null : (anchor + days * 86_400) * 1000;
  }

  /**
   * Applies retention now, whatever the anchor says (the daily sweep calls this for users whose
   * expired conversations it found in D1). Continues by alarm when there is more than one call's worth.
   */
  async applyRetention(): Promise<RetentionReport> {
    const days = config(this.env).retentionDays;
    if (days === null) return { counts: zeroCounts(), more: false, skipped: "off" };
    if (!this.hasSchema()) return { counts: zeroCounts(), more: false, skipped: "no_memory" };
    if (this.erasingSince() !== null) return { counts: zeroCounts(), more: false, skipped: "erasing" };
    const now = Date.now();
    const report = await this.expire(now, days, true);
    const due = report.more ? now : this.retentionDueMs(days);
    if (due !== null) await this.scheduleFlush(due);
    return report;
  }

  /**
   * Removes the conversations this object owns that started more than `days` ago from D1 and R2 and
   * from the recent list here: a user's (by user id), or for a `conversation:<id>` object its own
   * unattributed conversation. Counters, first/last call times and facts stay: they are the memory,
   * not the conversations. The last call's summary goes once the last call itself has expired.
   */
  private async expire(nowMs: number, days: number, force: boolean): Promise<RetentionReport> {
    const nowSec = Math.floor(nowMs / 1000);
    const cutoff = nowSec - days * 86_400;
    const anchor = this.sql.exec<{ a: number | null }>("SELECT retention_anchor AS a FROM upkeep WHERE id = 1").one().a;
    if (!force && (anchor === null || anchor >= cutoff)) return { counts: zeroCounts(), more: false };
    const owner = this.sql.exec<{ u: string | null }>("SELECT user_id AS u FROM profile WHERE id = 1").one().u;
    // Unattributed conversations: only the ones this object recorded (never "every row without a user").
    const own =
      owner === null
        ? this.sql
            .exec<{ conversation_id: string }>("SELECT conversation_id FROM seen WHERE kind = 'post_call_transcription' LIMIT ?", LIMITS.eraseBatch)
            .toArray()
            .map((r) => r.conversation_id)
        : [];
    const select = (limit: number) =>
      owner !== null
        ? this.env.DB.prepare("SELECT conversation_id FROM conversations WHERE user_id = ? AND started_at < ? ORDER BY started_at LIMIT ?").bind(
            owner,
            cutoff,
            limit,
          )
        : this.env.DB.prepare(
            `SELECT conversation_id FROM conversations WHERE conversation_id IN (${own.map(() => "?").join(", ")})
             AND user_id IS NULL AND started_at < ? LIMIT ?`,
          ).bind(...own, cutoff, limit);
    if (owner === null && own.length === 0) {
      this.sql.exec("UPDATE upkeep SET retention_anchor = NULL WHERE id = 1");
      return { counts: zeroCounts(), more: false };
    }
    let counts = zeroCounts();
    let drained = false;
    for (let batch = 0; batch < LIMITS.eraseBatchesPerCall; batch++) {
      const { results } = await select(LIMITS.eraseBatch).all<{ conversation_id: string }>();
      if (results.length > 0) {
        // A `conversation:<id>` object is itself where its audio link lives: forgetting it through a call
        // to itself would wipe this object under the run. It is forgotten below, once the run is done.
        const forget = owner === null ? undefined : this.forgetAudio;
        counts = addCounts(counts, await eraseConversations(this.env.DB, this.env.AUDIO, results.map((r) => r.conversation_id), owner, forget));
      }
      if (results.length < LIMITS.eraseBatch) {
        drained = true;
        break;
      }
    }
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM conversations WHERE started_at < ?", cutoff);
      this.sql.exec("UPDATE profile SET last_call_summary = NULL WHERE id = 1 AND last_call_at < ?", cutoff);
    });
    if (!drained) return { counts, more: true };
    const oldest =
      owner !== null
        ? await this.env.DB.prepare("SELECT min(started_at) AS m FROM conversations WHERE user_id = ?").bind(owner).first<{ m: number | null }>()
        : await this.env.DB.prepare(
            `SELECT min(started_at) AS m FROM conversations WHERE conversation_id IN (${own.map(() => "?").join(", ")}) AND user_id IS NULL`,
          )
            .bind(...own)
            .first<{ m: number | null }>();
    if (owner === null && (oldest?.m ?? null) === null && counts.conversations > 0) {
      // Its conversation has expired: nothing this object holds is worth keeping (as after an erasure).
      for (const id of own) await this.forgetConversation(id);
      return { counts, more: false };
    }
    this.sql.exec("UPDATE upkeep SET retention_anchor = ? WHERE id = 1", oldest?.m ?? null);
    return { counts, more: false };
  }

  // ---- erasure ---------------------------------------------------------------------------------

  /**
   * One step of erasing this user everywhere (DELETE /v1/users/:userId). Call until `done`.
   *
   * Order, so that a crash at any point can be retried to completion: (1) freeze this object (no
   * more deliveries; the alarm is cancelled); (2) undo phone links, the truth in the number's object
   * before the reverse entry here; (3) erase conversations still in the outbox (they may be half
   * delivered); (4) erase every conversation D1 attributes to this user, R2 before D1 rows; (5) wipe
   * this object last, because until then it is what names the links and pending conversations.
   */
  async erase(userId: string): Promise<EraseStep> {
    const now = Math.floor(Date.now() / 1000);
    const step: EraseStep = { done: false, counts: zeroCounts(), phoneLinks: 0, unlinkedPhoneNumbers: [], memoryRows: 0 };
    const db = this.env.DB;
    if (this.hasSchema()) {
      this.sql.exec("UPDATE upkeep SET erasing_since = coalesce(erasing_since, ?) WHERE id = 1", now);
      await this.ctx.storage.deleteAlarm();
      while (this.flushing) await this.flushing.catch(() => {});

      const phones = this.sql
        .exec<{ phone_number: string }>("SELECT phone_number FROM phones ORDER BY phone_number LIMIT ?", LIMITS.unlinkBatch)
        .toArray();
      for (const { phone_number: phone } of phones) {
        const { removed } = await userMemory(this.env, phone).clearOwner(userId, now, "erasure");
        if (removed) step.phoneLinks++;
        step.counts.call_failures += await eraseCallFailures(db, [phone]);
        this.sql.exec("DELETE FROM phones WHERE phone_number = ?", phone);
        step.unlinkedPhoneNumbers.push(phone);
      }
      if (phones.length === LIMITS.unlinkBatch) return step;

      const owner = this.ownerRow();
      if (owner?.user_id) {
        this.sql.exec("UPDATE phone_owner SET user_id = NULL, linked_at = max(linked_at, ?), via = 'erasure' WHERE id = 1", now);
        await userMemory(this.env, owner.user_id).removePhone(userId, now);
        step.phoneLinks++;
      }

      const pending = this.sql
        .exec<{ conversation_id: string }>("SELECT DISTINCT conversation_id FROM outbox WHERE kind = 'conversation'")
        .toArray()
        .map((r) => r.conversation_id);
      if (pending.length > 0) {
        step.counts = addCounts(step.counts, await eraseConversations(db, this.env.AUDIO, pending, userId, this.forgetAudio, true));
        this.ctx.storage.transactionSync(() => {
          this.sql.exec("DELETE FROM outbox_blobs WHERE seq IN (SELECT seq FROM outbox WHERE kind = 'conversation')");
          this.sql.exec("DELETE FROM outbox WHERE kind = 'conversation'");
        });
      }
    }
    // A user id that is a phone number: the call failures recorded for that number are theirs too.
    if (normalisePhone(userId) === userId) step.counts.call_failures += await eraseCallFailures(db, [userId]);

    for (let batch = 0; batch < LIMITS.eraseBatchesPerCall; batch++) {
      const { results } = await db
        .prepare("SELECT conversation_id FROM conversations WHERE user_id = ? LIMIT ?")
        .bind(userId, LIMITS.eraseBatch)
        .all<{ conversation_id: string }>();
      if (results.length > 0) {
        step.counts = addCounts(step.counts, await eraseConversations(db, this.env.AUDIO, results.map((r) => r.conversation_id), userId, this.forgetAudio, true));
      }
      if (results.length < LIMITS.eraseBatch) {
        step.done = true;
        break;
      }
    }
    if (!step.done) return step;
    if (this.hasSchema()) step.memoryRows = this.countRows();
    await this.wipe();
    return step;
  }

  private countRows(): number {
    const tables = this.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")
      .toArray();
    let n = 0;
    for (const { name } of tables) n += this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${name.replace(/"/g, '""')}"`).one().n;
    return n;
  }

  /** Drops every table and the alarm. In SQLite-backed objects deleteAll() drops the tables too. */
  private async wipe(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.schemaReady = false;
  }
}
