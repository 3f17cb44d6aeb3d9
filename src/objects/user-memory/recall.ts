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
import { lineMatcher } from "../../records/recall-windows";

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
export interface RecallQuery {
  all: string;
  any: string | null;
  expanded: string | null;
  /** The words and the expansions' words, to find the matching turn of a window (recall-windows.ts). */
  words: string[];
  expansionWords: string[];
}

export function recallQuery(q: string): RecallQuery | null {
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
    words,
    expansionWords: phrases.flatMap((p) => p.split(" ")).filter((w) => !STOPWORDS.has(w)),
  };
}

type Ranked = {
  doc_id: number;
  conversation_id: string | null;
  speaker: string;
  speakers: string | null;
  at: number;
  body: string;
  title: string | null;
  rank: number;
  prev_speaker: string | null;
  prev_body: string | null;
};

/**
 * Two steps, so the work per call does not grow with how often the words occur: the matches are
 * ranked by bm25 alone (which reads no content) and the best are kept,
 * RECALL_CANDIDATES; only those are joined to their docs, filtered (current call, retention) and
 * re-ranked with the recency factor. The factor is at most 1 + RECENCY_WEIGHT, so a document outside
 * the candidates could only win against ones more than 1.5 times less relevant than the weakest
 * candidate; and when the current call holds more than the candidates, fewer results come back.
 */
export const RECALL_CANDIDATES = 30;

