/**
 * Search snippets, computed in the Worker: the full-text index is contentless (it keeps no text, so
 * FTS5's snippet() has nothing to cut from), and it indexes a whole conversation as one document,
 * so it cannot say which turn matched. This module finds the turn that matches best and cuts a window
 * of words around the match, matched words between the markers. Pure.
 *
 * Words are found the way the index's tokenizer (`unicode61 remove_diacritics 2`) finds them, closely
 * enough to point at the right turn: a word is a run of letters, digits (and private-use characters),
 * compared after NFD decomposition, removal of combining marks and lowercasing. (One difference:
 * unicode61 separates words at a combining mark in decomposed text, this keeps it in the word.)
 *
 * Work is bounded by the caller's `budget` (characters of messages scanned), shared by the hits of
 * one request: a transcript written by a caller can hold any text, so no hit may scan without limit.
 */
import type { StoredTurn } from "./stored-turn";

export const MATCH_START = "\u0002";
export const MATCH_END = "\u0003";

/** Words in a snippet. */
export const SNIPPET_TOKENS = 16;
/** Words of context before the first match. */
const LEAD_TOKENS = 4;
/** Longest run of non-word characters (spaces, punctuation, emoji) kept between two words. */
const MAX_GAP_CHARS = 16;
/** Longest word kept whole in a snippet (a "word" can be a 32,000-letter run). */
const MAX_WORD_CHARS = 48;
/** Query tokens considered, by the index query and the snippet alike. */
export const MAX_QUERY_WORDS = 16;

/**
 * A token as the index's tokenizer (unicode61) cuts it: letters, digits, private-use characters and
 * combining marks (a mark stays in its word; `remove_diacritics` then drops it).
 */
const WORD = /[\p{L}\p{N}\p{Co}\p{M}]+/gu;
const MARKS = /\p{M}+/gu;
// eslint-disable-next-line no-control-regex
const MARKERS = /[\u0002\u0003]/g;

/** A word as the index compares it. */
export function fold(word: string): string {
  return word.normalize("NFD").replace(MARKS, "").toLowerCase();
}

/** The words of a query as typed: each query word may hold several (e.g. "don't" is "don" and "t"); the very last is a prefix. */
export interface QueryTerms {
  exact: Set<string>;
  prefix: string | null;
  size: number;
}

/**
 * The tokens of what a person typed, as the index would cut them (NFC first, so a typed accent is
 * one character where it can be), at most MAX_QUERY_WORDS: the one list both the index query
 * (`ftsQuery`) and the snippet's terms are built from. Tokens hold no quote or FTS5 operator.
 */
export function queryTokens(q: string): string[] {
  return [...q.normalize("NFC").matchAll(WORD)]
    .map((m) => m[0])
    .filter((t) => fold(t) !== "")
    .slice(0, MAX_QUERY_WORDS);
}

export function queryTerms(tokens: string[]): QueryTerms {
  const all: string[] = [];
  for (const t of tokens) {
    const f = fold(t);
    if (f !== "") all.push(f);
  }
  const prefix = all.length > 0 ? all[all.length - 1]! : null;
  const exact = new Set(all.slice(0, -1));
  if (prefix !== null) exact.delete(prefix);
  return { exact, prefix, size: exact.size + (prefix === null ? 0 : 1) };
}

function matches(terms: QueryTerms, folded: string): string | null {
  if (terms.exact.has(folded)) return folded;
  if (terms.prefix !== null && folded.startsWith(terms.prefix)) return terms.prefix;
  return null;
}

/** Shared by the hits of one request: characters of messages still allowed to be scanned. */
export interface Budget {
  chars: number;
}

/**
 * The turn that matches best: the most distinct query terms, the earliest on ties. Null when no turn
 * matches (the budget ran out first, or the text tokenises differently from the index).
 */
export function bestTurn(turns: StoredTurn[], terms: QueryTerms, budget: Budget): StoredTurn | null {
  let best: StoredTurn | null = null;
  let bestScore = 0;
  for (const t of turns) {
    if (t.message === null || t.message === "") continue;
    if (budget.chars <= 0) break;
    budget.chars -= t.message.length;
    const seen = new Set<string>();
    for (const m of t.message.matchAll(WORD)) {
      const hit = matches(terms, fold(m[0]));
      if (hit !== null) {
        seen.add(hit);
        if (seen.size === terms.size) break;
      }
    }
    if (seen.size > bestScore) {
      best = t;
      bestScore = seen.size;
      if (bestScore === terms.size) break; // nothing later can beat it
    }
  }
  return best;
}

const capGap = (s: string) => {
  const clean = s.replace(MARKERS, "");
  const chars = Array.from(clean);
  return chars.length <= MAX_GAP_CHARS ? clean : chars.slice(0, MAX_GAP_CHARS).join("");
};

const capWord = (s: string) => {
  const chars = Array.from(s);
  return chars.length <= MAX_WORD_CHARS ? s : `${chars.slice(0, MAX_WORD_CHARS).join("")}…`;
};

/** About SNIPPET_TOKENS words of `message` around its first match, matched words between the markers. */
export function snippetOf(message: string, terms: QueryTerms): string {
  // Words up to the end of the window only: a 32,000-character message is not tokenised past it.
  const words: { start: number; end: number; hit: boolean }[] = [];
  let first = -1;
  let dropped = 0;
  for (const m of message.matchAll(WORD)) {
    const hit = matches(terms, fold(m[0])) !== null;
    if (hit && first < 0) first = words.length;
    words.push({ start: m.index, end: m.index + m[0].length, hit });
    if (first >= 0 && words.length > Math.max(0, first - LEAD_TOKENS) + SNIPPET_TOKENS) break;
    // No match yet: keep only the lead-in context (the window starts at most LEAD_TOKENS before the match).
    if (first < 0 && words.length > LEAD_TOKENS) {
      words.shift();
      dropped++;
    }
  }
  if (words.length === 0) return capGap(message);
  if (first < 0 && dropped > 0) {
    // No word matched (the caller's fallback): the message's first words instead.
    words.length = 0;
    dropped = 0;
    for (const m of message.matchAll(WORD)) {
      words.push({ start: m.index, end: m.index + m[0].length, hit: false });
      if (words.length > SNIPPET_TOKENS) break;
    }
  }
  const startWord = first < 0 ? 0 : Math.max(0, first - LEAD_TOKENS);
  const window = words.slice(startWord, startWord + SNIPPET_TOKENS);
  let out = dropped + startWord > 0 ? "…" : "";
  window.forEach((w, i) => {
    if (i > 0) out += capGap(message.slice(window[i - 1]!.end, w.start));
    const text = capWord(message.slice(w.start, w.end));
    out += w.hit ? `${MATCH_START}${text}${MATCH_END}` : text;
  });
  if (words.length > startWord + SNIPPET_TOKENS) out += "…";
  return out;
}
