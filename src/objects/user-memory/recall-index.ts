/**
 * The recall index: a per-memory full-text index (SQLite FTS5, in this Durable Object) of the user's
 * stored conversations, their titles and summaries, and facts (current values and old ones,
 * src/objects/user-memory/facts.ts). POST /tools/recall searches it (src/objects/user-memory/recall.ts).
 *
 * Tables (docs/storage.md): `recall_docs` holds one row per indexed text: a window of consecutive
 * lines of a conversation (src/records/recall-windows.ts: about 300 words; its title, its summary,
 * then a line per turn; `speakers` a letter per line), or a fact value. `recall_index` is an
 * external-content FTS5 table over `recall_docs.body`, kept in step by two triggers, so deleting a
 * doc row removes it from the index in the same statement. `recall_conversations` says which
 * conversations are indexed (once, whether by the webhook or the backfill), with their size for the
 * bounds and the range of doc ids their documents hold (`first_doc`..`last_doc`: the documents of a
 * conversation are inserted by one statement, so their ids follow each other), which is how they are
 * found again without an index on `recall_docs.conversation_id`.
 *
 * Schema version 4 indexed a document per turn (`format` 1, no doc range): the backfill
 * (recall-backfill.ts) re-indexes those conversations as windows, in its bounded alarm runs; until
 * then they are searched as they are.
 *
 * Written inside the transaction that records the conversation, in three statements. Bounded: the
 * first LIMITS.recallTurnsPerConversation turns, LIMITS.recallDocChars characters each, and at most
 * LIMITS.recallBytesPerMemory bytes of text per memory (the oldest conversations leave first).
 */
import { LIMITS } from "../shared/limits";
import { windowsOf, type Letter, type Window } from "../../records/recall-windows";

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

/** recall_conversations.format: 1 a document per turn (schema version 4), 2 windows. */
const WINDOWS = 2;

const clipDoc = (text: string) => (text.length <= LIMITS.recallDocChars ? text : text.slice(0, LIMITS.recallDocChars));

export function isIndexed(sql: SqlStorage, conversationId: string): boolean {
  return sql.exec("SELECT 1 FROM recall_conversations WHERE conversation_id = ?", conversationId).toArray().length > 0;
}

/**
 * The documents of a conversation: its title, its summary and its turns, a line each, in windows
 * (the first window starts with the title and summary: a document less per call, and a short
 * call is one document).
 */
function documentsOf(c: IndexableConversation): Window[] {
  const heading: [Letter, string][] = [["s", clipDoc((c.title ?? "").trim())], ["s", clipDoc((c.summary ?? "").trim())]];
  const turns = c.turns
    .slice(0, LIMITS.recallTurnsPerConversation)
    .map((t): [Letter, string] => [t.role === "user" ? "u" : "a", t.message === null ? "" : clipDoc(t.message.trim())]);
  return windowsOf([...heading, ...turns]);
}

/**
 * Indexes a conversation unless it already is (a webhook and the backfill may both bring it); one
 * indexed a document per turn (schema version 4) is indexed again, as windows. Returns the
 * documents written in recall_docs (each also writes the FTS index through its trigger). The caller
 * runs it inside its transaction.
 */
