/**
 * Full-text search over every stored transcript (D1 FTS5), best matches first, each hit naming its
 * conversation and turn so the console can link straight to it.
 *
 * The index (`conversations_fts`) is contentless, one document per conversation (its messages): D1
 * ranks the conversations (bm25), and the Worker decodes each hit's transcript to find the turn that
 * matches best and cut the snippet (src/records/snippet.ts). The work per request is bounded: at most
 * MAX_HITS hits, SEARCH_BUDGET.blobBytes of transcripts fetched and SEARCH_BUDGET.scanChars of
 * messages scanned; hits past a budget are left out (the best ranked are kept).
 */
import { bestTurn, MATCH_END, MATCH_START, queryTerms, queryTokens, snippetOf, type Budget } from "../records/snippet";
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
 * phrases of several tokens); all are required, the last one a prefix match.
 */
export function ftsQuery(q: string): string | null {
  const tokens = queryTokens(q);
  if (tokens.length === 0) return null;
  return tokens.map((t, i) => `"${t}"${i === tokens.length - 1 ? "*" : ""}`).join(" ");
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

interface RankedRow {
  doc_id: number;
  conversation_id: string;
  user_id: string | null;
  title: string | null;
  started_at: number;
  bytes: number | null;
}

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

/** Up to `limit` (at most MAX_HITS) hits for `q` (as typed), best first; null when `q` holds no word. */
export async function searchTranscripts(db: D1Database, q: string, limit: number): Promise<SearchHit[] | null> {
  const match = ftsQuery(q);
  if (match === null) return null;
  const { results: ranked } = await db
    .prepare(
      `SELECT c.doc_id, c.conversation_id, c.user_id, c.title, c.started_at, length(c.transcript) AS bytes
       FROM conversations_fts f JOIN conversations c ON c.doc_id = f.rowid
       WHERE conversations_fts MATCH ?
       ORDER BY f.rank LIMIT ?`,
    )
    .bind(match, Math.max(1, Math.min(limit, MAX_HITS)))
    .all<RankedRow>();
  if (ranked.length === 0) return [];

  // Fetch the transcripts of the best ranked hits, within the byte budget.
  const chosen: RankedRow[] = [];
  let bytes = 0;
  for (const r of ranked) {
    bytes += r.bytes ?? 0;
    if (chosen.length > 0 && bytes > SEARCH_BUDGET.blobBytes) break;
    chosen.push(r);
  }
  const { results: blobs } = await db
    .prepare(`SELECT doc_id, transcript FROM conversations WHERE doc_id IN (${placeholders(chosen.length)})`)
    .bind(...chosen.map((r) => r.doc_id))
    .all<{ doc_id: number; transcript: StoredValue | null }>();
  const transcriptOf = new Map(blobs.map((b) => [b.doc_id, b.transcript]));

  const terms = queryTerms(queryTokens(q));
  const budget: Budget = { chars: SEARCH_BUDGET.scanChars };
  const hits: SearchHit[] = [];
  for (const r of chosen) {
    if (hits.length > 0 && budget.chars <= 0) break;
    // Erased between the two reads: skip it.
    if (!transcriptOf.has(r.doc_id)) continue;
    let turns;
    try {
      turns = await decodeTranscript(transcriptOf.get(r.doc_id) ?? null);
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
