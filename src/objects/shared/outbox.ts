/**
 * The outbox: what this object still has to hand on to D1, R2 or another object.
 *
 * Why: the webhook is acknowledged as soon as the event is committed here (one round trip, SQLite
 * in the object, durable when the RPC returns). D1, R2 and other objects are written afterwards by
 * the alarm, retried with backoff until they succeed, so an outage delays those copies but never
 * loses an acknowledged event, and never makes ElevenLabs wait on three storage systems.
 *
 * Items are tried in order, but a failed item is pushed into its own future before the next one is
 * read, so an item that can never be delivered never holds back the ones behind it. Nothing is ever
 * dropped: an item that keeps failing is retried every MAX_BACKOFF_MS and reported as stuck.
 *
 * An item may wait for another (`after_seq`: a forwarded event waits until D1 has what it reports).
 * A waiting item is simply not due while the item it follows is still here: it is never attempted,
 * never counted as a failure, and becomes due the moment that item is delivered, so it never waits
 * longer than the item it follows. During a D1 outage the health page therefore shows the source
 * items as `outbox_backlog`, and no forwarding failure.
 *
 * This module is the only one that writes the outbox tables.
 */
import { concatBytes } from "../../lib/bytes";
import type { ForwardEvent } from "../../records/forward-events";
import { normaliseForMemory, parseEnvelope, type MemoryRecord, type ResolvedUser } from "../../records/payload";
import { type CallFailureRecord } from "../../records/call-failure";
import type { AudioLink } from "../../storage/audio";
import type { FlushReport } from "../../memory/rpc";
import { LIMITS } from "./limits";
import { READY } from "./tables";

/**
 * What an outbox row holds. A conversation item keeps only who owns it: the record is rebuilt from
 * the raw bytes (kept in `outbox_blobs`, which go with the item: a trigger) when it is delivered, so the row stays small however large
 * the transcript (SQLite refuses values over 2 MB) and D1 gets exactly what R2 gets.
 */
export type OutboxItem = UserOutboxItem | LedgerOutboxItem;

/** Kinds both classes queue. */
type SharedItem =
  /**
   * The raw payload to R2, the conversation to D1. `startedAt` (the call's start, Unix seconds) is
   * for the outbox_conversation_goes trigger; absent from items queued before memory schema 7.
   */
  | { kind: "conversation"; user: ResolvedUser; receivedAt: number; startedAt?: number }
  /** Hand an event to FORWARD_QUEUE for one destination, once D1 has what it reports (src/objects/shared/forwarding.ts). */
  | { kind: "forward"; event: ForwardEvent; destination: string };

/** What a memory's outbox holds (UserMemory; its handlers: user-memory/deliveries.ts). */
export type UserOutboxItem =
  | SharedItem
  /**
   * A call that started after an erasure of this object began, recorded while it was under way: kept
   * aside (not remembered, not delivered) and remembered anew once the wipe is done (user-memory/erasure.ts).
   */
  | { kind: "deferred"; user: ResolvedUser; receivedAt: number }
  /** Tell the number's object that it belongs to this user (queued by the user's object). */
  | { kind: "link"; phoneNumber: string; userId: string; at: number; conversationId: string }
  /** Tell a former owner that the number is no longer theirs (queued by the number's object). */
  | { kind: "phone_removed"; phoneNumber: string; userId: string; at: number };

/** What a conversation's ledger queues (ConversationLedger; its handlers: conversation-ledger/deliveries.ts). */
export type LedgerOutboxItem =
  | SharedItem
  | { kind: "call_failure"; record: CallFailureRecord; receivedAt: number }
  /** Writes the D1 `audio` row, then tells the user's memory (if the transcript already named one). */
  | { kind: "audio"; link: AudioLink }
  /** Deletes the R2 object of an audio event that turned out to be a redelivery. */
  | { kind: "audio_discard"; key: string }
  /** Fetches the audio from ElevenLabs' API unless an audio webhook brought it first (conversation-ledger/audio.ts). */
  | { kind: "audio_backfill"; conversationId: string; agentId: string | null }
  /** Deletes the erased conversation at ElevenLabs (ERASE_AT_ELEVENLABS; conversation-ledger/source-delete.ts). */
  | { kind: "source_delete"; conversationId: string };

export type OutboxKind = OutboxItem["kind"];

/** First retry after about a second, doubling to a ceiling of 10 minutes (each ±10% jitter). */
export const MAX_BACKOFF_MS = 10 * 60 * 1000;
export { STUCK_ATTEMPTS } from "../../records/limits";
import { STUCK_ATTEMPTS } from "../../records/limits";

export function backoffMs(attempts: number): number {
  const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 20));
  return Math.round(base * (0.9 + Math.random() * 0.2));
}

