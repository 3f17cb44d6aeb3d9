/**
 * Searching the recall index (src/objects/user-memory/recall-index.ts) for POST /tools/recall, inside the user's
 * Durable Object: one round trip from the Worker, no D1. The work per call is bounded: a query of
 * at most MAX_QUERY_WORDS words, at most RECALL_MAX_LIMIT results, each result's text cut to a
 * window around its match.
 *
 * Query: the words of what the LLM wrote (the same tokens the console search uses), minus common
 * English function words, each quoted (so no FTS5 operator can be injected); documents holding all
 * of them first, then, to fill `limit`, those holding any (`recall`). The index stems (porter) and
 * folds diacritics.
 *
 * Ranking (lower is better, as bm25() is; computed over the best RECALL_CANDIDATES by bm25, below):
 *
 *     rank = bm25(recall_index) * (1 + RECENCY_WEIGHT / (1 + age_days / RECENCY_DAYS))
 *
 * bm25() is negative (more negative = more relevant), so the recency factor, between 1 and
 * 1 + RECENCY_WEIGHT (1.5 today, 1.25 at 90 days, 1.1 at a year), lifts recent documents without
 * letting a recent weak match beat an old strong one. The score reported is -rank / (1 - rank),
 * in (0, 1), higher is better.
 */
import { MAX_QUERY_WORDS, queryTokens, snippetOf, queryTerms, MATCH_END, MATCH_START } from "../../records/snippet";
import type { RecallHit, Speaker } from "../../memory/rpc";
import { RECALL_MAX_LIMIT } from "../../records/limits";
import { expandWords } from "../../records/expansion";

export type { RecallHit };

export const RECENCY_WEIGHT = 0.5;
export const RECENCY_DAYS = 90;
/** A turn shorter than this is shown after the turn before it ("agent: Which dentist? | user: Dr. Patel"). */
const SHORT_TURN_CHARS = 120;
/** Characters of the previous turn shown as context. */
const CONTEXT_CHARS = 160;
/** Longest text returned whole; longer ones are cut to a window around the match. */
const WHOLE_TEXT_CHARS = 400;

const STOPWORDS = new Set(
  (
    "a an and are as at be been but by can could did do does for from had has have he her him his how i if in into is it its " +
    "me my no not of on or our she so that the their them then there they this to was we were what when where which who whom " +
    "why will with would you your about any tell said say says told remember recall mention mentioned again last time ever"
  ).split(" "),
);


export interface RecallOptions {
  limit: number;
  /** The current call: never returned. */
  excludeConversationId: string | null;
  /** Unix seconds. */
  now: number;
  /** Conversations that started before this are past retention: never returned (null: retention off). */
  cutoff: number | null;
}

/**
 * An expansion's match counts this much of a match of the caller's own words (bm25 scales linearly):
 * a document found only through expansions ranks below one that holds the query's words as strongly.
 */
export const EXPANSION_WEIGHT = 0.4;

/**
 * The FTS5 queries for what the LLM wrote: `all` (every word) and `any` (at least one; null when
 * there is one word, so `all` says everything), `expanded` (any of the WordNet expansions,
 * src/records/expansion.ts, each a quoted phrase; null when there are none), or null when it holds
 * no word worth searching.
 */
export function recallQuery(q: string): { all: string; any: string | null; expanded: string | null } | null {
  const tokens = queryTokens(q).map((t) => t.toLowerCase());
  const kept = tokens.filter((t) => !STOPWORDS.has(t));
  const words = [...new Set(kept.length > 0 ? kept : tokens)].slice(0, MAX_QUERY_WORDS);
  if (words.length === 0) return null;
  const quoted = words.map((t) => `"${t}"`);
  const phrases = expandWords(tokens, (w) => STOPWORDS.has(w))
    .map((e) => queryTokens(e).map((t) => t.toLowerCase()).join(" "))
    .filter((e) => e !== "");
  return {
    all: quoted.join(" "),
    any: quoted.length > 1 ? quoted.join(" OR ") : null,
    expanded: phrases.length > 0 ? phrases.map((p) => `"${p}"`).join(" OR ") : null,
  };
}

type Ranked = {
  doc_id: number;
  conversation_id: string | null;
  speaker: string;
  at: number;
  body: string;
  title: string | null;
  rank: number;
  prev_speaker: string | null;
  prev_body: string | null;
};

/**
 * Two steps, so the work per call does not grow with how often the words occur: FTS5 ranks the
 * matches by bm25 alone (`ORDER BY rank`, which reads no content) and keeps the best
 * RECALL_CANDIDATES; only those are joined to their docs, filtered (current call, retention) and
 * re-ranked with the recency factor. The factor is at most 1 + RECENCY_WEIGHT, so a document outside
 * the candidates could only win against ones more than 1.5 times less relevant than the weakest
 * candidate; and when the current call holds more than the candidates, fewer results come back.
 */
