/**
 * The recall index: a per-memory full-text index (SQLite FTS5, in this Durable Object) of every turn
 * of the user's stored conversations, their titles and summaries, and facts (current values and old
 * ones, src/objects/user-memory/facts.ts). POST /tools/recall searches it (src/objects/user-memory/recall.ts).
 *
 * Tables (docs/storage.md): `recall_docs` holds one row per indexed text (a turn, a title, a
 * summary, a fact value); `recall_index` is an external-content FTS5 table over `recall_docs.body`,
 * kept in step by two triggers, so deleting a doc row removes it from the index in the same
 * statement; `recall_conversations` says which conversations are indexed (a conversation is indexed
 * once, whether by its webhook or by the backfill) with their size, for the bounds.
 *
 * Written inside the transaction that records the conversation. Bounded: the first
 * LIMITS.recallTurnsPerConversation turns, LIMITS.recallDocChars characters each, and at most
 * LIMITS.recallBytesPerMemory bytes of text per memory (the oldest conversations leave first).
 */
import { LIMITS } from "../shared/limits";

export interface IndexableTurn {
  role: string;
  message: string | null;
}

export interface IndexableConversation {
  conversationId: string;
  startedAt: number;
  title: string | null;
  summary: string | null;
  turns: IndexableTurn[];
}

/** Who said an indexed text, as recall reports it. */
import type { Speaker } from "../../memory/rpc";
export type { Speaker };

const clipDoc = (text: string) => (text.length <= LIMITS.recallDocChars ? text : text.slice(0, LIMITS.recallDocChars));

const speakerOf = (role: string): Speaker => (role === "user" ? "user" : "agent");

export function isIndexed(sql: SqlStorage, conversationId: string): boolean {
  return sql.exec("SELECT 1 FROM recall_conversations WHERE conversation_id = ?", conversationId).toArray().length > 0;
}

/**
 * Indexes a conversation unless it already is (a webhook and the backfill may both bring it).
 * Returns the rows written in recall_docs (each also writes the FTS index through its trigger).
 * The caller runs it inside its transaction.
 */
export function indexConversation(sql: SqlStorage, c: IndexableConversation): number {
  if (isIndexed(sql, c.conversationId)) return 0;
  const docs: [Speaker, string][] = [];
  let bytes = 0;
  const add = (speaker: Speaker, text: string | null) => {
    const body = text === null ? "" : clipDoc(text.trim());
    if (body === "") return;
    docs.push([speaker, body]);
    bytes += body.length;
  };
  add("summary", c.title);
  add("summary", c.summary);
  // Turns last and in order, so a turn's previous turn is the doc just before it (recall shows it as context).
  for (const t of c.turns.slice(0, LIMITS.recallTurnsPerConversation)) add(speakerOf(t.role), t.message);
  if (docs.length > 0) {
    // One statement for every doc of the call (json_each walks the array in order, so doc ids follow
    // the turns): a statement per turn cost more in calls into SQLite than in the inserts themselves.
    sql.exec(
      `INSERT INTO recall_docs (conversation_id, speaker, at, body)
       SELECT ?, json_extract(value, '$[0]'), ?, json_extract(value, '$[1]') FROM json_each(?) ORDER BY key`,
      c.conversationId,
      c.startedAt,
      JSON.stringify(docs),
    );
  }
  sql.exec(
    "INSERT INTO recall_conversations (conversation_id, started_at, title, docs, bytes) VALUES (?, ?, ?, ?, ?)",
    c.conversationId,
    c.startedAt,
    c.title,
    docs.length,
    bytes,
  );
  trimToBound(sql, bytes);
  return docs.length;
}

/** Drops the oldest conversations from the index while it holds more than LIMITS.recallBytesPerMemory. */
function trimToBound(sql: SqlStorage, added: number): void {
  let total = sql.exec<{ b: number }>("UPDATE upkeep SET recall_bytes = recall_bytes + ? WHERE id = 1 RETURNING recall_bytes AS b", added).toArray()[0]?.b ?? 0;
  while (total > LIMITS.recallBytesPerMemory) {
    const oldest = sql
      .exec<{ conversation_id: string }>("SELECT conversation_id FROM recall_conversations ORDER BY started_at, conversation_id LIMIT 1")
      .toArray()[0];
    if (!oldest) return;
    forgetConversation(sql, oldest.conversation_id);
    total = sql.exec<{ b: number }>("SELECT recall_bytes AS b FROM upkeep WHERE id = 1").one().b;
  }
}