export function indexConversation(sql: SqlStorage, c: IndexableConversation): number {
  const docs = documentsOf(c);
  const bytes = docs.reduce((n, d) => n + d.body.length, 0);
  // The row first, with the doc ids the documents will take (the next ones: see the header); an
  // existing row means indexed already, and costs no statement more than asking would.
  const claim = () =>
    sql
      .exec(
        `INSERT OR IGNORE INTO recall_conversations (conversation_id, started_at, title, docs, bytes, first_doc, last_doc, format)
         SELECT ?, ?, ?, ?, ?, m + 1, m + ?, ${WINDOWS} FROM (SELECT coalesce(max(doc_id), 0) AS m FROM recall_docs) RETURNING 1`,
        c.conversationId, c.startedAt, c.title, docs.length, bytes, docs.length,
      )
      .toArray().length > 0;
  if (!claim()) {
    const format = sql.exec<{ f: number }>("SELECT format AS f FROM recall_conversations WHERE conversation_id = ?", c.conversationId).one().f;
    if (format === WINDOWS) return 0;
    forgetConversation(sql, c.conversationId);
    claim();
  }
  if (docs.length > 0) {
    // One statement for every document of the call (json_each walks the array in order).
    sql.exec(
      `INSERT INTO recall_docs (conversation_id, speaker, at, body, speakers)
       SELECT ?, 'turns', ?, json_extract(value, '$[1]'), json_extract(value, '$[0]') FROM json_each(?) ORDER BY key`,
      c.conversationId,
      c.startedAt,
      JSON.stringify(docs.map((d) => [d.speakers, d.body])),
    );
  }
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

type Gone = { b: number | null; first: number | null; last: number | null; id: string };

/**
 * Deletes the documents of conversations whose recall_conversations rows were just deleted, unless
 * `rangesDone` (their windows are gone already); facts they set stay: they are memory.
 */
function dropDocuments(sql: SqlStorage, gone: Gone[], rangesDone = false): void {
  let bytes = 0;
  for (const g of gone) {
    bytes += g.b ?? 0;
    if (g.first !== null && g.last !== null) {
      if (!rangesDone && g.last >= g.first) sql.exec("DELETE FROM recall_docs WHERE doc_id BETWEEN ? AND ? AND fact_id IS NULL", g.first, g.last);
    } else {
      // Indexed a document per turn (schema version 4): such an object still has recall_docs_by_conversation.
      sql.exec("DELETE FROM recall_docs WHERE conversation_id = ? AND fact_id IS NULL", g.id);
    }
  }
  if (bytes > 0) sql.exec("UPDATE upkeep SET recall_bytes = max(0, recall_bytes - ?) WHERE id = 1", bytes);
}

const GONE = "RETURNING bytes AS b, first_doc AS first, last_doc AS last, conversation_id AS id";

/** Removes a conversation's turns, title and summary from the index. */
export function forgetConversation(sql: SqlStorage, conversationId: string): void {
  dropDocuments(sql, sql.exec<Gone>(`DELETE FROM recall_conversations WHERE conversation_id = ? ${GONE}`, conversationId).toArray());
}

/** Retention: conversations that started before `cutoff` leave the index with the recent list (their windows in one statement). */
export function forgetBefore(sql: SqlStorage, cutoff: number): void {
  sql.exec(
    `DELETE FROM recall_docs WHERE doc_id IN (SELECT d.doc_id FROM recall_conversations c
       JOIN recall_docs d ON d.doc_id BETWEEN c.first_doc AND c.last_doc WHERE c.started_at < ? AND d.fact_id IS NULL)`,
    cutoff,
  );
  dropDocuments(sql, sql.exec<Gone>(`DELETE FROM recall_conversations WHERE started_at < ? ${GONE}`, cutoff).toArray(), true);
}

export interface FactDocument {
  factId: string;
  conversationId: string | null;
  at: number;
  body: string;
}

/** Replaces the index's documents of some facts (`factIds`, a JSON array: their current values and old ones), in two statements. */
export function indexFacts(sql: SqlStorage, factIds: string, docs: FactDocument[]): void {
  sql.exec("DELETE FROM recall_docs WHERE fact_id IN (SELECT value FROM json_each(?))", factIds);
  if (docs.length === 0) return;
  sql.exec(
    `INSERT INTO recall_docs (conversation_id, speaker, at, body, fact_id)
     SELECT value ->> 0, 'fact', value ->> 1, value ->> 2, value ->> 3 FROM json_each(?) ORDER BY key`,
    JSON.stringify(docs.map((d) => [d.conversationId, d.at, clipDoc(d.body), d.factId])),
  );
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
