/**
 * What crosses the boundary between the Worker and the Durable Objects: the arguments and answers
 * of their RPC methods. Stubs are typed by class (src/memory/objects.ts, from the bindings wrangler
 * generates), so a method of one class cannot be asked of another; these are the shapes they carry.
 * Types only: importing this file runs no object code.
 */
import type { EraseCounts } from "../storage/erase";

export interface RecordResult {
  duplicate: boolean;
  /**
   * Set (and nothing recorded) when a conversation identified only by its phone number reached the
   * number's object and that number is linked to an app user: record it there instead.
   */
  linkedTo?: string;
  /** Acknowledged and dropped: the event belongs to an erasure (src/objects/shared/tombstone.ts). */
  dropped?: "erased";
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
  /** The erasure this step belongs to (its record: GET /v1/erasures/:id). */
  erasureId: string;
  /** The user's memories with agents (MEMORY_SCOPE="agent") erased to completion in this step. */
  scopes: number;
  /** user.erased events handed to FORWARD_QUEUE in this step (one per subscribed destination, once per erasure). */
  forwarded: number;
}

export interface EraseOptions {
  /** ERASE_AT_ELEVENLABS, as the DELETE found it: every erased conversation is also deleted at ElevenLabs. */
  atSource: boolean;
  /**
   * Set when this object is erased as part of another's erasure (a user's memory with one agent, by
   * the user's own object): that erasure's id. Such a step keeps no record and announces nothing:
   * the user's own object does both, once.
   */
  partOf?: string;
}

export interface RetentionReport {
  counts: EraseCounts;
  /** More expired conversations remain (the alarm is re-armed to continue at once). */
  more: boolean;
  /** Why nothing was done: retention is off, the object holds no memory, or an erasure is under way. */
  skipped?: "off" | "no_memory" | "erasing";
}

export type OwnerRow = {
  phone_number: string;
  /** null: unlinked (a tombstone that keeps `linked_at`). */
  user_id: string | null;
  linked_at: number;
  via: string;
  conversation_id: string | null;
};

/** Everything a user's memory holds, as stored (times in Unix seconds). */
export interface MemoryView {
  /** Agents this user has a memory with under MEMORY_SCOPE="agent" (registered here; erasure erases them all). */
  scopes?: string[];
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
    has_audio: boolean;
  }[];
  facts: {
    fact_id: string;
    value: string;
    conversation_id: string;
    collected_at: number;
    updated_at: number;
    /** When this value was first collected (it has been true since). */
    valid_from: number | null;
    /** Earlier values, newest first, with the time range each was true (src/objects/user-memory/facts.ts). */
    history: { value: string; conversation_id: string | null; valid_from: number; valid_to: number }[];
  }[];
  phones: { phone_number: string; linked_at: number; via: string; conversation_id: string | null }[];
  owner: OwnerRow | null;
  pendingDeliveries: number;
  erasingSince: number | null;
  /** Unix seconds of the oldest conversation retention may still have to remove, or null. */
  retentionAnchor: number | null;
  /** The recall index (src/objects/user-memory/recall-index.ts); `backfillIndexed`: null when no backfill is pending. */
  recallIndex: { conversations: number; documents: number; bytes: number; backfillIndexed: number | null };
}

export interface FlushReport {
  delivered: number;
  failed: number;
  pending: number;
}

export interface OutboxStatus {
  pending: number;
  /** Items whose next attempt is due now. */
  due: number;
  /** Largest number of failed attempts of any pending item (0 when none has failed). */
  maxAttempts: number;
  /** Unix seconds when the oldest pending item was queued, or null. */
  oldestCreatedAt: number | null;
  /** Pending items by kind. */
  byKind: Record<string, number>;
  /** Items that failed at least STUCK_ATTEMPTS times: delivery keeps trying them, an operator should look. */
  stuck: { seq: number; kind: string; conversationId: string; attempts: number; nextAttemptAt: number; lastError: string | null }[];
}

/** One flush of an isolate's health tallies (src/memory/health-counts.ts). */
export interface CountBatch {
  /** `[hour start (Unix seconds), metric, key, n]`. */
  counts: [number, string, string, number][];
  /** The latest accepted event of each type seen by the isolate since its last flush. */
  last: { type: string; at: number; conversationId: string | null }[];
}

/** An object's outbox, reported when a delivery run failed or an earlier failure has recovered. */
export interface BacklogReport {
  /** The reporting object's name (`user:...`, `conversation:...`). */
  object: string;
  pending: number;
  oldestCreatedAt: number | null;
  maxAttempts: number;
  lastError: string | null;
  /** Unix seconds. */
  at: number;
}

