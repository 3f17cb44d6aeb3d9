/** DELETE /v1/users/:userId: erases a user everywhere, counts what it removed, is safe to repeat and to resume. */
import { env } from "cloudflare:workers";
import { TOMBSTONE_SECONDS } from "../src/objects/shared/tombstone";
import { describe, expect, it } from "vitest";
import { userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { conversationPrefix, transcriptKey } from "../src/records/keys";
import audioFixture from "./fixtures/audio.json";
import sipFailure from "./fixtures/call-initiation-failure-sip.json";
import { FIRST_TIME_CONTEXT, context, d1Count, flush, nowSeconds, postWebhook, r2Keys, transcription, uid } from "./helpers";
import { alarmOf, api, apiJson, doTables, footprint, initiation, pendingConversation, phoneNumber, u } from "./api-helpers";
import { homeDb } from "./shards";



async function storeConversation(userId: string, o: Parameters<typeof transcription>[0] = {}) {
  const event = transcription({ userId, startedAt: nowSeconds() - 100, ...o });
  expect((await postWebhook(event)).status).toBe(200);
  await flush(userId, event["data"].conversation_id);
  return event["data"].conversation_id as string;
}

async function storeCallFailure(fromNumber: string) {
  const event = structuredClone(sipFailure) as any;
  event.data.conversation_id = uid("fail");
  event.data.metadata.body.from_number = fromNumber;
  expect((await postWebhook(event)).status).toBe(200);
  await flush(null, event.data.conversation_id);
}

async function storeAudio(conversationId: string) {
  expect((await postWebhook({ ...audioFixture, data: { ...audioFixture.data, conversation_id: conversationId } })).status).toBe(200);
  // The audio's D1 row is written by its conversation object's outbox.
  await flush(null, conversationId);
}

/** A pending conversation whose delivery stopped after the R2 write (no D1 row yet). */
async function halfDelivered(userId: string): Promise<string> {
  const { id, raw } = await pendingConversation(userId);
  await env.AUDIO.put(transcriptKey(id), raw);
  return id;
}

const sum = (t: Record<string, number>) => Object.values(t).reduce((a, b) => a + b, 0);

describe("DELETE /v1/users/:userId", () => {
  it("removes every D1 row, R2 object, Durable Object table and phone link of the user, and says how many", async () => {
    const userId = uid("erase");
    const number = phoneNumber();
    const other = uid("bystander");

    const linked = await storeConversation(userId, { externalNumber: number, title: "Linked call" });
    await storeAudio(linked);
    const plain = await storeConversation(userId, { title: "Plain call" });
    // Audio stored under a key of the audio writer's choosing, outside the conversation's prefix.
    const customAudioKey = `audio/${uid("elsewhere")}.mp3`;
    await env.AUDIO.put(customAudioKey, new Uint8Array([1, 2, 3]));
    await homeDb(plain).prepare("INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, 'a', ?, 3, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', ?)")
      .bind(plain, customAudioKey, nowSeconds())
      .run();
    const pending = await halfDelivered(userId);
    await storeCallFailure(number);

    const bystanderConversation = await storeConversation(other, { title: "Not yours" });
    await storeAudio(bystanderConversation);
    await storeCallFailure(phoneNumber());
    const bystanderBefore = await footprint([bystanderConversation]);

    // Before: count everything the user has, store by store.
    const ids = [linked, plain, pending];
    const before = await footprint(ids, [customAudioKey]);
    expect(before).toEqual({ conversations: 2, turns: 10, audio: 2, r2: 5 });
    expect(await d1Count("users", "user_id = ?", userId)).toBe(1);
    expect(await d1Count("call_failures", "from_number = ? OR to_number = ?", number, number)).toBe(1);
    const tables = await doTables(userId);
    expect(tables).toMatchObject({ profile: 1, conversations: 3, phones: 1, outbox: 1, outbox_blobs: 0 });
    expect(await doTables(number)).toMatchObject({ phone_owner: 1 });
    expect((await initiation({ caller_id: number }).then((r) => r.json<any>())).user_id).toBe(userId);

    const res = await apiJson("DELETE", `/v1/users/${u(userId)}`);
    expect(res).toEqual({
      user_id: userId,
      status: "erased",
      erasure_id: expect.stringMatching(/^era_/),
      deleted: {
        conversations: before.conversations,
        turns: before.turns,
        audio: before.audio,
        call_failures: 1,
        r2_objects: before.r2,
        phone_links: 1,
        // The phone entry and the pending outbox item are removed as the erasure goes; the rest at the end.
        memory_rows: sum(tables) - tables["phones"]! - tables["outbox"]! - tables["outbox_blobs"]!,
      },
      unlinked_phone_numbers: [number],
    });

    // After: nothing of the user anywhere.
    expect(await footprint(ids, [customAudioKey])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
    expect(await d1Count("call_failures", "from_number = ? OR to_number = ?", number, number)).toBe(0);
    expect(await d1Count("conversations", "user_id = ?", userId)).toBe(0);
    expect(await d1Count("users", "user_id = ?", userId)).toBe(0);
    // Only the erasure's tombstone is left (src/objects/shared/tombstone.ts), and the alarm that removes it,
    // and the erasure mark, which stays for good: one row, no personal data but what its name says.
    expect(await doTables(userId)).toEqual({ tombstone: 1, erasure_mark: 1 });
    expect(Math.abs(((await alarmOf(userId)) ?? 0) / 1000 - (nowSeconds() + TOMBSTONE_SECONDS))).toBeLessThan(600);
    // The number's object held nothing but the link: it is gone too, but for the unlink's tombstone and the
    // mark that a user it was linked to was erased.
    expect(await doTables(number)).toEqual({ tombstone: 1, erasure_mark: 1 });
    // So is the audio's durable link in the conversation's own object (late audio is dropped).
    expect(await doTables(linked, "conversation")).toEqual({ tombstone: 1, erasure_mark: 1 });

    expect(await context(userId)).toEqual(FIRST_TIME_CONTEXT);
    expect((await api("GET", `/v1/users/${u(userId)}/memory`)).status).toBe(404);
    expect(((await apiJson("GET", `/v1/users/${u(userId)}/conversations`)) as any).conversations).toEqual([]);
    for (const id of ids) {
      expect((await api("GET", `/v1/conversations/${u(id)}`)).status).toBe(404);
      expect((await api("GET", `/v1/conversations/${u(id)}/audio`)).status).toBe(404);
    }
    const ring = await (await initiation({ caller_id: number })).json<any>();
    expect(ring).not.toHaveProperty("user_id");
    expect(ring.dynamic_variables.call_count).toBe(0);

    // Nobody else was touched.
    expect(await footprint([bystanderConversation])).toEqual(bystanderBefore);
    expect((await context(other))["call_count"]).toBe(1);

    // Safe to repeat: a second call finds nothing.
    expect(await apiJson("DELETE", `/v1/users/${u(userId)}`)).toEqual({
      user_id: userId,
      status: "erased",
      erasure_id: expect.stringMatching(/^era_/),
      deleted: { conversations: 0, turns: 0, audio: 0, call_failures: 0, r2_objects: 0, phone_links: 0, memory_rows: 0 },
      unlinked_phone_numbers: [],
    });
    expect(await doTables(userId)).toEqual({ tombstone: 1, erasure_mark: 1 });
  });

  it("resumes an erasure that stopped midway, and delivers nothing while it is unfinished", async () => {
    const saved = { ...LIMITS };
    const limits = LIMITS as { -readonly [K in keyof typeof LIMITS]: number };
    limits.eraseBatch = 2;
    limits.eraseBatchesPerCall = 1;
    limits.unlinkBatch = 1;
    try {
      const userId = uid("resume");
      const numbers = [phoneNumber(), phoneNumber()];
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await storeConversation(userId, { title: `Call ${i}` }));
      for (const n of numbers) await apiJson("PUT", `/v1/users/${u(userId)}/phones/${u(n)}`);
      const before = await footprint(ids);
      expect(before).toMatchObject({ conversations: 5, turns: 25, r2: 5 });

      // The Worker dies after one step: only part is done.
      const step = await userMemory(env, userId).erase(userId);
      expect(step.done).toBe(false);
      expect(step.unlinkedPhoneNumbers).toHaveLength(1);
      const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
      expect(m.erasing_since).not.toBeNull();
      expect(m.phone_numbers).toHaveLength(1);
      expect(await alarmOf(userId)).toBeNull();

      // Meanwhile a webhook is still acknowledged, but nothing reaches D1 or R2 until the erasure ends.
      // Its call started before the erasure began, so it is part of what is erased (a call that started
      // after is kept and remembered once the erasure is done: test/trust.test.ts).
      const late = transcription({ userId, startedAt: nowSeconds() - 120 });
      expect((await postWebhook(late)).status).toBe(200);
      expect(await userMemory(env, userId).flush()).toMatchObject({ delivered: 0 });
      expect(await d1Count("conversations", "conversation_id = ?", late["data"].conversation_id)).toBe(0);

      // Repeating the DELETE finishes the job over several steps.
      const res: any = await apiJson("DELETE", `/v1/users/${u(userId)}`);
      expect(res.deleted.conversations + step.counts.conversations).toBe(5);
      expect(res.deleted.turns + step.counts.turns).toBe(25);
      expect(res.deleted.r2_objects + step.counts.r2_objects).toBe(5);
      expect(res.deleted.phone_links + step.phoneLinks).toBe(2);
      expect([...res.unlinked_phone_numbers, ...step.unlinkedPhoneNumbers].sort()).toEqual([...numbers].sort());
      expect(await footprint([...ids, late["data"].conversation_id])).toEqual({ conversations: 0, turns: 0, audio: 0, r2: 0 });
      // One erasure, continued: its record adds up what every step, in either request, removed.
      expect(res.erasure_id).toBe(step.erasureId);
      expect(await apiJson("GET", `/v1/erasures/${res.erasure_id}`)).toMatchObject({
        state: "done",
        deleted: { d1: { conversations: 5, turns: 25 }, r2_objects: 5, phone_links: 2 },
      });
      expect(await doTables(userId)).toEqual({ tombstone: 1, erasure_mark: 1 });
      for (const n of numbers) expect((await (await initiation({ caller_id: n })).json<any>()).user_id).toBeUndefined();
    } finally {
      Object.assign(LIMITS, saved);
    }
  });

  it("erases a phone number's own memory and its link, leaving the app user's memory", async () => {
    const userId = uid("owner");
    const number = phoneNumber();
    const event = transcription({ userId: null, externalNumber: number, title: "Before any link", startedAt: nowSeconds() - 200 });
    expect(await (await postWebhook(event)).json()).toMatchObject({ user_id: number });
    const own = event["data"].conversation_id as string;
    await flush(number, own);
    await storeConversation(userId, { externalNumber: number, title: "App call" });
    await storeCallFailure(number);
    expect((await context(number))["call_count"]).toBe(1);

    const res: any = await apiJson("DELETE", `/v1/users/${u(number)}`);
    expect(res.deleted).toMatchObject({ conversations: 1, turns: 5, call_failures: 1, r2_objects: 1, phone_links: 1 });
    expect(await doTables(number)).toEqual({ tombstone: 1, erasure_mark: 1 });
    expect(await r2Keys(conversationPrefix(own))).toEqual([]);
    const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
    expect(m.phone_numbers).toEqual([]);
    expect(m.profile.call_count).toBe(1);
    expect((await (await initiation({ caller_id: number })).json<any>()).dynamic_variables.call_count).toBe(0);
  });

  it("does not erase a conversation another user owns, even if its id is named in this user's outbox", async () => {
    const [mallory, alice] = [uid("mallory"), uid("alice")];
    const shared = await storeConversation(alice, { title: "Alice's" });
    // The same id recorded for another user (a forged or colliding id), still pending in their outbox:
    // the erasure looks it up, finds that D1 attributes it to Alice, and leaves it.
    await pendingConversation(mallory, shared);
    const res: any = await apiJson("DELETE", `/v1/users/${u(mallory)}`);
    expect(res.deleted.conversations).toBe(0);
    expect(await footprint([shared])).toMatchObject({ conversations: 1, turns: 5, r2: 1 });
    expect((await context(alice))["call_count"]).toBe(1);
  });
});