export interface EnqueueOptions {
  /** When the item is first due (ms); at once by default. */
  dueAtMs?: number;
  /** The item it waits for (its seq): not due while that item is still in the outbox. */
  afterSeq?: number | null;
  /** The item's raw payload (a conversation's event): in the item's own row when it is one part, else in parts. */
  payload?: Uint8Array;
}

/**
 * The outbox's triggers, part of every schema with an outbox (after OUTBOX_TABLES, tables.ts), each
 * doing in the statement that removes an item what has to happen whenever it leaves:
 * - `outbox_payload_goes`: an item's payload parts go with it, whichever way it leaves.
 * - `outbox_conversation_goes`: a conversation item that leaves moves the retention anchor back to
 *   its call's start if that is older (`startedAt`, in the item since memory schema 7 and ledger
 *   schema 3; an item whose body is not JSON, which fails delivery alone, is skipped). It leaves once D1 has the conversation, which is when retention starts counting. It also
 *   leaves when an erasure drops it undelivered; an anchor moved back too far only makes retention
 *   look once and find nothing, never miss a conversation (retention.ts sets it from D1 again).
 *   An item queued before it carried `startedAt` is handled by its delivery (deliveries.ts).
 * Here, beside every other write to the outbox tables (scripts/check-storage-door.mjs).
 */
export const OUTBOX_TRIGGERS = `
CREATE TRIGGER IF NOT EXISTS outbox_payload_goes AFTER DELETE ON outbox BEGIN
  DELETE FROM outbox_blobs WHERE seq = old.seq;
END;
CREATE TRIGGER IF NOT EXISTS outbox_conversation_goes AFTER DELETE ON outbox
  WHEN old.kind = 'conversation' AND (CASE WHEN json_valid(old.body) THEN old.body ->> '$.startedAt' END) IS NOT NULL BEGIN
  UPDATE upkeep SET retention_anchor = min(coalesce(retention_anchor, old.body ->> '$.startedAt'), old.body ->> '$.startedAt') WHERE id = 1;
END;
`;

/** Queues an item. `now` is Unix seconds (created_at); next_attempt_at is in ms. Returns its seq. */
export function enqueue(sql: SqlStorage, item: OutboxItem, conversationId: string, now: number, opts: EnqueueOptions = {}): number {
  const raw = opts.payload;
  // One statement for the usual payload (LIMITS.blobPartBytes holds nearly every transcript); a larger one in parts.
  const inline = raw !== undefined && raw.byteLength > 0 && raw.byteLength <= LIMITS.blobPartBytes;
  const seq = sql
    .exec<{ seq: number }>(
      "INSERT INTO outbox (kind, conversation_id, body, next_attempt_at, created_at, after_seq, payload) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
      item.kind,
      conversationId,
      JSON.stringify(item),
      opts.dueAtMs ?? Date.now(),
      now,
      opts.afterSeq ?? null,
      inline ? bufferOf(raw) : null,
    )
    .one().seq;
  if (raw !== undefined && !inline) attachPayload(sql, seq, raw);
  return seq;
}

/** The bytes of `raw` as an ArrayBuffer of their own (a view's buffer may hold more). */
const bufferOf = (raw: Uint8Array): ArrayBuffer =>
  (raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? raw.buffer : raw.slice().buffer) as ArrayBuffer;

/**
 * Queues `item` due at `dueAtMs`, or, when an item of its kind is already queued for the
 * conversation, only moves that one earlier (never later). Returns when it is due (ms).
 */
export function enqueueOrBringForward(sql: SqlStorage, item: OutboxItem, conversationId: string, now: number, dueAtMs: number): number {
  const queued = sql
    .exec<{ seq: number; next_attempt_at: number }>("SELECT seq, next_attempt_at FROM outbox WHERE kind = ? AND conversation_id = ?", item.kind, conversationId)
    .toArray()[0];
  if (!queued) {
    enqueue(sql, item, conversationId, now, { dueAtMs });
    return dueAtMs;
  }
  if (queued.next_attempt_at <= dueAtMs) return queued.next_attempt_at;
  sql.exec("UPDATE outbox SET next_attempt_at = ? WHERE seq = ?", dueAtMs, queued.seq);
  return dueAtMs;
}

/** Removes every item of `kind` (an erasure drops forwards not yet handed on); returns how many. */
export function dropKind(storage: DurableObjectStorage, kind: OutboxKind): number {
  // Their payloads go with them (the outbox_payload_goes trigger, OUTBOX_TRIGGERS); counted are the items.
  return storage.sql.exec<{ seq: number }>("DELETE FROM outbox WHERE kind = ? RETURNING seq", kind).toArray().length;
}

/**
 * Names, for every forward item that names none, the item it waits for: the oldest item of its
 * source kind for the same conversation (objects written before `after_seq`, and state a ledger
 * took over from the class it replaced). Before, such an item waited by failing.
 */
