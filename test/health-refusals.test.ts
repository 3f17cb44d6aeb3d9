/**
 * The health page and a refused-signature storm (issue 16): refusals are counted by reason without
 * a storage write per request (src/memory/health-counts.ts flushes per isolate), and the page names
 * the storm, and only the storm.
 */
import { SELF, createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { count, flushNow, FLUSH_EVENTS, FLUSH_INTERVAL_MS, maybeFlush } from "../src/memory/health-counts";
import { statsObject } from "../src/memory/objects";
import { MAX_KEYS, RETAIN_HOURS } from "../src/objects/health-stats/stats";
import { hourOf } from "../src/lib/time";
import { codes, health, sum } from "./health-helpers";
import { apiGet, BASE, d1Count, nowSeconds, postWebhook, signatureHeader, transcription } from "./helpers";
import { expectLogs } from "./logs";

const N = 300;

/** One refused request of each kind, `n` of each, sent `parallel` at a time. */
async function storm(n: number, parallel = 25): Promise<number[]> {
  const statuses: number[] = [];
  const kinds = [
    async (body: string) => postWebhook(body, { header: null }),
    async (body: string) => postWebhook(body, { secret: "whsec_not_ours" }),
    async (body: string) => postWebhook(body, { header: await signatureHeader(body, { t: nowSeconds() - 7200 }) }),
  ];
  const jobs = kinds.flatMap((k) => Array.from({ length: n }, () => k));
  for (let i = 0; i < jobs.length; i += parallel) {
    const batch = jobs.slice(i, i + parallel).map((k) => k(JSON.stringify(transcription())).then((r) => r.status));
    statuses.push(...(await Promise.all(batch)));
  }
  return statuses;
}

describe("GET /v1/health/details", () => {
  it("needs the full API key", async () => {
    expect((await apiGet("/v1/health/details", null)).status).toBe(401);
    expect((await apiGet("/v1/health/details", "test-agent-key")).status).toBe(403);
  });

  it("is ok on a quiet deployment, forwarding off and no dead letters", async () => {
    const h = await health();
    expect(h.status).toBe("ok");
    expect(h.problems).toEqual([]);
    expect(h.forwarding).toEqual({ destinations: 0, failures: 0, oldest_failed_at: null, by_destination: [] });
    expect(h.charts.calls_per_day.days).toHaveLength(30);
    expect(h.charts.refusals_per_hour.hours).toHaveLength(24);
    expect(h.charts.call_durations.counts).toHaveLength(h.charts.call_durations.buckets.length);
  });
});

describe("a refused-signature storm", () => {
  it("is counted by reason, names the storm and nothing else, and writes storage a bounded number of times", async () => {
    const before = await health();
    const d1Before = await d1Count("conversations");
    const started = Date.now();
    const statuses = await storm(N / 3);
    const elapsed = Date.now() - started;
    expect(statuses.every((s) => s === 401)).toBe(true);

    const h = await health();
    expect(h.webhooks!.last_24h["refused"]).toMatchObject({ signature_missing: N / 3, signature_mismatch: N / 3, signature_expired: N / 3 });
    expect(codes(h)).toEqual(["webhook_refusals"]);
    expect(h.status).toBe("warning");
    expect(h.problems[0]!.message).toMatch(/300 of 300 post-call webhook requests were refused/);
    expect(sum(h.charts.refusals_per_hour.reasons["signature_mismatch"])).toBe(N / 3);
    expect(h.outbox!.objects).toBe(0);
    expect(h.audio!.missing_24h).toBe(0);

    // Storage: the stats object took a few flushes (by events, by time, and the page's own), each a
    // handful of rows, never one per request; and nothing else was written anywhere.
    const flushes = h.counters!.flushes - before.counters!.flushes;
    const rows = h.counters!.rows_written - before.counters!.rows_written;
    const bound = Math.ceil(N / FLUSH_EVENTS) + Math.floor(elapsed / FLUSH_INTERVAL_MS) + 2;
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThanOrEqual(bound);
    // Per flush: at most 3 reasons x 2 hour buckets (a storm across an hour boundary) + the meta row.
    expect(rows).toBeLessThanOrEqual(flushes * 7);
    expect(rows).toBeLessThan(N / 10);
    expect(await d1Count("conversations")).toBe(d1Before);
  });

  it("counts accepted events by type, with the last of each", async () => {
    const event = transcription();
    expect((await postWebhook(event)).status).toBe(200);
    expect((await postWebhook(event)).status).toBe(200);
    const h = await health();
    expect(h.webhooks!.last_24h["accepted"]!["post_call_transcription"]).toBe(1);
    expect(h.webhooks!.last_24h["duplicate"]!["post_call_transcription"]).toBe(1);
    expect(h.webhooks!.last_accepted["post_call_transcription"]!.conversation_id).toBe(event["data"].conversation_id);
    expect(h.webhooks!.last_30d["refused"]!["signature_mismatch"]).toBe(N / 3);
  });

  it("counts the initiation webhook's answers and refusals apart", async () => {
    const body = JSON.stringify({ caller_id: "+14155550177", agent_id: "a", called_number: "+1", call_sid: "s" });
    const send = (key: string | null) =>
      SELF.fetch(`${BASE}/webhooks/elevenlabs/initiation`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
        body,
      });
    expect((await send("test-api-key")).status).toBe(200);
    expect((await send(null)).status).toBe(401);
    const h = await health();
    expect(h.webhooks!.last_24h["accepted"]!["initiation"]).toBe(1);
    expect(h.webhooks!.last_24h["initiation_refused"]).toEqual({ api_key_missing: 1 });
    expect(sum(h.charts.refusals_per_hour.reasons["initiation:api_key_missing"])).toBe(1);
  });
});

