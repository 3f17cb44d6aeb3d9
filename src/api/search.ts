/**
 * GET /v1/search?q=...: full-text search over transcript turns (D1 FTS5 `turns_fts`), best matches
 * first, each hit naming its conversation and turn so the console can link straight to it.
 */
import type { Env } from "../env";
import { badRequest, json } from "../errors";
import { iso } from "./conversations";
import { pageSize } from "./cursor";

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
    .map((w) => w.replace(/["\u0000-\u001f]/g, ""))
    .filter((w) => w.length > 0)
    .slice(0, 16);
  if (words.length === 0) return null;
  return words.map((w, i) => `"${w}"${i === words.length - 1 ? "*" : ""}`).join(" ");
}

interface Hit {
  conversation_id: string;
  turn_index: number;
  role: string;
  time_in_call_secs: number;
  snippet: string;
  user_id: string | null;
  title: string | null;
  started_at: number;
}

export async function searchTranscripts(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const q = url.searchParams.get("q") ?? "";
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const match = ftsQuery(q);
  if (match === null) throw badRequest("invalid_query", "q must contain at least one word.");
  const limit = pageSize(url.searchParams.get("limit"), 20, 50);
  const { results } = await env.DB.prepare(
    `SELECT t.conversation_id, t.turn_index, t.role, t.time_in_call_secs,
            snippet(turns_fts, 0, ?, ?, '…', 16) AS snippet, c.user_id, c.title, c.started_at
     FROM turns_fts
     JOIN turns t ON t.turn_id = turns_fts.rowid
     JOIN conversations c ON c.conversation_id = t.conversation_id
     WHERE turns_fts MATCH ?
     ORDER BY rank LIMIT ?`,
  )
    .bind(MATCH_START, MATCH_END, match, limit)
    .all<Hit>();
  return json({
    query: q,
    results: results.map((h) => ({ ...h, started_at: iso(h.started_at) })),
  });
}
