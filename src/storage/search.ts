/**
 * Full-text search over every stored transcript (D1 FTS5), best matches first, each hit naming its
 * conversation and turn so the console can link straight to it.
 */

/** Markers around matched words in `snippet` (STX/ETX: they never occur in transcript text we keep). */
export const MATCH_START = "\u0002";
export const MATCH_END = "\u0003";

/**
 * Turns what a person typed into an FTS5 query that cannot be a syntax error: each word becomes a
 * quoted phrase (so AND, OR, NEAR, *, : and quotes are just text), the last one a prefix match.
 */
export function ftsQuery(q: string): string | null {
  const words = q
    .split(/\s+/)
    // eslint-disable-next-line no-control-regex
    .map((w) => w.replace(/["\u0000-\u001f]/g, ""))
    .filter((w) => w.length > 0)
    .slice(0, 16);
  if (words.length === 0) return null;
  return words.map((w, i) => `"${w}"${i === words.length - 1 ? "*" : ""}`).join(" ");
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

/** Up to `limit` hits for `q` (as typed), best first; null when `q` holds no word. */
export async function searchTranscripts(db: D1Database, q: string, limit: number): Promise<SearchHit[] | null> {
  const match = ftsQuery(q);
  if (match === null) return null;
  const { results } = await db
    .prepare(
      `SELECT t.conversation_id, t.turn_index, t.role, t.time_in_call_secs,
              snippet(turns_fts, 0, ?, ?, '…', 16) AS snippet, c.user_id, c.title, c.started_at
       FROM turns_fts
       JOIN turns t ON t.turn_id = turns_fts.rowid
       JOIN conversations c ON c.conversation_id = t.conversation_id
       WHERE turns_fts MATCH ?
       ORDER BY rank LIMIT ?`,
    )
    .bind(MATCH_START, MATCH_END, match, limit)
    .all<SearchHit>();
  return results;
}
