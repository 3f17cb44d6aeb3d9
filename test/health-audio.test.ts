/**
 * The health page and audio that never came (issue 16): a conversation whose agent delivers audio
 * for other calls, with no audio of its own once AUDIO_BACKFILL_AFTER_SECONDS has passed. Also the
 * charts' data: calls per day by outcome and the duration distribution, read from D1.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { audioBytes, audioEvent, postChunked } from "./audio-helpers";
import { codes, health, type Health, sum } from "./health-helpers";
import { API_KEY, BASE, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { expectLogs } from "./logs";

/** The page as the Worker answers it with other settings (config is parsed per env object). */
async function healthWith(patch: Record<string, string>): Promise<Health> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`${BASE}/v1/health/details`, { headers: { Authorization: `Bearer ${API_KEY}` } }), { ...env, ...patch }, ctx);
  await waitOnExecutionContext(ctx);
  expect(res.status).toBe(200);
  return (await res.json()) as Health;
}

async function call(o: { agentId: string; startedAt: number; duration: number; outcome?: string; audio?: boolean }) {
  const userId = uid("audio_user");
  const event = transcription({ userId, startedAt: o.startedAt });
  event["data"].agent_id = o.agentId;
  event["data"].metadata.call_duration_secs = o.duration;
  if (o.outcome) event["data"].analysis.call_successful = o.outcome;
  expect((await postWebhook(event)).status).toBe(200);
  const conversationId = event["data"].conversation_id as string;
  if (o.audio) {
    const { body } = audioEvent(audioBytes(2048), { conversationId, agentId: o.agentId });
    expect((await postChunked(body)).status).toBe(200);
    await flush(null, conversationId);
  }
  await flush(userId, conversationId);
  return conversationId;
}

describe("audio that never came", () => {
  it("is named once its grace has passed, apart from refusals and backlogs", async () => {
    const agent = uid("agent_audio");
    const now = nowSeconds();
    await call({ agentId: agent, startedAt: now - 1800, duration: 95, outcome: "success", audio: true });
    const missing = await call({ agentId: agent, startedAt: now - 1200, duration: 40, outcome: "failure" });
    // An agent that never sends audio is not expected to.
    await call({ agentId: uid("agent_no_audio"), startedAt: now - 600, duration: 700 });

    // Within AUDIO_BACKFILL_AFTER_SECONDS (default 15 min) of its transcript, audio may still come.
    const early = await health();
    expect(early.audio).toMatchObject({ expected_within_seconds: 900, missing_24h: 0 });
    expect(codes(early)).toEqual([]);

    const late = await healthWith({ AUDIO_BACKFILL_AFTER_SECONDS: "0" });
    expect(late.audio).toMatchObject({ expected_within_seconds: 0, missing_24h: 1, missing_30d: 1 });
    expect(late.audio!.missing.map((m) => m.conversation_id)).toEqual([missing]);
    expect(codes(late)).toEqual(["audio_missing"]);
    expect(late.problems[0]!.message).toMatch(/^1 conversation of the last 24 hours never received its audio webhook/);

    // The charts: three calls today by outcome, and their durations.
    const today = late.charts.calls_per_day;
    expect(today.days.at(-1)).toBe(new Date(now * 1000).toISOString().slice(0, 10));
    expect(today.outcomes["success"]!.at(-1)).toBeGreaterThanOrEqual(1);
    expect(today.outcomes["failure"]!.at(-1)).toBeGreaterThanOrEqual(1);
    const d = late.charts.call_durations;
    expect(sum(d.counts)).toBe(3);
    expect(d.counts[1]).toBe(1); // 40 s: 30 s-1 min
    expect(d.counts[2]).toBe(1); // 95 s: 1-2 min
    expect(d.counts[5]).toBe(1); // 700 s: 10-20 min
    expect(late.projection!.conversations_24h).toBe(3);
  });

  it("is no longer missing once it arrives", async () => {
    const agent = uid("agent_late_audio");
    const now = nowSeconds();
    await call({ agentId: agent, startedAt: now - 1800, duration: 60, audio: true });
    const id = await call({ agentId: agent, startedAt: now - 1000, duration: 60 });
    const before = await healthWith({ AUDIO_BACKFILL_AFTER_SECONDS: "0" });
    expect(before.audio!.missing.map((m) => m.conversation_id)).toContain(id);
    const { body } = audioEvent(audioBytes(1024), { conversationId: id, agentId: agent });
    expect((await postChunked(body)).status).toBe(200);
    await flush(null, id);
    const after = await healthWith({ AUDIO_BACKFILL_AFTER_SECONDS: "0" });
    expect(after.audio!.missing.map((m) => m.conversation_id)).not.toContain(id);
  });
});

describe("each source may fail alone", () => {
  async function healthWithEnv(patch: Partial<typeof env>): Promise<Health> {
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request(`${BASE}/v1/health/details`, { headers: { Authorization: `Bearer ${API_KEY}` } }), { ...env, ...patch } as typeof env, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    return (await res.json()) as Health;
  }
  const failing = (what: string) =>
    new Proxy({}, {
      get: () => () => {
        throw new Error(`${what}: simulated outage`);
      },
    });

  it("D1 down: the counters still answer, and the page says D1 could not be queried", async () => {
    expectLogs(/^health: D1 [a-z ]+ unavailable D1: simulated outage$/);
    const h = await healthWithEnv({ DB: failing("D1") as D1Database });
    expect(codes(h)).toEqual(["d1_unavailable"]);
    expect(h.status).toBe("error");
    expect(h.projection).toBeNull();
    expect(h.audio).toBeNull();
    expect(h.webhooks).not.toBeNull();
  });

  it("the stats object unreachable: D1's figures still answer", async () => {
    expectLogs(/^health: stats object unavailable stats object: simulated outage$/);
    const ns = { idFromName: (n: string) => env.HEALTH_STATS.idFromName(n), get: () => failing("stats object") };
    const h = await healthWithEnv({ HEALTH_STATS: ns as unknown as typeof env.HEALTH_STATS });
    expect(codes(h)).toEqual(["stats_unavailable"]);
    expect(h.webhooks).toBeNull();
    expect(h.outbox).toBeNull();
    expect(h.projection).not.toBeNull();
  });
});
