/**
 * Where features built apart meet: streamed audio x erasure x retention, the console's D1 indexes,
 * and the per-isolate context cache. Each test names the seam it guards.
 */
import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import type { ConversationLedger } from "../src/objects/conversation-ledger/conversation-ledger";
import { conversationMemory, ownerOf, setOutboxDue, userMemory } from "./objects";
import type { UserMemory } from "../src/objects/user-memory/user-memory";
import audioFixture from "./fixtures/audio.json";
import { d1AudioRow } from "./audio-helpers";
import { apiGet, flush, nowSeconds, postWebhook, transcription, userIdOf } from "./helpers";
import { api, apiJson, deliverParked, phoneNumber, doTables, footprint, pendingConversation, u } from "./api-helpers";
import { expectLogs } from "./logs";

/** The audio route's status for a conversation, its body read to the end (a body left unread is cancelled at teardown, which workerd reports). */
async function servedStatus(conversationId: string): Promise<number> {
  const res = await apiGet(`/v1/conversations/${u(conversationId)}/audio`);
  await res.arrayBuffer();
  return res.status;
}
import { homeDb, rowDb } from "./shards";
import { allShards } from "../src/storage/shards";

const DAYS = 3650;
const DAY = 86_400;
const ancient = (extraDays: number) => nowSeconds() - (DAYS + extraDays) * DAY;

async function postAudio(conversationId: string) {
  const res = await postWebhook({ ...audioFixture, data: { ...audioFixture.data, conversation_id: conversationId } });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(await flush(null, conversationId)).toMatchObject({ failed: 0 });
  expect(await d1AudioRow(conversationId)).not.toBeNull();
}