describe("the per-isolate tally", () => {
  it("flushes at most once per FLUSH_EVENTS events (or FLUSH_INTERVAL_MS), never per event", async () => {
    await flushNow(env);
    const before = await statsObject(env).readStats(nowSeconds());
    const waits: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void waits.push(p), passThroughOnException() {} } as unknown as ExecutionContext;
    const events = 5 * FLUSH_EVENTS + 17;
    const started = Date.now();
    for (let i = 0; i < events; i++) {
      count("refused", "payload_too_large", nowSeconds());
      maybeFlush(env, ctx);
      if (i % 100 === 0) await Promise.all(waits);
    }
    await Promise.all(waits);
    const elapsed = Date.now() - started;
    expect(waits.length).toBeGreaterThanOrEqual(5);
    expect(waits.length).toBeLessThanOrEqual(Math.ceil(events / FLUSH_EVENTS) + Math.floor(elapsed / FLUSH_INTERVAL_MS) + 1);
    const n = (v: typeof before) => v.window24h.find((r) => r.metric === "refused" && r.key === "payload_too_large")?.n ?? 0;
    // What the stats object has before the last flush: all but fewer than FLUSH_EVENTS of them.
    const flushed = await statsObject(env).readStats(nowSeconds());
    expect(events - (n(flushed) - n(before))).toBeLessThan(FLUSH_EVENTS);
    await flushNow(env);
    const after = await statsObject(env).readStats(nowSeconds());
    expect(after.writes.flushes - before.writes.flushes).toBe(waits.length + 1);
    expect(n(after) - n(before)).toBe(events);
  });
});

describe("the stats object", () => {
  it("stays bounded: at most MAX_KEYS keys an hour (the rest count as other), nothing older than RETAIN_HOURS", async () => {
    const now = nowSeconds();
    const hour = hourOf(now) - 3 * 3600;
    const stub = statsObject(env);
    await stub.recordCounts({
      counts: [
        ...Array.from({ length: MAX_KEYS + 10 }, (_, i): [number, string, string, number] => [hour, "ignored", `future_type_${i}`, 2]),
        [hourOf(now) - (RETAIN_HOURS + 24) * 3600, "refused", "signature_expired", 1000],
      ],
      last: [],
    });
    const view = await stub.readStats(now);
    const ignored = view.window24h.filter((r) => r.metric === "ignored");
    expect(ignored).toHaveLength(MAX_KEYS + 1);
    expect(ignored.find((r) => r.key === "other")!.n).toBe(20);
    expect(view.window30d.find((r) => r.metric === "refused" && r.key === "signature_expired")?.n ?? 0).toBeLessThan(1000);
  });
});

describe("a stats object that cannot be reached", () => {
  it("changes no webhook's answer, and the tallies wait for the next flush", async () => {
    const logs = expectLogs(/^health counters not flushed: stats object: simulated outage$/);
    await flushNow(env);
    const statsId = env.HEALTH_STATS.idFromName("stats:global");
    // Failing synchronously, the harder case: nothing may escape into the webhook's answer.
    let attempts = 0;
    const broken = new Proxy({}, {
      get: () => () => {
        attempts++;
        throw new Error("stats object: simulated outage");
      },
    });
    const ns = {
      idFromName: (n: string) => env.HEALTH_STATS.idFromName(n),
      get: (id: DurableObjectId) => (id.equals(statsId) ? broken : env.HEALTH_STATS.get(id)),
    };
    const patched = { ...env, HEALTH_STATS: ns as unknown as typeof env.HEALTH_STATS };
    for (let i = 0; i < FLUSH_EVENTS; i++) count("refused", "invalid_json", nowSeconds());
    const before = (await statsObject(env).readStats(nowSeconds())).window24h.find((r) => r.key === "invalid_json")?.n ?? 0;

    const ctx = createExecutionContext();
    const event = transcription();
    const res = await worker.fetch(
      new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "ElevenLabs-Signature": await signatureHeader(JSON.stringify(event)) }, body: JSON.stringify(event) }),
      patched,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "stored" });
    // The webhook's flush was tried and failed: the stats object got nothing of it, and the next
    // flush brings everything it held.
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(logs.lines.length).toBeGreaterThanOrEqual(1);
    expect((await statsObject(env).readStats(nowSeconds())).window24h.find((r) => r.key === "invalid_json")?.n ?? 0).toBe(before);
    await flushNow(env);
    const after = (await statsObject(env).readStats(nowSeconds())).window24h.find((r) => r.key === "invalid_json")?.n ?? 0;
    expect(after - before).toBe(FLUSH_EVENTS);
  });
});
