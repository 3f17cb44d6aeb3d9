// bench/scale.mjs: the real Worker (src/index.ts, every route and class) plus two bench-only routes:
// POST /bench/seed stores conversations through storage's own writer (storeConversation: the same
// statements a projected webhook runs, counters and search documents included), and
// POST /bench/sweep runs the daily cron's steps (sweepRetention, pruneHealth) and times them.
import app from "../../src/index";
import { pruneHealth, sweepRetention } from "../../src/cron/sweep";
import { storeConversation } from "../../src/storage/conversations";
import type { ConversationRecord } from "../../src/records/payload";
import type { Env } from "../../src/lib/env";
export * from "../../src/index";

const WORDS = "account billing refund order delivery password address invoice payment card shipping return plan upgrade".split(" ");

/**
 * Conversation `i` of the bench, ~4.6 KB with its transcript: over 20,000 users; among the first 10,000,
 * every 10th is `bench_heavy_a`'s and every 10th + 5 `bench_heavy_b`'s (1,000 calls each); one in 50
 * of the rest is unowned (an unverified claim). Ten of each size are 400 days old (the sweep's work).
 */
function record(i: number, now: number): ConversationRecord {
  const heavy = i < 10_000 && i % 5 === 0 ? (i % 10 === 0 ? "bench_heavy_a" : "bench_heavy_b") : null;
  const unowned = heavy === null && i % 50 === 7;
  const userId = heavy ?? (unowned ? null : `u${String(i % 20_000).padStart(5, "0")}`);
  const old = i < 10_000 ? i % 1000 === 999 : (i - 10_000) % 19_000 === 18_999;
  const w = (k: number) => WORDS[(i * 7 + k * 13) % WORDS.length]!;
  const turns = Array.from({ length: 12 }, (_, t) => ({
    index: t,
    role: t % 2 === 0 ? "agent" : "user",
    message: `${t % 2 === 0 ? "How can I help with your" : "I need help with my"} ${w(t)} and ${w(t + 1)}; call ${i} turn ${t}. ${"Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(5)}${i === 4242 ? " zanzibar" : ""}`,
    timeInCallSecs: t * 8,
    tools: null,
    feedback: null,
  }));
  return {
    conversationId: `conv_${String(i).padStart(7, "0")}`,
    agentId: `agent_${i % 5}`,
    agentName: "Bench agent",
    status: "done",
    userId,
    userIdSource: userId === null ? null : "user_id",
    vouchedBy: userId === null ? null : "token",
    claimedUserId: unowned ? `claimed_${i}` : null,
    unverified: unowned ? "token_missing" : null,
    phoneNumber: null,
    phoneDirection: null,
    phoneProvider: null,
    startedAt: old ? now - 400 * 86_400 - i : now - (i % 60) * 86_400 - (i % 86_000),
    durationSecs: 30 + (i % 900),
    title: `Help with ${w(0)}`,
    summary: `The caller asked about their ${w(0)} and ${w(1)}; the agent explained the next steps and the caller was satisfied.`,
    callSuccessful: i % 9 === 0 ? "failure" : "success",
    terminationReason: "end_call tool",
    mainLanguage: "en",
    evaluation: { resolved: { result: i % 9 === 0 ? "failure" : "success", rationale: "Bench." } },
    facts: [],
    turns,
    eventTimestamp: null,
  } as unknown as ConversationRecord;
}

export default {
  ...app,
  async fetch(req: Request, env: Env, ctx: ExecutionContext) {
    const url = new URL(req.url);
    if (url.pathname === "/bench/seed" && req.method === "POST") {
      const from = Number(url.searchParams.get("from"));
      const to = Number(url.searchParams.get("to"));
      const now = Number(url.searchParams.get("now"));
      const ids = Array.from({ length: to - from }, (_, k) => from + k);
      for (let k = 0; k < ids.length; k += 25) {
        await Promise.all(ids.slice(k, k + 25).map((i) => storeConversation(env, record(i, now), { transcriptKey: `bench/${i}`, receivedAt: now })));
      }
      return new Response(String(ids.length));
    }
    if (url.pathname === "/bench/sweep" && req.method === "POST") {
      const t0 = Date.now();
      const report = await sweepRetention(env);
      const t1 = Date.now();
      const pruned = await pruneHealth(env);
      return Response.json({ retention_ms: t1 - t0, prune_ms: Date.now() - t1, report, pruned });
    }
    return app.fetch(req as never, env, ctx);
  },
} satisfies ExportedHandler<Env>;