export const RECALL_CANDIDATES = 30;

// One statement per recall: a statement costs more in the call into SQLite than these joins cost in it.
// The turn before a short turn comes with it (`prev_*`), looked up only for the rows returned.
const RANKED = `
  WITH hits AS (SELECT rowid AS doc_id, rank FROM recall_index WHERE recall_index MATCH ?2 ORDER BY rank LIMIT ?6),
  ranked AS (
    SELECT d.doc_id, d.conversation_id, d.speaker, d.at, d.body, c.title,
           h.rank * (1.0 + ${RECENCY_WEIGHT} / (1.0 + max(0, ?1 - d.at) / ${RECENCY_DAYS * 86_400}.0)) AS rank
    FROM hits h
    JOIN recall_docs d ON d.doc_id = h.doc_id
    LEFT JOIN recall_conversations c ON c.conversation_id = d.conversation_id
    WHERE (d.conversation_id IS NULL OR d.conversation_id <> ?3)
      AND (d.fact_id IS NOT NULL OR d.at >= ?4)
    ORDER BY rank
    LIMIT ?5
  )
  SELECT r.*, p.speaker AS prev_speaker, p.body AS prev_body
  FROM ranked r
  LEFT JOIN recall_docs p ON p.doc_id = r.doc_id - 1 AND p.conversation_id = r.conversation_id AND p.fact_id IS NULL
    AND r.speaker IN ('user', 'agent') AND p.speaker IN ('user', 'agent') AND length(r.body) < ${SHORT_TURN_CHARS}
  ORDER BY r.rank`;

const clean = (s: string) => s.replace(/\s+/g, " ").trim();

function cut(text: string, terms: ReturnType<typeof queryTerms>): string {
  const flat = clean(text);
  if (flat.length <= WHOLE_TEXT_CHARS) return flat;
  return snippetOf(flat, terms).replaceAll(MATCH_START, "").replaceAll(MATCH_END, "");
}

/**
 * The best matches for `q`, best first. Documents holding every word first, ranked as they are;
 * then, while fewer than `limit` were found, those holding any word or any expansion, ranked by
 * their rank for the words plus EXPANSION_WEIGHT times their rank for the expansions: ranking costs
 * per matching document, and a document with every word is nearly always the better match, so the
 * broad queries run only when the narrow one is not enough.
 */
export function recall(sql: SqlStorage, q: string, opts: RecallOptions): RecallHit[] {
  const match = recallQuery(q);
  if (match === null) return [];
  const limit = Math.max(1, Math.min(RECALL_MAX_LIMIT, Math.floor(opts.limit)));
  const run = (m: string, n: number) =>
    sql.exec<Ranked>(RANKED, opts.now, m, opts.excludeConversationId ?? "", opts.cutoff ?? 0, n, Math.max(RECALL_CANDIDATES, n * 3)).toArray();
  const rows = run(match.all, limit);
  if (rows.length < limit && (match.any !== null || match.expanded !== null)) {
    const seen = new Set(rows.map((r) => r.doc_id));
    const broad = new Map<number, Ranked>();
    const add = (found: Ranked[], weight: number) => {
      for (const r of found) {
        if (seen.has(r.doc_id)) continue;
        const had = broad.get(r.doc_id);
        if (had) had.rank += weight * r.rank;
        else broad.set(r.doc_id, { ...r, rank: weight * r.rank });
      }
    };
    if (match.any !== null) add(run(match.any, limit + rows.length), 1);
    if (match.expanded !== null) add(run(match.expanded, limit + rows.length), EXPANSION_WEIGHT);
    rows.push(...[...broad.values()].sort((a, b) => a.rank - b.rank).slice(0, limit - rows.length));
  }
  const terms = queryTerms(queryTokens(q));
  return rows.map((r) => {
    let text = cut(r.body, terms);
    if (r.prev_body !== null && r.prev_speaker !== null) {
      const before = clean(r.prev_body);
      const shown = before.length <= CONTEXT_CHARS ? before : `…${before.slice(before.length - CONTEXT_CHARS)}`;
      text = `${r.prev_speaker}: ${shown} | ${r.speaker}: ${text}`;
    }
    return {
      conversation_id: r.conversation_id,
      at: r.at,
      title: r.title,
      speaker: r.speaker as Speaker,
      text,
      score: Math.round((-r.rank / (1 - r.rank)) * 1000) / 1000,
    };
  });
}