export function linkWaitingForwards(sql: SqlStorage): void {
  sql.exec(
    `UPDATE outbox SET after_seq = (
       SELECT min(s.seq) FROM outbox s WHERE s.conversation_id = outbox.conversation_id AND s.seq < outbox.seq
         AND s.kind = CASE json_extract(outbox.body, '$.event.type')
           WHEN 'conversation.stored' THEN 'conversation' WHEN 'audio.stored' THEN 'audio' WHEN 'call.failed' THEN 'call_failure' END)
     WHERE kind = 'forward' AND after_seq IS NULL`,
  );
}

/**
 * Writes items taken over from another object (a pre-Core v3 conversation object: ledger/legacy.ts)
 * as they were, same seq, attempts and due time, then names what each forward item waits for.
 */
export function restoreItems(
  sql: SqlStorage,
  rows: { seq: number; kind: string; conversation_id: string; body: string; attempts: number; next_attempt_at: number; last_error: string | null; created_at: number }[],
  blobs: { seq: number; part: number; data: ArrayBuffer }[],
): void {
  for (const o of rows) {
    sql.exec(
      "INSERT INTO outbox (seq, kind, conversation_id, body, attempts, next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      o.seq, o.kind, o.conversation_id, o.body, o.attempts, o.next_attempt_at, o.last_error, o.created_at,
    );
  }
  for (const b of blobs) sql.exec("INSERT INTO outbox_blobs (seq, part, data) VALUES (?, ?, ?)", b.seq, b.part, b.data);
  if (rows.length > 0) linkWaitingForwards(sql);
}


/**
 * Keeps an item's raw payload in parts (Durable Object SQLite refuses values over 2 MB): what
 * `enqueue` does with a payload of more than one part. Exported for tests, which plant such items.
 */
export function attachPayload(sql: SqlStorage, seq: number, raw: Uint8Array): void {
  for (let part = 0, off = 0; off < raw.byteLength; part++, off += LIMITS.blobPartBytes) {
    sql.exec("INSERT INTO outbox_blobs (seq, part, data) VALUES (?, ?, ?)", seq, part, raw.slice(off, off + LIMITS.blobPartBytes).buffer);
  }
}

/** An item's payload, read on its own (a delivery is usually handed it with its row: DueItem.payload). */
export function payloadOf(sql: SqlStorage, seq: number): Uint8Array {
  const parts = sql
    .exec<{ data: ArrayBuffer }>(
      `SELECT -1 AS part, payload AS data FROM outbox WHERE seq = ?1 AND payload IS NOT NULL
       UNION ALL SELECT part, data FROM outbox_blobs WHERE seq = ?1 ORDER BY part`,
      seq,
    )
    .toArray()
    .map((p) => new Uint8Array(p.data));
  return concatBytes(parts);
}

type DueRow = {
  seq: number;
  attempts: number;
  body: string;
  /** The payload when it is one part and the batch read it (see `due`), and how many parts it has (its own row's counts as one). */
  first: ArrayBuffer | null;
  parts: number;
};

export interface DueItem {
  seq: number;
  item: OutboxItem;
  /** The item's raw payload (empty when it has none), read with its row or on first use. */
  payload(): Uint8Array;
}

/** Bytes of payload a batch reads with its rows; past it, an item's payload is read when it is delivered. */
export const PREFETCH_BYTES = 4 * LIMITS.blobPartBytes;

/**
 * The next due items, each with its payload when that is one part (most are: LIMITS.blobPartBytes,
 * in the item's own row) and the batch's running total stays within PREFETCH_BYTES, so that a
 * delivery costs no statement to read it and a batch of large payloads never sits in memory at once:
 * the batch's rows are chosen by their payloads' lengths (which SQLite reads without the bytes), and
 * only those within the bound are read again with their bytes.
 */
function due(sql: SqlStorage, nowMs: number): DueRow[] {
  // The window runs over lengths only (SQLite reads a value's length without its bytes); the bytes of
  // the items within the bound are read by the joins after it.
  return sql
    .exec<DueRow>(
      `SELECT o.seq, o.body, o.attempts, o.parts, CASE WHEN o.within THEN coalesce(x.payload, b.data) END AS first
         FROM (SELECT i.seq, i.body, i.attempts, i.parts, i.inline,
                      i.parts = 1 AND sum(CASE WHEN i.parts = 1 THEN i.bytes END) OVER (ORDER BY i.seq) <= ? AS within
                 FROM (SELECT seq, body, attempts, payload IS NOT NULL AS inline,
                              CASE WHEN payload IS NOT NULL THEN 1 ELSE (SELECT count(*) FROM outbox_blobs p WHERE p.seq = outbox.seq) END AS parts,
                              coalesce(length(payload), (SELECT length(data) FROM outbox_blobs p WHERE p.seq = outbox.seq AND p.part = 0)) AS bytes
                         FROM outbox WHERE next_attempt_at <= ? AND ${READY} ORDER BY seq LIMIT ?) i) o
         LEFT JOIN outbox x ON o.within AND o.inline AND x.seq = o.seq
         LEFT JOIN outbox_blobs b ON o.within AND NOT o.inline AND b.seq = o.seq AND b.part = 0
        ORDER BY o.seq`,
      PREFETCH_BYTES,
      nowMs,
      LIMITS.flushBatch,
    )
    .toArray();
}

