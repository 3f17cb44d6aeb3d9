// The bench's recall scenario (issue 13, item 7): users with 20 calls of 50 turns each, seeded
// through the real webhook the way the README's integration sends them (bench/lib/recall.mjs), then
// POST /tools/recall as the ElevenLabs tool calls it, against the read floor of the same run.
//
// Turn text is distinct, English-like text (bench/lib/text.mjs: a support call's vocabulary, Zipf
// distributed, seeded), so every user's index holds about a thousand different turns and a query's
// words match some of them, as real ones do; queries are two of that vocabulary's content words.
import { distinctText, generator } from "./text.mjs";
import { ingestHistory, recall, recallBody } from "./recall.mjs";

export const RECALL_USERS = 50;
export const RECALL_CALLS = 20;
export const RECALL_TURNS = 50;
const AGENT_ID = "agent_bench_recall";

// Content words of the text generator's vocabulary, from frequent to rare: what a caller would ask about.
const QUERY_WORDS = (
  "order refund replacement delivery tracking screen package address card payment charge billing plan subscription " +
  "upgrade password device problem error ticket manager warranty repair technician appointment battery charger " +
  "dentist doctor clinic pharmacy insurance claim policy bank transaction statement loan mortgage apartment neighbour"
).split(" ");

const userId = (u) => `user_recall_${String(u).padStart(4, "0")}`;

/** The c-th call of user u: 50 turns of distinct text, dated over the last 20 weeks. */
function callOf(u, c, now) {
  const seed = 1_000_000 + u * 100 + c;
  return {
    conversation_id: `conv_recall_bench_${String(u).padStart(4, "0")}_${String(c).padStart(2, "0")}`,
    started_at: new Date((now - (RECALL_CALLS - c) * 7 * 86_400) * 1000).toISOString(),
    duration_secs: 600,
    title: distinctText(seed * 7, 32),
    summary: distinctText(seed * 11, 160),
    facts: { plan: c % 2 ? "pro" : "basic" },
    turns: Array.from({ length: RECALL_TURNS }, (_, t) => ({ role: t % 2 ? "user" : "agent", message: distinctText(seed * 1000 + t, 60 + ((t * 37) % 140)) })),
  };
}

/**
 * Seeds `users` users (20 calls each) into the service at `url` and returns their tokens (what the
 * app would pass into the next session). Checks that recall answers with results for them, so a
 * load run cannot measure a fast "no results" (a bad token also answers 200).
 */
export async function seedRecallUsers({ url, secret, apiKey, agentKey, users = RECALL_USERS, log }) {
  const now = Math.floor(Date.now() / 1000);
  const tokens = new Array(users);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let u = next++; u < users; u = next++) {
        const calls = Array.from({ length: RECALL_CALLS }, (_, c) => callOf(u, c, now));
        tokens[u] = await ingestHistory({ url, secret, apiKey, agentId: AGENT_ID, agentName: "Bench Recall", userId: userId(u), calls });
      }
    }),
  );
  let withResults = 0;
  const probes = 40;
  for (let i = 0; i < probes; i++) {
    const r = await recall(url, agentKey, { query: queryOf(i), token: tokens[i % users], conversationId: `conv_probe_${i}`, agentId: AGENT_ID });
    if (r.status !== 200) throw new Error(`recall probe: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    if (r.body?.reason) throw new Error(`recall probe: no results because ${r.body.reason}: ${r.text.slice(0, 200)}`);
    if ((r.body?.results?.length ?? 0) > 0) withResults++;
  }
  if (withResults < probes / 2) throw new Error(`recall probe: only ${withResults} of ${probes} queries found anything; the scenario would measure empty answers`);
  log?.(`recall: ${users} users x ${RECALL_CALLS} calls x ${RECALL_TURNS} turns seeded; ${withResults} of ${probes} probe queries found results`);
  return { tokens, conversations: users * RECALL_CALLS };
}

const random = generator(42);
/** The i-th query: two content words (deterministic). */
export function queryOf(i) {
  const a = QUERY_WORDS[(i * 7) % QUERY_WORDS.length];
  const b = QUERY_WORDS[(i * 13 + 5) % QUERY_WORDS.length];
  return a === b ? a : `${a} ${b}`;
}

/** The i-th load request: a user's token, a two-word query, a new call's id to exclude. */
export function recallRequest(i, tokens, agentKey) {
  const u = Math.floor(random() * tokens.length);
  return {
    method: "POST",
    path: "/tools/recall",
    headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" },
    body: recallBody({ query: queryOf(i), token: tokens[u], conversationId: `conv_live_${i}`, agentId: AGENT_ID, limit: 5 }),
  };
}
