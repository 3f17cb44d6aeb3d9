/**
 * The health page and a stalled outbox (issue 16): D1 failing for one user's object makes its
 * outbox report its backlog to the stats object; the page names the backlog, and only the backlog;
 * once D1 recovers the report is withdrawn.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { REPORT_EVERY_SECONDS, worthReporting } from "../src/objects/shared/backlog-report";
import { STUCK_ATTEMPTS } from "../src/objects/shared/outbox";
import { fault, faultyD1, injectBindings, retryNow } from "./faults";
import { codes, health } from "./health-helpers";
import { d1Count, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { userMemory } from "./objects";
import { expectLogs, outboxFailure } from "./logs";

describe("a stalled outbox", () => {
  it("shows as a backlog with its age and last error, apart from refusals and missing audio, and clears on recovery", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("stalled");
    const stub = userMemory(env, userId);
    const d1 = fault("down");
    const restore = await injectBindings(stub, { DB: faultyD1(d1) });
    const events = [transcription({ userId, startedAt: nowSeconds() - 900 }), transcription({ userId, startedAt: nowSeconds() - 600 })];
    for (const e of events) expect((await postWebhook(e)).status).toBe(200);
    // The alarm may already have tried; two more runs fail for certain.
    await retryNow(stub);
    await retryNow(stub);

    const h = await health();
    expect(codes(h)).toEqual(["outbox_backlog"]);
    expect(h.outbox).toMatchObject({ objects: 1, pending: 2 });
    expect(h.outbox!.max_attempts).toBeGreaterThanOrEqual(1); // refreshed only when it doubles, is stuck, or 5 min later
    expect(h.outbox!.max_attempts).toBeLessThan(STUCK_ATTEMPTS);
    expect(h.problems[0]!.severity).toBe("warning");
    expect(h.outbox!.oldest_age_seconds).toBeGreaterThanOrEqual(0);
    expect(h.outbox!.worst[0]).toMatchObject({ object: `user:${userId}`, pending: 2 });
    expect(h.outbox!.worst[0]!.last_error).toMatch(/simulated outage/);
    expect(h.problems[0]!.message).toMatch(/2 acknowledged events in 1 outbox are not yet in D1\/R2/);
    // The webhooks themselves were fine.
    expect(h.webhooks!.last_24h["accepted"]!["post_call_transcription"]).toBe(2);
    expect(h.webhooks!.last_24h["refused"]).toEqual({});

    await restore();
    await retryNow(stub);
    expect(await d1Count("conversations", "user_id = ?", userId)).toBe(2);
    const after = await health();
    expect(after.outbox).toMatchObject({ objects: 0, pending: 0 });
    expect(codes(after)).toEqual([]);
    // The two reached D1 late, and the lag says so.
    expect(after.projection!.conversations_24h).toBe(2);
    expect(after.projection!.max_lag_seconds).toBeGreaterThanOrEqual(0);
  });

  it("is an error once an item is stuck", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("stuck");
    const stub = userMemory(env, userId);
    const restore = await injectBindings(stub, { DB: faultyD1(fault("down")) });
    expect((await postWebhook(transcription({ userId }))).status).toBe(200);
    for (let i = 0; i < STUCK_ATTEMPTS; i++) await retryNow(stub);
    const h = await health();
    expect(codes(h)).toEqual(["outbox_backlog"]);
    expect(h.problems[0]!.severity).toBe("error");
    expect(h.status).toBe("error");
    await restore();
    await retryNow(stub);
    expect(codes(await health())).toEqual([]);
  });

  it("is withdrawn when the user is erased while it waits", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("erased");
    const stub = userMemory(env, userId);
    const restore = await injectBindings(stub, { DB: faultyD1(fault("down")) });
    expect((await postWebhook(transcription({ userId }))).status).toBe(200);
    await retryNow(stub);
    expect((await health()).outbox!.objects).toBe(1);
    await restore();
    const { apiGet } = await import("./helpers");
    for (let i = 0; i < 10; i++) {
      const res = await apiGet(`/v1/users/${userId}`, undefined, { method: "DELETE" });
      if (res.status === 200) break;
    }
    expect((await health()).outbox!.objects).toBe(0);
  });
});

describe("how often a failing outbox reports (worthReporting)", () => {
  const report = (pending: number, maxAttempts: number, at: number) => ({ object: "user:x", pending, oldestCreatedAt: 0, maxAttempts, lastError: null, at });
  const last = { at: 1000, pending: 4, stuck: false };

  it("reports the first time, on recovery, when stuck, when the backlog doubles or halves, and every 5 minutes", () => {
    expect(worthReporting(null, report(1, 1, 1000))).toBe(true);
    expect(worthReporting(last, report(0, 0, 1001))).toBe(true);
    expect(worthReporting(last, report(4, STUCK_ATTEMPTS, 1001))).toBe(true);
    expect(worthReporting(last, report(8, 3, 1001))).toBe(true);
    expect(worthReporting(last, report(2, 3, 1001))).toBe(true);
    expect(worthReporting(last, report(4, 3, 1000 + REPORT_EVERY_SECONDS))).toBe(true);
  });

  it("stays quiet otherwise: a failure that changes little is not a call", () => {
    expect(worthReporting(last, report(4, 5, 1060))).toBe(false);
    expect(worthReporting(last, report(7, 6, 1000 + REPORT_EVERY_SECONDS - 1))).toBe(false);
    expect(worthReporting(last, report(3, 6, 1200))).toBe(false);
  });
});
