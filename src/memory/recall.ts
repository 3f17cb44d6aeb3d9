/**
 * Searching the recall index (src/memory/recall-index.ts) for POST /tools/recall, inside the user's
 * Durable Object: one round trip from the Worker, no D1. The work per call is bounded: a query of
 * at most MAX_QUERY_WORDS words, at most RECALL_MAX_LIMIT results, each result's text cut to a
 * window around its match.
 *
 * Query: the words of what the LLM wrote (the same tokens the console search uses), minus common
 * English function words, each quoted (so no FTS5 operator can be injected) and joined with OR, so a
 * document that holds only some of them still ranks. The index stems (porter) and folds diacritics.
 *
 * Ranking (lower is better, as bm25() is):
 *
 *     rank = bm25(recall_index) * (1 + RECENCY_WEIGHT / (1 + age_days / RECENCY_DAYS))
 *
 * bm25() is negative (more negative = more relevant), so the recency factor, between 1 and
 * 1 + RECENCY_WEIGHT (1.5 today, 1.25 at 90 days, 1.1 at a year), lifts recent documents without
 * letting a recent weak match beat an old strong one. The score reported is -rank / (1 - rank),
 * in (0, 1), higher is better.
 */
import { MAX_QUERY_WORDS, queryTokens, snippetOf, queryTerms, MATCH_END, MATCH_START } from "../storage/snippet";
import type { Speaker } from "./recall-index";

export const RECALL_MAX_LIMIT = 20;
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

export interface RecallHit {
  conversation_id: string | null;
  at: number;
  title: string | null;
  speaker: Speaker;
  text: string;
  score: number;
}

export interface RecallOptions {
  limit: number;
  /** The current call: never returned. */
  excludeConversationId: string | null;
  /** Unix seconds. */
  now: number;
  /** Conversations that started before this are past retention: never returned (null: retention off). */
  cutoff: number | null;
}

/** The FTS5 query for what the LLM wrote, or null when it holds no word worth searching. */
export function recallQuery(q: string): string | null {
  const tokens = queryTokens(q).map((t) => t.toLowerCase());
  const kept = tokens.filter((t) => !STOPWORDS.has(t));
  const words = [...new Set(kept.length > 0 ? kept : tokens)].slice(0, MAX_QUERY_WORDS);
  if (words.length === 0) return null;
  return words.map((t) => `"${t}"`).join(" OR ");
}

type Ranked = {
  doc_id: number;
  conversation_id: string | null;
  speaker: string;
  at: number;
  body: string;
  fact_id: string | null;
  title: string | null;
  rank: number;
};

const RANKED = `
  SELECT d.doc_id, d.conversation_id, d.speaker, d.at, d.body, d.fact_id, c.title,
         bm25(recall_index) * (1.0 + ${RECENCY_WEIGHT} / (1.0 + max(0, ?1 - d.at) / ${RECENCY_DAYS * 86_400}.0)) AS rank
  FROM recall_index
  JOIN recall_docs d ON d.doc_id = recall_index.rowid
  LEFT JOIN recall_conversations c ON c.conversation_id = d.conversation_id
  WHERE recall_index MATCH ?2
    AND (d.conversation_id IS NULL OR d.conversation_id <> ?3)
    AND (d.fact_id IS NOT NULL OR d.at >= ?4)
  ORDER BY rank
  LIMIT ?5`;

const clean = (s: string) => s.replace(/\s+/g, " ").trim();

function cut(text: string, terms: ReturnType<typeof queryTerms>): string {
  const flat = clean(text);
  if (flat.length <= WHOLE_TEXT_CHARS) return flat;
  return snippetOf(flat, terms).replaceAll(MATCH_START, "").replaceAll(MATCH_END, "");
}

/** The best matches for `q`, best first. */
export function recall(sql: SqlStorage, q: string, opts: RecallOptions): RecallHit[] {
  const match = recallQuery(q);
  if (match === null) return [];
  const limit = Math.max(1, Math.min(RECALL_MAX_LIMIT, Math.floor(opts.limit)));
  const rows = sql.exec<Ranked>(RANKED, opts.now, match, opts.excludeConversationId ?? "", opts.cutoff ?? 0, limit).toArray();
  const terms = queryTerms(queryTokens(q));
  return rows.map((r) => {
    let text = cut(r.body, terms);
    if ((r.speaker === "user" || r.speaker === "agent") && r.body.length < SHORT_TURN_CHARS) {
      const prev = sql
        .exec<{ speaker: string; body: string; conversation_id: string | null; fact_id: string | null }>(
          "SELECT speaker, body, conversation_id, fact_id FROM recall_docs WHERE doc_id = ?",
          r.doc_id - 1,
        )
        .toArray()[0];
      if (prev && prev.conversation_id === r.conversation_id && prev.fact_id === null && (prev.speaker === "user" || prev.speaker === "agent")) {
        const before = clean(prev.body);
        const shown = before.length <= CONTEXT_CHARS ? before : `…${before.slice(before.length - CONTEXT_CHARS)}`;
        text = `${prev.speaker}: ${shown} | ${r.speaker}: ${text}`;
      }
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
