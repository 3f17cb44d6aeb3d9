/**
 * The recall index's documents (src/objects/user-memory/recall-index.ts): a conversation is indexed
 * as a few windows of consecutive turns, not a document per turn, and the turn a result shows is
 * found inside the matching window when it is read (recall.ts, `lineScores`). Pure.
 *
 * A window's body is its turns' texts, one line each (a turn's own line breaks become spaces), and
 * its `speakers` a letter per line: `u` user, `a` agent, `s` the title or summary. Only the body
 * is in the full-text index, so the letters are never matched.
 */
/** A window holds turns until the next would take it past this many characters (about 300 words). */
export const WINDOW_CHARS = 1_800;

export interface Window {
  speakers: string;
  body: string;
}

export type Letter = "u" | "a" | "s";

const flat = (text: string) => text.replace(/[\r\n]+/g, " ").trim();

/** Consecutive lines into windows of at most WINDOW_CHARS (a longer line is a window alone). Empty lines are dropped. */
export function windowsOf(lines: [Letter, string][]): Window[] {
  const out: Window[] = [];
  let speakers = "";
  let parts: string[] = [];
  let size = 0;
  for (const [who, text] of lines) {
    const line = flat(text);
    if (line === "") continue;
    if (parts.length > 0 && size + 1 + line.length > WINDOW_CHARS) {
      out.push({ speakers, body: parts.join("\n") });
      speakers = "";
      parts = [];
      size = 0;
    }
    speakers += who;
    size += (parts.length > 0 ? 1 : 0) + line.length;
    parts.push(line);
  }
  if (parts.length > 0) out.push({ speakers, body: parts.join("\n") });
  return out;
}

/**
 * Near enough to the index's porter stemmer to tell which line of a window matched: a word and a
 * query word match when they are equal after dropping a common English ending, or one begins with
 * the other and the shorter has at least five letters ("recommending" / "recommend").
 */
export function stemOf(word: string): string {
  for (const end of ["ing", "ies", "ied", "ed", "es", "ly", "s", "y", "e"]) {
    if (word.length > end.length + 2 && word.endsWith(end)) return word.slice(0, word.length - end.length);
  }
  return word;
}

function same(a: string, b: string): boolean {
  if (a === b) return true;
  const [s, l] = a.length <= b.length ? [a, b] : [b, a];
  return s.length >= 5 && l.startsWith(s);
}

/** A word starting at `lastIndex` (sticky): a run of letters and digits, as the index's tokenizer cuts it. */
const WORD_AT = /[\p{L}\p{N}]+/uy;
const WORD_CHAR = /[\p{L}\p{N}]/u;
// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;
const fold = (text: string) => text.normalize("NFD").replace(/\p{M}+/gu, "").toLowerCase();

/** Whether a word starts at `i` of `text`: the character before it is no letter or digit. */
function startsWord(text: string, i: number): boolean {
  if (i === 0) return true;
  const c = text.charCodeAt(i - 1);
  if (c < 0x80) return !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a));
  const at = c >= 0xdc00 && c <= 0xdfff && i >= 2 ? i - 2 : i - 1;
  return !WORD_CHAR.test(String.fromCodePoint(text.codePointAt(at)!));
}

/** The index of the line holding character `pos`, given the lines' first characters (ascending). */
function lineAt(starts: number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * How well each line of a window (`body`, lines separated by "\n") matches, for a query's words
 * (`own`, 1 each) and its expansions' words (`weight` each): the sum over the distinct stems a line
 * holds, 0 for a line that holds none. Built once per query, run on every window a recall returns.
 *
 * The window is folded once (ASCII text only lowercased), and only the query's stems are looked
 * for: a word that matches a stem begins with the stem's first five letters (or the whole stem, if
 * shorter), so each stem's candidates are found by `indexOf` and only those words are cut and
 * stemmed; the rest of the window is never split into words.
 */
export function lineMatcher(own: string[], expanded: string[], weight: number): (body: string) => number[] {
  const ownStems = [...new Set(own.map((w) => stemOf(fold(w))))].filter((s) => s !== "");
  const expStems = [...new Set(expanded.map((w) => stemOf(fold(w))))].filter((s) => s !== "" && !ownStems.includes(s));
  const stems = [...ownStems.map((s) => [s, 1] as const), ...expStems.map((s) => [s, weight] as const)];
  return (body) => {
    const text = ASCII.test(body) ? body.toLowerCase() : fold(body);
    const starts = [0];
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
    const scores = new Array<number>(starts.length).fill(0);
    for (const [stem, value] of stems) {
      const head = stem.slice(0, 5);
      let last = -1;
      for (let i = text.indexOf(head); i >= 0; i = text.indexOf(head, i + 1)) {
        if (!startsWord(text, i)) continue;
        const line = lineAt(starts, i);
        if (line === last) continue;
        WORD_AT.lastIndex = i;
        const word = WORD_AT.exec(text)![0];
        if (!same(stem, stemOf(word))) continue;
        scores[line]! += value;
        last = line;
      }
    }
    return scores;
  };
}

/** lineMatcher for one window given as its lines. */
export function lineScores(lines: string[], own: string[], expanded: string[], weight: number): number[] {
  return lineMatcher(own, expanded, weight)(lines.join("\n"));
}
