/**
 * What the agent remembers of a user: the `profile` counters, the recent `conversations` list and
 * `facts`, and how they are read back (the snapshot behind the dynamic variables). Every function
 * takes the object's SqlStorage; writers run inside the caller's transaction.
 */
import type { VariableValue } from "../../lib/config";
import type { MemoryRecord } from "../../records/payload";
import type { MemoryView } from "../../memory/rpc";
import { allHistory, compactFacts, rememberFacts } from "./facts";
import { forgetBefore as forgetIndexBefore } from "./recall-index";
import { LIMITS } from "../shared/limits";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "../../memory/variables";

const isScalar = (v: unknown): v is VariableValue =>
  typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));

/**
 * Updates profile counters, the recent-conversation list and facts. Returns what compaction needs to
 * know: the call count after this call, and whether the facts may be over their bound.
 */
export function remember(sql: SqlStorage, r: MemoryRecord, now: number): { calls: number; factsOver: boolean } {
  const calls =
    sql
      .exec<{ n: number }>(
    `UPDATE profile SET
       user_id = coalesce(user_id, ?),
       call_count = call_count + 1,
       total_duration_secs = total_duration_secs + ?,
       first_call_at = min(coalesce(first_call_at, ?), ?),
       last_conversation_id = CASE WHEN last_call_at IS NULL OR ? >= last_call_at THEN ? ELSE last_conversation_id END,
       last_call_summary = CASE WHEN last_call_at IS NULL OR ? >= last_call_at THEN ? ELSE last_call_summary END,
       last_call_at = max(coalesce(last_call_at, ?), ?),
       updated_at = ?
     WHERE id = 1 RETURNING call_count AS n`,
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
  )
      .toArray()[0]?.n ?? 0;
  sql.exec(
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
  return { calls, factsOver: rememberFacts(sql, r, now) };
}

/**
 * Keeps the memory bounded however many calls a user makes; counters stay exact. Runs on every
 * event, so each step runs only when it may delete: the recent list is trimmed only once the exact
 * call count (`remember`'s) says it can be over its bound, facts only when their count may be.
 */
export function compact(sql: SqlStorage, { calls, factsOver }: { calls: number; factsOver: boolean }): void {
  if (calls > LIMITS.recentConversations) {
    sql.exec(
      `DELETE FROM conversations WHERE rowid IN
         (SELECT rowid FROM conversations ORDER BY started_at DESC, conversation_id DESC LIMIT -1 OFFSET ?)`,
      LIMITS.recentConversations,
    );
  }
  if (factsOver) compactFacts(sql);
}

/** One of the recent conversations has audio (whichever of audio and transcript came second says so). */
export function markAudio(sql: SqlStorage, conversationId: string): void {
  sql.exec("UPDATE conversations SET has_audio = 1 WHERE conversation_id = ?", conversationId);
}

/** Retention: conversations that started before `cutoff` leave the recent list; so does the last summary once its call has. */
export function forgetBefore(sql: SqlStorage, cutoff: number): void {
  sql.exec("DELETE FROM conversations WHERE started_at < ?", cutoff);
  sql.exec("UPDATE profile SET last_call_summary = NULL WHERE id = 1 AND last_call_at < ?", cutoff);
  forgetIndexBefore(sql, cutoff);
}

/** The app user this object's memory belongs to (null for a conversation's own object). */
export function profileUser(sql: SqlStorage): string | null {
  return sql.exec<{ u: string | null }>("SELECT user_id AS u FROM profile WHERE id = 1").toArray()[0]?.u ?? null;
}

/** What the next conversation needs: counters, recent topics and scalar facts. */
export function readSnapshot(sql: SqlStorage): MemorySnapshot {
  const p = sql
    .exec<{ call_count: number; last_call_at: number | null; last_call_summary: string | null }>(
      "SELECT call_count, last_call_at, last_call_summary FROM profile WHERE id = 1",
    )
    .toArray()[0];
  if (!p) return EMPTY_SNAPSHOT;
  const recent = sql
    .exec<{ title: string | null; summary: string | null }>(
      "SELECT title, summary FROM conversations ORDER BY started_at DESC, conversation_id DESC LIMIT ?",
      LIMITS.topicConversations,
    )
    .toArray();
  const facts = sql
    // Newest first: the context's byte budget keeps the newest facts (src/memory/variables.ts).
    .exec<{ fact_id: string; value: string }>("SELECT fact_id, value FROM facts ORDER BY collected_at DESC, fact_id")
    .toArray()
    .map((f) => ({ id: f.fact_id, value: JSON.parse(f.value) as unknown }))
    .filter((f): f is { id: string; value: VariableValue } => isScalar(f.value));
  return { callCount: p.call_count, lastCallAt: p.last_call_at, lastCallSummary: p.last_call_summary, recent, facts };
}

/** The profile, recent list and facts as stored. */
export function readMemory(sql: SqlStorage): Pick<MemoryView, "profile" | "conversations" | "facts"> {
  return {
    profile: sql
      .exec<MemoryView["profile"]>(
        `SELECT user_id, call_count, total_duration_secs, first_call_at, last_call_at, last_conversation_id,
           last_call_summary, created_at, updated_at FROM profile WHERE id = 1`,
      )
      .one(),
    conversations: sql
      .exec<Omit<MemoryView["conversations"][number], "has_audio"> & { has_audio: number }>(
        `SELECT conversation_id, started_at, duration_secs, title, summary, outcome, received_at, has_audio
         FROM conversations ORDER BY started_at DESC, conversation_id DESC`,
      )
      .toArray()
      .map((c) => ({ ...c, has_audio: c.has_audio === 1 })),
    facts: factsWithHistory(sql),
  };
}

function factsWithHistory(sql: SqlStorage): MemoryView["facts"] {
  const history = allHistory(sql);
  return sql
    .exec<Omit<MemoryView["facts"][number], "history">>(
      "SELECT fact_id, value, conversation_id, collected_at, updated_at, valid_from FROM facts ORDER BY fact_id",
    )
    .toArray()
    .map((f) => ({ ...f, history: history.get(f.fact_id) ?? [] }));
}
