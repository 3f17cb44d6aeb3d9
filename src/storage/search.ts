/**
 * Full-text search over every stored transcript (D1 FTS5), newest call first, each hit naming its
 * conversation and turn so the console can link straight to it.
 *
 * The index (`conversations_fts`) is contentless, one document per conversation (its messages): D1
 * finds each shard's most recently stored matching conversations, and the Worker decodes each hit's
 * transcript to find the turn that matches best and cut the snippet (src/records/snippet.ts). The
 * work per request is bounded: at most MAX_HITS hits, SEARCH_BUDGET.blobBytes of transcripts fetched
 * and SEARCH_BUDGET.scanChars of messages scanned; hits past a budget are left out (the newest kept).
 *
 * Why no ranking in D1 (issue 23, measured): FTS5 walks a word's document list from the newest rowid
 * and stops at LIMIT, so a common word costs the same at any history's size, but only for whole words
 * and without `rank`: bm25 counts every document holding the word, and a prefix (`"refund"*`) merges
 * the whole lists of every word it starts. So the words are first looked for whole; the last one is
 * taken as a prefix only when that finds less than a page.
 */
import { bestTurn, MATCH_END, MATCH_START, queryTerms, queryTokens, snippetOf, type Budget } from "../records/snippet";
import { allShards, byStart, mergePages, onEveryShard, type ShardEnv } from "./shards";
import { decodeTranscript, type StoredValue } from "./transcript-codec";

export { MATCH_END, MATCH_START };

export const MAX_HITS = 50;
export const SEARCH_BUDGET = {
  /** Stored (compressed) transcript bytes fetched per request; the first hit is always fetched. */
  blobBytes: 2_000_000,
  /** Characters of messages scanned for the best turn per request. */
  scanChars: 2_000_000,
} as const;

/**
 * Turns what a person typed into an FTS5 query that cannot be a syntax error: each token
 * (`queryTokens`: "e-mail" is two) becomes a quoted one-token phrase, so AND, OR, NEAR, *, : and
 * quotes are just text and the index needs no positions (it is `detail = 'none'`, which refuses
 * phrases of several tokens); all are required, the last one a prefix match (`prefix: false`: a
 * whole word too).
 */
export function ftsQuery(q: string, o: { prefix: boolean } = { prefix: true }): string | null {
  const tokens = queryTokens(q);
  if (tokens.length === 0) return null;
  return tokens.map((t, i) => `"${t}"${o.prefix && i === tokens.length - 1 ? "*" : ""}`).join(" ");
}

export interface SearchHit {
  conversation_id: string;
  turn_index: number;
  role: string;
  time_in_call_secs: number;
  /** The matching text, matched words between MATCH_START and MATCH_END. */
  snippet: string;
  user_id: string | null;
  title: string | null;
  started_at: number;
}

interface FoundRow {
  doc_id: number;
  conversation_id: string;
  user_id: string | null;
  title: string | null;
  started_at: number;
  bytes: number | null;
  /** Index of the shard it came from (src/storage/shards.ts). */
  shard: number;
}

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

/**
 * How many of a shard's most recently stored matches are looked at: the page is the newest calls
 * (by `started_at`) among them, so a call stored long after it started (an import) still finds its place.
 */
export const NEWEST_WINDOW = 200;

/** Newest call first, then the conversation id: the answer's order, and each shard's page's. */
const newer = byStart<FoundRow>("desc");

async function newestIn(db: D1Database, shard: number, match: string, limit: number): Promise<FoundRow[]> {
  const { results } = await db
    .prepare(
      `SELECT c.doc_id, c.conversation_id, c.user_id, c.title, c.started_at, length(c.transcript) AS bytes
       FROM (SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ? ORDER BY rowid DESC LIMIT ?) m
       JOIN conversations c ON c.doc_id = m.rowid
       ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
    )
    .bind(match, NEWEST_WINDOW, limit)
    .all<Omit<FoundRow, "shard">>();
  return results.map((r) => ({ ...r, shard }));
}

/** Every shard's newest matches for `match`, merged: at most `limit`. */
async function newest(env: ShardEnv, match: string, limit: number): Promise<FoundRow[]> {
  return mergePages(await onEveryShard(env, (db, i) => newestIn(db, i, match, limit)), newer, limit);
}

/**
 * Up to `limit` (at most MAX_HITS) hits for `q` (as typed), newest call first; null when `q` holds no
 * word. Every shard is searched in parallel and the pages merged. The words are matched whole first;
 * when that fills less than the page, the last word is matched as a prefix too (as typed so far).
 */
export async function searchTranscripts(env: ShardEnv, q: string, limit: number): Promise<SearchHit[] | null> {
  const words = ftsQuery(q, { prefix: false });
  if (words === null) return null;
  const n = Math.max(1, Math.min(limit, MAX_HITS));
  let ranked = await newest(env, words, n);
  if (ranked.length < n) ranked = await newest(env, ftsQuery(q)!, n);
  if (ranked.length === 0) return [];

  // Fetch the transcripts of the newest hits, within the byte budget.
  const chosen: FoundRow[] = [];
  let bytes = 0;
  for (const r of ranked) {
    bytes += r.bytes ?? 0;
    if (chosen.length > 0 && bytes > SEARCH_BUDGET.blobBytes) break;
    chosen.push(r);
  }
  const shards = allShards(env);
  const transcriptOf = new Map<string, StoredValue | null>();
  await Promise.all(
    [...new Set(chosen.map((r) => r.shard))].map(async (i) => {
      const mine = chosen.filter((r) => r.shard === i);
      const { results: blobs } = await shards[i]!
        .prepare(`SELECT conversation_id, transcript FROM conversations WHERE doc_id IN (${placeholders(mine.length)})`)
        .bind(...mine.map((r) => r.doc_id))
        .all<{ conversation_id: string; transcript: StoredValue | null }>();
      for (const b of blobs) transcriptOf.set(b.conversation_id, b.transcript);
    }),
  );

  const terms = queryTerms(queryTokens(q));
  const budget: Budget = { chars: SEARCH_BUDGET.scanChars };
  const hits: SearchHit[] = [];
  for (const r of chosen) {
    if (hits.length > 0 && budget.chars <= 0) break;
    // Erased between the two reads: skip it.
    if (!transcriptOf.has(r.conversation_id)) continue;
    let turns;
    try {
      turns = await decodeTranscript(transcriptOf.get(r.conversation_id) ?? null);
    } catch (e) {
      // One unreadable row must not fail every search that ranks it: leave it out, loudly.
      console.error(JSON.stringify({ event: "search_transcript_unreadable", conversation_id: r.conversation_id, error: String(e) }));
      continue;
    }
    const turn = bestTurn(turns, terms, budget) ?? turns.find((t) => t.message !== null && t.message !== "");
    if (!turn) continue;
    hits.push({
      conversation_id: r.conversation_id,
      turn_index: turn.index,
      role: turn.role,
      time_in_call_secs: turn.time_in_call_secs,
      snippet: snippetOf(turn.message ?? "", terms),
      user_id: r.user_id,
      title: r.title,
      started_at: r.started_at,
    });
  }
  return hits;
}
