/**
 * RETENTION_DAYS (3650 in vitest.config.ts): the Durable Object alarm removes conversations older than
 * that from D1, R2 and the memory's recent list, and keeps the counters. Run with the alarm directly.
 */
import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { ownerOf, restartObject, userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { setRetentionAnchor } from "../src/objects/shared/tables";
import { conversationPrefix } from "../src/records/keys";
import audioFixture from "./fixtures/audio.json";
import { context, d1Count, flush, nowSeconds, postWebhook, r2Keys, uid } from "./helpers";
import { alarmOf, apiJson, deliverParked, doTables, footprint, pendingConversation, u } from "./api-helpers";
import { expectLogs } from "./logs";
import { homeDb } from "./shards";

const DAYS = 3650;
const DAY = 86_400;
const ancient = (extraDays: number) => nowSeconds() - (DAYS + extraDays) * DAY;

/** Arms the object's alarm and runs it now (a far-off time, so it cannot also fire on its own first). */
async function runAlarm(stub: DurableObjectStub) {
  await runInDurableObject(stub, (_o, state) => state.storage.setAlarm(Date.now() + 3_600_000));
  expect(await runDurableObjectAlarm(stub)).toBe(true);
}

/**
 * What runDurableObjectAlarm does (delete the alarm, run alarm()), then reads the time the handler
 * re-armed and cancels it, in the same turn: an alarm re-armed for "now" would otherwise be fired by
 * the runtime itself at a moment the test cannot know.
 */
async function alarmOnce(stub: DurableObjectStub): Promise<number | null> {
  return runInDurableObject(stub, async (memory, state) => {
    await state.storage.deleteAlarm();
    await memory.alarm!();
    const next = await state.storage.getAlarm();
    await state.storage.deleteAlarm();
    return next;
  });
}

describe("retention alarm", () => {
  it("removes expired conversations from D1, R2 and the recent list, keeping counters and facts", async () => {
    const userId = uid("aging");
    const stub = userMemory(env, userId);
    const old1 = await pendingConversation(userId, undefined, { startedAt: ancient(1), title: "Old one", facts: { city: "Lyon" } });
    const old2 = await pendingConversation(userId, undefined, { startedAt: ancient(400), title: "Older still" });
    const recent = await pendingConversation(userId, undefined, { startedAt: nowSeconds() - DAY, title: "Yesterday" });
    expect(await deliverParked(userId)).toBe(0);
    await postWebhook({ ...audioFixture, data: { ...audioFixture.data, conversation_id: old2.id } });
    // The audio's D1 row is written by its conversation object's outbox.
    await flush(null, old2.id);
    const elsewhere = `audio/${uid("k")}.mp3`;
    await env.AUDIO.put(elsewhere, new Uint8Array([9]));
    await homeDb(old1.id).prepare("INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, 'a', ?, 1, 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb', ?)")
      .bind(old1.id, elsewhere, nowSeconds())
      .run();

    expect(await footprint([old1.id, old2.id], [elsewhere])).toEqual({ conversations: 2, turns: 10, audio: 2, r2: 4 });

    await runAlarm(stub);

    expect(await footprint([old1.id, old2.id], [elsewhere])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect(await footprint([recent.id])).toEqual({ conversations: 1, turns: 5, audio: 0, r2: 1 });
    expect((await stub.describe())!.conversations.map((c) => c.conversation_id)).toEqual([recent.id]);
    const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
    expect(m.recent_conversations.map((c: any) => c.title)).toEqual(["Yesterday"]);
    expect(m.profile).toMatchObject({ call_count: 3, total_duration_secs: 3 * 212, first_call_at: new Date(old2.startedAt * 1000).toISOString() });
    expect(m.facts.find((f: any) => f.id === "city")).toMatchObject({ value: "Lyon", conversation_id: old1.id });
    expect(await context(userId)).toMatchObject({ call_count: 3, previous_topics: "Yesterday", city: "Lyon" });
    // Re-armed for the moment the next conversation expires.
    expect(await alarmOf(userId)).toBe((recent.startedAt + DAYS * DAY) * 1000);
  });

  it("clears the last call's summary once the last call itself has expired, keeping the counters", async () => {
    const userId = uid("dormant");
    const stub = userMemory(env, userId);
    const only = await pendingConversation(userId, undefined, { startedAt: ancient(10), title: "Long ago" });
    await deliverParked(userId);
    await runAlarm(stub);
    expect(await footprint([only.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect(await context(userId)).toMatchObject({
      call_count: 1,
      is_returning_user: true,
      previous_topics: "",
      last_call_summary: "",
      last_call_at: new Date(only.startedAt * 1000).toISOString(),
    });
    // Nothing left to expire: no alarm.
    expect(await alarmOf(userId)).toBeNull();
  });

  it("continues by alarm when more has expired than one run removes", async () => {
    const saved = { ...LIMITS };
    const limits = LIMITS as { -readonly [K in keyof typeof LIMITS]: number };
    limits.eraseBatch = 2;
    limits.eraseBatchesPerCall = 1;
    try {
      const userId = uid("backlog");
      const stub = userMemory(env, userId);
      const old = [];
      for (let i = 0; i < 5; i++) old.push((await pendingConversation(userId, undefined, { startedAt: ancient(i + 1) })).id);
      const keep = await pendingConversation(userId, undefined, { startedAt: nowSeconds() - 60 });
      await deliverParked(userId);
      const remaining: number[] = [];
      const rearmed: (number | null)[] = [];
      for (let run = 0; run < 3; run++) {
        rearmed.push(await alarmOnce(stub));
        remaining.push((await footprint(old)).conversations);
      }
      expect(remaining).toEqual([3, 1, 0]);
      // More to do: re-armed at once (at or before the time it was read); done: at the next expiry.
      expect(rearmed[0]).toBeLessThanOrEqual(Date.now());
      expect(rearmed[1]).toBeLessThanOrEqual(Date.now());
      expect(rearmed[2]).toBe((keep.startedAt + DAYS * DAY) * 1000);
      expect(await d1Count("conversations", "conversation_id = ?", keep.id)).toBe(1);
    } finally {
      Object.assign(LIMITS, saved);
    }
  });

  it("expires an unattributed conversation through its own object, and no one else's", async () => {
    const mine = await pendingConversation(null, undefined, { startedAt: ancient(3) });
    const other = await pendingConversation(null, undefined, { startedAt: ancient(3) });
    const stub = ownerOf(env, null, mine.id);
    await deliverParked(null, mine.id);
    await deliverParked(null, other.id);
    await runAlarm(stub);
    expect(await footprint([mine.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect((await footprint([other.id])).conversations).toBe(1);
  });

  it("never expires a conversation within the period", async () => {
    const userId = uid("fresh");
    const stub = userMemory(env, userId);
    const edge = await pendingConversation(userId, undefined, { startedAt: nowSeconds() - DAYS * DAY + 3600 });
    await deliverParked(userId);
    await runAlarm(stub);
    expect((await footprint([edge.id])).conversations).toBe(1);
    expect(await alarmOf(userId)).toBe((edge.startedAt + DAYS * DAY) * 1000);
  });
});

describe("daily retention sweep (scheduled)", () => {
  it("reaches conversations no alarm is armed for, and unattributed ones", async () => {
    expectLogs(/^retention sweep: \d+ users, /);
    const userId = uid("legacy");
    const stub = userMemory(env, userId);
    const old = await pendingConversation(userId, undefined, { startedAt: ancient(2), title: "Legacy" });
    const orphan = await pendingConversation(null, undefined, { startedAt: ancient(2) });
    await deliverParked(userId);
    await deliverParked(null, orphan.id);
    // As if stored before retention existed: no anchor, no alarm.
    await runInDurableObject(stub, (_o, state) => setRetentionAnchor(state.storage.sql, null));
    expect((await stub.describe())!.retentionAnchor).toBeNull();
    await runInDurableObject(ownerOf(env, null, orphan.id), (_o, state) => state.storage.deleteAlarm());
    expect(await footprint([old.id, orphan.id])).toMatchObject({ conversations: 2 });

    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "17 3 * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);

    expect(await footprint([old.id, orphan.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect(await r2Keys(conversationPrefix(old.id))).toEqual([]);
    const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
    expect(m.recent_conversations).toEqual([]);
    expect(m.profile.call_count).toBe(1);
  });

  it("erases expired rows of a user whose object holds no memory, instead of meeting them every day", async () => {
    expectLogs(/^retention sweep: \d+ users, /);
    const userId = uid("memoryless");
    const old = await pendingConversation(userId, undefined, { startedAt: ancient(5) });
    await deliverParked(userId);
    // The object's storage is gone (as after a platform loss, which also ends its instance); D1 and
    // R2 still hold the conversation.
    await runInDurableObject(userMemory(env, userId), (_o, state) => state.storage.deleteAll());
    await restartObject(userMemory(env, userId));
    expect(await userMemory(env, userId).describe()).toBeNull();
    expect((await footprint([old.id])).conversations).toBe(1);
    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "17 3 * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await footprint([old.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    // A table check on purpose: the sweep must not leave storage behind in an object that holds none.
    expect(await doTables(userId)).toEqual({});
  });
});