// One statement per query: a statement costs more in the call into SQLite than these joins cost in it.
// bm25() sorted by SQLite, not FTS5's `ORDER BY rank`: for that, FTS5 prepares a statement of its own on
// every query, which took about a third of the statement's time (same values; ties by doc id).
// A window (`speakers` set) holds its turns; a document of one turn (an object still indexed by schema
// version 4, until the backfill re-indexes it) brings the turn before it when short (`prev_*`).
const RANKED = `
  WITH hits AS (SELECT doc_id, rank FROM (SELECT rowid AS doc_id, bm25(recall_index) AS rank FROM recall_index WHERE recall_index MATCH ?2)
                ORDER BY rank, doc_id LIMIT ?6),
  ranked AS (
    SELECT d.doc_id, d.conversation_id, d.speaker, d.speakers, d.at, d.body, c.title,
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
  LEFT JOIN recall_docs p ON r.speakers IS NULL AND p.doc_id = r.doc_id - 1 AND p.conversation_id = r.conversation_id AND p.fact_id IS NULL
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
  // A window is one document but may hold several matching turns: each is a result, as a document
  // per turn was (the best at the window's rank, the others below it: inWindow).
  const scoresOf = lineMatcher(match.words, match.expansionWords, EXPANSION_WEIGHT);
  const turnsOf = (found: Ranked[]) => found.flatMap((r) => (r.speakers === null ? [single(r)] : inWindow(r, scoresOf))).sort((a, b) => a.rank - b.rank);
  const shown = turnsOf(rows);
  if (shown.length < limit && (match.any !== null || match.expanded !== null)) {
    const seen = new Set(rows.map((r) => r.doc_id));
    const broad = new Map<number, Ranked>();
    // A document holding some of the words ranks by them alone; one found only through expansions,
    // by EXPANSION_WEIGHT times its rank for them.
    const add = (found: Ranked[], weight: number) => {
      for (const r of found) if (!seen.has(r.doc_id) && !broad.has(r.doc_id)) broad.set(r.doc_id, { ...r, rank: weight * r.rank });
    };
    if (match.any !== null) add(run(match.any, limit + rows.length), 1);
    if (match.expanded !== null) {
      // Abstention: a document none of the caller's words are in must match the expansions strongly.
      const floor = expansionFloor(sql);
      const ownWords = lineMatcher(match.words, [], 1);
      const strong = (r: Ranked) => -r.rank >= floor || ownWords(r.body).some((s) => s > 0);
      add(run(match.expanded, limit + rows.length).filter(strong), EXPANSION_WEIGHT);
    }
    shown.push(...turnsOf([...broad.values()]));
  }
  const terms = queryTerms(queryTokens(q));
  return shown.slice(0, limit).map((h) => {
    let text = cut(h.body, terms);
    let speaker: Speaker = h.speaker;
    if (h.before !== null) {
      const before = clean(h.before.body);
      const context = before.length <= CONTEXT_CHARS ? before : `…${before.slice(before.length - CONTEXT_CHARS)}`;
      text = `${h.before.speaker}: ${context} | ${h.speaker}: ${text}`;
      // Two turns, each prefixed with who said it: labelled "user" it read as if the caller had said the agent's words too.
      if (h.before.speaker !== h.speaker) speaker = "exchange";
    }
    return {
      conversation_id: h.row.conversation_id,
      at: h.row.at,
      title: h.row.title,
      speaker,
      text,
      score: Math.round((-h.rank / (1 - h.rank)) * 1000) / 1000,
    };
  });
}

/**
 * Abstention (docs/recall.md, "Abstention"): a document holding none of the caller's own words, found
 * only through expansions, is returned only when its bm25 for the expansions (with the recency factor)
 * reaches EXPANSION_FLOOR times the idf of a word said in one document of this index, as FTS5 computes
 * idf: ln((N - 0.5) / 1.5) for N documents. A rare expansion ("dentist" in one call) reaches it; a
 * common one ("home", "call", "day": in many of the caller's calls, so low idf) does not, however
 * many of them match. Below a few documents idf is not informative (ln <= 0): no floor.
 */
export const EXPANSION_FLOOR = 1;

function expansionFloor(sql: SqlStorage): number {
  const docs = sql.exec<{ n: number }>("SELECT count(*) AS n FROM recall_docs").one().n;
  return EXPANSION_FLOOR * Math.max(0, Math.log((docs - 0.5) / 1.5));
}

/** A window's other matching turns rank at most this share of its best one's score. */
const SAME_WINDOW = 0.5;

type Shown = { row: Ranked; rank: number; speaker: Speaker; body: string; before: { speaker: Speaker; body: string } | null };

const ofLetter = (l: string | undefined): Speaker => (l === "u" ? "user" : l === "s" ? "summary" : "agent");

/** A document of one text: a fact, or a turn indexed by schema version 4 (with its previous turn, if short). */
function single(r: Ranked): Shown {
  const before = r.prev_body !== null && r.prev_speaker !== null ? { speaker: r.prev_speaker as Speaker, body: r.prev_body } : null;
  return { row: r, rank: r.rank, speaker: r.speaker as Speaker, body: r.body, before };
}

/**
 * The turns of a window that match (the first when none does, as FTS5 stems more than lineMatcher
 * can), best first; a short turn comes after the turn before it ("agent: Which dentist? | user: Dr. Patel").
 */
function inWindow(r: Ranked, scoresOf: (body: string) => number[]): Shown[] {
  const lines = r.body.split("\n");
  const scores = scoresOf(r.body);
  const top = Math.max(...scores);
  const picked = top > 0 ? lines.map((_, i) => i).filter((i) => scores[i]! > 0) : [0];
  const first = picked.reduce((b, i) => (scores[i]! > scores[b]! ? i : b), picked[0]!);
  return picked.map((i) => {
    const speaker = ofLetter(r.speakers![i]);
    const prev = i > 0 ? ofLetter(r.speakers![i - 1]) : null;
    const turn = speaker === "user" || speaker === "agent";
    const before = turn && prev !== null && prev !== "summary" && lines[i]!.length < SHORT_TURN_CHARS ? { speaker: prev, body: lines[i - 1]! } : null;
    // The window's best turn at its rank; its other matching turns below, so one call does not crowd out the others.
    const rank = i === first ? r.rank : (r.rank * SAME_WINDOW * scores[i]!) / top;
    return { row: r, rank, speaker, body: lines[i]!, before };
  });
}