export interface StatsView {
  window24h: { metric: string; key: string; n: number }[];
  window30d: { metric: string; key: string; n: number }[];
  /** Refusals per hour over the last 24 hours. */
  hourly: { hour: number; metric: string; key: string; n: number }[];
  last: { type: string; at: number; conversation_id: string | null }[];
  backlog: {
    objects: number;
    pending: number;
    oldestCreatedAt: number | null;
    maxAttempts: number;
    /** Reports not refreshed for STALE_REPORT_SECONDS: the object recovered unheard, or its alarm stopped. */
    stale: number;
    /** Reports refused because MAX_BACKLOG objects were already listed. */
    dropped: number;
    worst: { object: string; pending: number; oldest_created_at: number | null; max_attempts: number; last_error: string | null; reported_at: number }[];
  };
  /** How many flushes this object took and the rows they wrote (bounded writes, tested). */
  writes: { flushes: number; rowsWritten: number };
}

/** What an audio backfill did (src/objects/conversation-ledger/audio-backfill.ts). */
export type BackfillOutcome =
  /** The audio was fetched, stored and linked. */
  | { status: "stored"; bytes: number; sha256: string }
  /** Audio was already linked (the webhook brought it, or an earlier backfill). */
  | { status: "already_stored"; bytes: number; sha256: string }
  /** ElevenLabs has no audio for this conversation (404). */
  | { status: "unavailable" }
  /** No ELEVENLABS_API_KEY: nothing was fetched. */
  | { status: "not_configured" }
  /** The conversation was erased: its audio is never fetched back. */
  | { status: "dropped"; reason: "erased" }
  /** The API failed (after its retries) or the stream broke off: nothing was kept (on demand only; the outbox retries). */
  | { status: "failed"; reason: string };

/** A history import (src/objects/history-import/imports.ts). */
export interface ImportSpec {
  importId: string;
  agentId: string;
  /** Unix seconds: only conversations that started after it. */
  since: number | null;
  includeAudio: boolean;
}

export type ImportState = "running" | "done" | "failed";

export interface ImportStatus {
  import_id: string;
  agent_id: string;
  since: string | null;
  include_audio: boolean;
  status: ImportState;
  /** Imported user ids are vouched for by the operator who started the import (README). */
  identity: "operator_trusted";
  pages: number;
  /** Conversations listed by the API so far. */
  seen: number;
  imported: number;
  /** Already stored (by an earlier import or a webhook): not counted again. */
  skipped: number;
  /** Listed but not finished at ElevenLabs (in progress, processing): their webhook will bring them. */
  unfinished: number;
  failed: number;
  failures: { conversation_id: string; reason: string }[];
  /** Why the import stopped or is waiting (a failed page), without the API key. */
  last_error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

/**
 * What a `conversation:<id>` object written before Core v3 (a UserMemory) holds, handed over to its
 * ConversationLedger on first touch (src/objects/conversation-ledger/legacy.ts).
 */
export interface LegacyConversation {
  /** Rows in all (0: nothing but perhaps a tombstone). */
  rows: number;
  seen: { kind: string; conversation_id: string; received_at: number }[];
  audio: { conversation_id: string; agent_id: string | null; r2_key: string; bytes: number; sha256: string; received_at: number }[];
  outbox: { seq: number; kind: string; conversation_id: string; body: string; attempts: number; next_attempt_at: number; last_error: string | null; created_at: number }[];
  blobs: { seq: number; part: number; data: ArrayBuffer }[];
  retentionAnchor: number | null;
  tombstone: { erasedAt: number | null; unlinkedAt: number | null; expiresAt: number } | null;
}

/** What an `import:<id>` object written before Core v3 holds, handed over to its HistoryImport. */
export interface LegacyImport {
  job: Record<string, string | number | null>;
  queue: { position: number; conversation_id: string; attempts: number }[];
  failures: { conversation_id: string; reason: string; at: number }[];
}

/** Who said a recalled text (src/objects/user-memory/recall-index.ts). */
/** Who said a recall hit's text; `exchange`: a short turn with the other side's turn before it, each prefixed with its speaker. */
export type Speaker = "user" | "agent" | "summary" | "fact" | "exchange";

/** One recall result (POST /tools/recall). */
export interface RecallHit {
  conversation_id: string | null;
  at: number;
  title: string | null;
  speaker: Speaker;
  text: string;
  score: number;
}