/** Removes a conversation's turns, title and summary from the index (facts it set stay: they are memory). */
export function forgetConversation(sql: SqlStorage, conversationId: string): void {
  sql.exec("DELETE FROM recall_docs WHERE conversation_id = ? AND fact_id IS NULL", conversationId);
  const gone = sql.exec<{ b: number }>("DELETE FROM recall_conversations WHERE conversation_id = ? RETURNING bytes AS b", conversationId).toArray()[0];
  if (gone) sql.exec("UPDATE upkeep SET recall_bytes = max(0, recall_bytes - ?) WHERE id = 1", gone.b);
}

/** Retention: conversations that started before `cutoff` leave the index with the recent list. */
export function forgetBefore(sql: SqlStorage, cutoff: number): void {
  sql.exec(
    `DELETE FROM recall_docs WHERE fact_id IS NULL AND conversation_id IN
       (SELECT conversation_id FROM recall_conversations WHERE started_at < ?)`,
    cutoff,
  );
  const gone = sql.exec<{ b: number | null }>("DELETE FROM recall_conversations WHERE started_at < ? RETURNING bytes AS b", cutoff).toArray();
  const bytes = gone.reduce((n, r) => n + (r.b ?? 0), 0);
  if (bytes > 0) sql.exec("UPDATE upkeep SET recall_bytes = max(0, recall_bytes - ?) WHERE id = 1", bytes);
}

/** Replaces the index's documents of one fact (its current value and its old ones). */
export function indexFact(sql: SqlStorage, factId: string, docs: { conversationId: string | null; at: number; body: string }[]): void {
  sql.exec("DELETE FROM recall_docs WHERE fact_id = ?", factId);
  for (const d of docs) {
    sql.exec(
      "INSERT INTO recall_docs (conversation_id, speaker, at, body, fact_id) VALUES (?, 'fact', ?, ?, ?)",
      d.conversationId,
      d.at,
      clipDoc(d.body),
      factId,
    );
  }
}

/** Removes every document of facts that are no longer kept (facts compaction). */
export function forgetFactsNotIn(sql: SqlStorage): void {
  sql.exec("DELETE FROM recall_docs WHERE fact_id IS NOT NULL AND fact_id NOT IN (SELECT fact_id FROM facts)");
}

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false });

/**
 * The turns of a transcription, from the raw payload the object already receives (it keeps it for
 * the outbox): the memory record carries no turns, so the request path's RPC does not grow by a
 * second copy of the transcript. Only role and message are read; anything malformed is no turn.
 */
export function turnsOfPayload(raw: Uint8Array): IndexableTurn[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(raw));
  } catch {
    return [];
  }
  const transcript = (parsed as { data?: { transcript?: unknown } } | null)?.data?.transcript;
  if (!Array.isArray(transcript)) return [];
  const turns: IndexableTurn[] = [];
  for (const t of transcript) {
    if (turns.length >= LIMITS.recallTurnsPerConversation) break;
    if (t === null || typeof t !== "object") continue;
    const { role, message } = t as { role?: unknown; message?: unknown };
    turns.push({ role: typeof role === "string" ? role : "agent", message: typeof message === "string" ? message : null });
  }
  return turns;
}

/** What the index holds (GET /v1/users/:id/memory `recall_index`). */
export function indexStats(sql: SqlStorage): { conversations: number; documents: number; bytes: number } {
  const c = sql.exec<{ n: number; b: number | null }>("SELECT count(*) AS n, sum(bytes) AS b FROM recall_conversations").one();
  const d = sql.exec<{ n: number }>("SELECT count(*) AS n FROM recall_docs").one();
  return { conversations: c.n, documents: d.n, bytes: c.b ?? 0 };
}
