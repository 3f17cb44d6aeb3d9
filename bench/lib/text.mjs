// Distinct, English-like text for bench transcripts: the fixture's turns repeated verbatim compress
// about 11x and give the search index almost no distinct words, which flatters D1's bytes per
// conversation. Each message here keeps its original length but is rewritten with words drawn from
// a vocabulary by a Zipf-like law (as natural language is), from a seeded generator, so every
// conversation and every turn says something different, and runs are repeatable.

// Common English words of a support call, most frequent first (the order is the Zipf rank).
const VOCABULARY = (
  "the i you to a and it of is that for in my order we can be your this on have with what will me " +
  "so do not at are was if just but there all about get one would like thank yes no please help check " +
  "account number time back day need now how when they our let here know see sure right call again " +
  "today could make any more also which new some from up out by them want been email send phone " +
  "delivery refund replacement screen cracked package arrived week tracking address card payment " +
  "charge billing plan subscription upgrade cancel change update password login reset device app " +
  "problem issue working error message support team manager ticket case follow confirm details " +
  "name date code store return label shipping box item product price discount offer free month " +
  "year tomorrow monday friday morning afternoon evening hour minute wait hold transfer speak " +
  "understand sorry apologize great perfect okay fine good better worse quick fast slow late early " +
  "last first next another every other same different small large red blue black white battery " +
  "charger cable warranty repair technician appointment visit schedule available option choose " +
  "prefer recommend suggest remember mentioned told said asked wanted tried looked found lost " +
  "received sent ordered paid called emailed waited changed updated cancelled returned replaced " +
  "dentist doctor clinic pharmacy insurance claim policy coverage bank transaction statement balance " +
  "savings loan mortgage rate interest fee credit debit transfer deposit withdraw branch office home " +
  "work family son daughter wife husband mother father friend neighbour city street apartment floor"
).split(" ");

/** mulberry32: a small seeded generator, so the same seed gives the same text. */
export function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Zipf weights (1/rank), as a cumulative table for sampling.
const CUMULATIVE = (() => {
  let sum = 0;
  const out = VOCABULARY.map((_, i) => (sum += 1 / (i + 1)));
  return out.map((v) => v / sum);
})();

function word(random) {
  const r = random();
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (CUMULATIVE[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  // One word in forty is a number (order ids, dates, amounts): distinct in every call.
  return random() < 1 / 40 ? String(Math.floor(random() * 100000)) : VOCABULARY[lo];
}

/** A sentence-like text of about `length` characters from the generator seeded with `seed`. */
export function distinctText(seed, length) {
  const random = generator(seed);
  let out = "";
  while (out.length < length) {
    const w = word(random);
    out += out === "" ? w[0].toUpperCase() + w.slice(1) : random() < 0.1 ? `. ${w[0].toUpperCase()}${w.slice(1)}` : ` ${w}`;
  }
  return `${out.slice(0, Math.max(1, length - 1)).trimEnd()}.`;
}

/** Rewrites every message of a transcription event in place with distinct text (same lengths). */
export function rewriteMessages(event, seed) {
  event.data.transcript.forEach((turn, i) => {
    if (typeof turn.message === "string" && turn.message.length > 0) turn.message = distinctText(seed * 1000 + i + 1, turn.message.length);
  });
  const a = event.data.analysis;
  if (a && typeof a.transcript_summary === "string") a.transcript_summary = distinctText(seed * 1000, a.transcript_summary.length);
  return event;
}