async function sweep() {
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ cron: "17 3 * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

describe("retention x audio", () => {
  it("expires an unattributed conversation with audio through its own object: every copy goes, audio is no longer served", async () => {
    const orphan = await pendingConversation(null, undefined, { startedAt: ancient(3) });
    // Audio first: until the transcript is in D1 nothing is anchored, so no alarm the runtime fires
    // on its own can expire the conversation before the test does.
    await postAudio(orphan.id);
    // The audio armed the object's alarm: run it to its end now (it delivers the audio item and finds
    // nothing anchored), so that it cannot still be running when the conversation is delivered below
    // and expire it then, before the test asks.
    await runDurableObjectAlarm(conversationMemory(env, orphan.id));
    expect(await deliverParked(null, orphan.id)).toBe(0);
    expect(await footprint([orphan.id])).toEqual({ conversations: 1, turns: 5, audio: 1, r2: 2 });

    const stub = ownerOf(env, null, orphan.id);
    // The same work the alarm does, with its report (the alarm only logs a failure).
    expect(await stub.applyRetention()).toMatchObject({ more: false, counts: { conversations: 1, turns: 5, audio: 1, r2_objects: 2 } });

    expect(await footprint([orphan.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect((await apiGet(`/v1/conversations/${u(orphan.id)}/audio`)).status).toBe(404);
    // A table check on purpose: expiring its conversation wipes the object, leaving no table behind.
    expect(await doTables(orphan.id, "conversation")).toEqual({});
  });

  it("the sweep removes audio whose transcript never came (or was erased before it), once it is past the period", async () => {
    expectLogs(/^retention sweep: \d+ users, /);
    const lone = `conv_${crypto.randomUUID()}`;
    const fresh = `conv_${crypto.randomUUID()}`;
    await postAudio(lone);
    await postAudio(fresh);
    // Audio carries no start time: the time it was stored stands in for it.
    await homeDb(lone).prepare("UPDATE audio SET stored_at = ? WHERE conversation_id = ?").bind(ancient(1), lone).run();
    expect(await footprint([lone])).toEqual({ conversations: 0, turns: 0, audio: 1, r2: 1 });

    await sweep();

    expect(await footprint([lone])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect((await apiGet(`/v1/conversations/${u(lone)}/audio`)).status).toBe(404);
    expect(await footprint([fresh])).toEqual({ conversations: 0, turns: 0, audio: 1, r2: 1 });
    expect(await servedStatus(fresh)).toBe(200);
  });
});

describe("erasure x audio", () => {
  it("erases audio whose D1 row is not written yet: no longer served, and its late delivery writes nothing", async () => {
    const event = transcription({ startedAt: nowSeconds() - 100 });
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);
    expect(await flush(userId, conversationId)).toMatchObject({ failed: 0, pending: 0 });
    // The audio is acknowledged (its link is durable in the conversation's object) but its D1 write is
    // still waiting to be retried, as while D1 fails.
    const key = `audio/${crypto.randomUUID()}.mp3`;
    await env.AUDIO.put(key, new Uint8Array([0x49, 0x44, 0x33]));
    await runInDurableObject(ownerOf(env, null, conversationId), async (memory, state) => {
      await (memory as ConversationLedger).recordAudio({ conversationId, agentId: null, key, bytes: 3, sha256: "0".repeat(64), receivedAt: nowSeconds() });
      setOutboxDue(state.storage.sql, Date.now() + 365 * 86_400_000);
      await state.storage.deleteAlarm();
    });
    expect(await servedStatus(conversationId)).toBe(200);

    expect((await api("DELETE", `/v1/users/${u(userId)}`)).status).toBe(200);

    expect((await apiGet(`/v1/conversations/${u(conversationId)}/audio`)).status).toBe(404);
    expect(await env.AUDIO.head(key)).toBeNull();
    // The conversation's object was wiped with its pending delivery: nothing is left to write D1 later
    // (a table check on purpose: only the erasure's tombstone is left behind).
    expect(await doTables(conversationId, "conversation")).toEqual({ tombstone: 1, erasure_mark: 1 });
    expect(await flush(null, conversationId)).toEqual({ delivered: 0, failed: 0, pending: 0 });
    expect(await footprint([conversationId], [key])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
  });
});

describe("console indexes x retention and erasure", () => {
  async function directoryRow(userId: string) {
    const body = await (await apiGet(`/v1/users?q=${u(userId)}`)).json<{ users: { user_id: string }[] }>();
    return body.users.find((x) => x.user_id === userId) ?? null;
  }
  /**
   * Full-text documents of these conversations (one each; the index is contentless, keyed by the row's
   * doc_id, which is remembered so a document left behind by a deleted row is still found).
   */
  const docIds = new Map<string, number>();
  const docDbs = new Map<string, D1Database>();
  async function indexedTurns(ids: string[]) {
    let n = 0;
    for (const id of ids) {
      // The document is in the row's shard: remembered with its doc_id (src/storage/shards.ts).
      const db = await rowDb(id);
      const row = await db.prepare("SELECT doc_id FROM conversations WHERE conversation_id = ?").bind(id).first<{ doc_id: number }>();
      if (row) docIds.set(id, row.doc_id);
      if (row) docDbs.set(id, db);
      const docId = docIds.get(id);
      if (docId === undefined) continue;
      const hit = await docDbs.get(id)!.prepare(
        "SELECT count(*) AS n FROM conversations_fts WHERE conversations_fts MATCH 'replacement OR order OR help' AND rowid = ?",
      )
        .bind(docId)
        .first<{ n: number }>();
      n += hit?.n ?? 0;
    }
    for (const db of allShards(env)) await db.prepare("INSERT INTO conversations_fts (conversations_fts) VALUES ('integrity-check')").run();
    return n;
  }

  it("retention that removes some of a user's conversations leaves their directory row and the search index true", async () => {
    const userId = `dir-${crypto.randomUUID()}`;
    const recentStart = nowSeconds() - DAY;
    const old = await pendingConversation(userId, undefined, { startedAt: ancient(2) });
    const older = await pendingConversation(userId, undefined, { startedAt: ancient(9) });
    const recent = await pendingConversation(userId, undefined, { startedAt: recentStart });
    expect(await deliverParked(userId)).toBe(0);
    expect(await directoryRow(userId)).toMatchObject({ conversation_count: 3, first_call_at: new Date(older.startedAt * 1000).toISOString() });
    const perConversation = await indexedTurns([recent.id]);
    expect(perConversation).toBeGreaterThan(0);
    expect(await indexedTurns([old.id, older.id])).toBe(2 * perConversation);

    expect(await userMemory(env, userId).applyRetention()).toMatchObject({ more: false, counts: { conversations: 2 } });

    expect(await directoryRow(userId)).toEqual({
      user_id: userId,
      conversation_count: 1,
      first_call_at: new Date(recentStart * 1000).toISOString(),
      last_call_at: new Date(recentStart * 1000).toISOString(),
    });
    expect(await indexedTurns([old.id, older.id])).toBe(0);
    expect(await indexedTurns([recent.id])).toBe(perConversation);
  });

  it("erasing a phone number's own memory removes its directory row and its turns from the index", async () => {
    const number = phoneNumber();
    const event = transcription({ userId: null, externalNumber: number, startedAt: nowSeconds() - 100 });
    const conversationId = event["data"].conversation_id as string;
    expect(await (await postWebhook(event)).json()).toMatchObject({ user_id: number });
    expect(await flush(number, conversationId)).toMatchObject({ failed: 0, pending: 0 });
    expect(await directoryRow(number)).toMatchObject({ conversation_count: 1 });
    expect(await indexedTurns([conversationId])).toBeGreaterThan(0);

    expect((await api("DELETE", `/v1/users/${u(number)}`)).status).toBe(200);

    expect(await directoryRow(number)).toBeNull();
    expect(await indexedTurns([conversationId])).toBe(0);
  });

  it("the sweep's erasure of expired unattributed conversations leaves the search index true", async () => {
    expectLogs(/^retention sweep: \d+ users, /);
    const orphan = await pendingConversation(null, undefined, { startedAt: ancient(4) });
    expect(await deliverParked(null, orphan.id)).toBe(0);
    expect(await indexedTurns([orphan.id])).toBeGreaterThan(0);
    await sweep();
    expect(await footprint([orphan.id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect(await indexedTurns([orphan.id])).toBe(0);
  });
});

describe("phone links x audio", () => {
  /** Whether the memory's recent conversation says it has audio (undefined: not in this memory). */
  async function hasAudioIn(userId: string, conversationId: string) {
    return (await userMemory(env, userId).describe())?.conversations.find((c) => c.conversation_id === conversationId)?.has_audio;
  }

  for (const audioFirst of [false, true]) {
    it(`marks audio in the linked app user's memory, not the number's (audio ${audioFirst ? "before" : "after"} the transcript)`, async () => {
      const userId = `app-${crypto.randomUUID()}`;
      const number = phoneNumber();
      expect((await api("PUT", `/v1/users/${u(userId)}/phones/${u(number)}`)).status).toBe(200);
      const event = transcription({ userId: null, externalNumber: number, startedAt: nowSeconds() - 100 });
      const conversationId = event["data"].conversation_id as string;
      if (audioFirst) await postAudio(conversationId);
      expect(await (await postWebhook(event)).json()).toMatchObject({ user_id: userId });
      expect(await flush(userId, conversationId)).toMatchObject({ failed: 0, pending: 0 });
      if (!audioFirst) await postAudio(conversationId);
      expect(await hasAudioIn(userId, conversationId)).toBe(true);
      expect(await hasAudioIn(number, conversationId)).toBeUndefined();
      const list: any = await apiJson("GET", `/v1/users/${u(userId)}/conversations`);
      expect(list.conversations).toMatchObject([{ conversation_id: conversationId, has_audio: true, user_id_source: "phone_link" }]);
    });
  }
});