/** Removes an item, and with it its payload (the outbox_payload_goes trigger), once delivered. Exported for tests, which also remove an item they planted. */
export function remove(storage: DurableObjectStorage, seq: number): void {
  storage.sql.exec("DELETE FROM outbox WHERE seq = ?", seq);
}

function recordFailure(sql: SqlStorage, row: DueRow, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  const attempt = row.attempts + 1;
  if (attempt >= STUCK_ATTEMPTS) console.error(`outbox item ${row.seq} is stuck after ${attempt} attempts; still retrying: ${message}`);
  else console.warn(`outbox item ${row.seq} failed (attempt ${attempt}): ${message}`);
  sql.exec(
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
    Date.now() + backoffMs(row.attempts),
    message.slice(0, 1000),
    row.seq,
  );
}

/** When the next ready item is due (ms), or null when nothing is ready (a waiting item is due with what it follows). */
export function nextDueAt(sql: SqlStorage): number | null {
  return sql.exec<{ at: number | null }>(`SELECT min(next_attempt_at) AS at FROM outbox WHERE ${READY}`).one().at;
}

export function pendingCount(sql: SqlStorage): number {
  return sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n;
}

/**
 * Delivers every due item with `deliver`, in order, until none is due; returns the report and when
 * the next ready item is due (ms, as nextDueAt). After each batch one statement says both how many
 * items are left and whether one is ready now (a forward item waiting for one just delivered): only
 * then is another batch read.
 */
export async function drain(storage: DurableObjectStorage, deliver: (row: DueItem) => Promise<void>): Promise<{ report: FlushReport; next: number | null }> {
  let delivered = 0;
  let failed = 0;
  for (;;) {
    for (const row of due(storage.sql, Date.now())) {
      try {
        // Parsed here, so that an item that cannot even be read fails alone, like any other.
        const item = JSON.parse(row.body) as OutboxItem;
        const payload = () => (row.parts === 0 ? new Uint8Array(0) : row.first !== null ? new Uint8Array(row.first) : payloadOf(storage.sql, row.seq));
        await deliver({ seq: row.seq, item, payload });
        remove(storage, row.seq);
        delivered++;
      } catch (err) {
        failed++;
        recordFailure(storage.sql, row, err);
      }
    }
    const left = storage.sql
      .exec<{ n: number; at: number | null }>(`SELECT count(*) AS n, min(CASE WHEN ${READY} THEN next_attempt_at END) AS at FROM outbox`)
      .one();
    if (left.at === null || left.at > Date.now()) return { report: { delivered, failed, pending: left.n }, next: left.at };
  }
}

/** Arms the alarm for `at` (ms) unless it is already armed earlier. */
export async function scheduleAlarm(storage: DurableObjectStorage, at: number): Promise<void> {
  const current = await storage.getAlarm();
  if (current === null || current > at) await storage.setAlarm(at);
}

/** Conversation items not yet delivered (erasure removes them with their data). */
export function pendingConversations(sql: SqlStorage): string[] {
  return sql
    .exec<{ conversation_id: string }>("SELECT DISTINCT conversation_id FROM outbox WHERE kind = 'conversation'")
    .toArray()
    .map((r) => r.conversation_id);
}

export interface DeferredConversation {
  record: MemoryRecord;
  raw: Uint8Array;
  receivedAt: number;
}

/** The calls kept aside during an erasure, with their raw payloads (read just before the wipe). */
export function deferredConversations(sql: SqlStorage): DeferredConversation[] {
  return sql
    .exec<{ seq: number; body: string }>("SELECT seq, body FROM outbox WHERE kind = 'deferred' ORDER BY seq")
    .toArray()
    .map((row) => {
      const item = JSON.parse(row.body) as Extract<OutboxItem, { kind: "deferred" }>;
      const raw = payloadOf(sql, row.seq);
      // Rebuilt from the raw bytes with the owner vouched for at receipt, like a conversation item.
      const record = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "", defaultCountryCode: "", nowSeconds: item.receivedAt }, item.user);
      return { record, raw, receivedAt: item.receivedAt };
    });
}

export function dropConversations(storage: DurableObjectStorage): void {
  storage.sql.exec("DELETE FROM outbox WHERE kind = 'conversation'");
}

