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

const WORD = /[\p{L}\p{N}]+/gu;
// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;
const fold = (text: string) => text.normalize("NFD").replace(/\p{M}+/gu, "").toLowerCase();

/**
 * How well each line matches: the distinct query words it holds (`own`, 1 each) plus `weight` per
 * distinct expansion word; 0 for a line that holds none. Each line is folded once, not word by
 * word: this runs on every window a recall returns.
 */
export function lineScores(lines: string[], own: string[], expanded: string[], weight: number): number[] {
  const ownStems = [...new Set(own.map((w) => stemOf(fold(w))))];
  const expStems = [...new Set(expanded.map((w) => stemOf(fold(w))))].filter((s) => !ownStems.includes(s));
  // A line that holds no stem's first letters cannot match: most lines of a window are skipped without
  // being cut into words (ASCII lines need no folding either).
  const heads = [...ownStems, ...expStems].map((s) => s.slice(0, 4));
  return lines.map((line) => {
    const text = ASCII.test(line) ? line.toLowerCase() : fold(line);
    if (!heads.some((h) => text.includes(h))) return 0;
    const words = new Set((text.match(WORD) ?? []).map(stemOf));
    const holds = (s: string) => words.has(s) || (s.length >= 5 ? [...words].some((w) => same(s, w)) : false);
    let score = 0;
    for (const s of ownStems) if (holds(s)) score += 1;
    for (const s of expStems) if (holds(s)) score += weight;
    return score;
  });
}
