/**
 * The recall backfill: a user whose memory predates the recall index (schema version 2) gets their
 * stored conversations indexed from D1 by the object's alarm, in bounded runs, while their webhooks
 * keep being accepted.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backfillRun } from "../src/objects/user-memory/recall-backfill";
import { LIMITS } from "../src/objects/shared/limits";
import { apiGet, nowSeconds, postWebhook, uid } from "./helpers";
import { restartObject, userMemory } from "./objects";
import { conversationWith, recallFor, record } from "./recall-helpers";

/** Turns a user's object back into what version 2 wrote: no recall index, no fact history. */
async function makeVersion2(userId: string): Promise<void> {
  // This test exists to check the upgrade, so it rewrites the object's tables. The outbox is run
  // to the end first and the alarm removed in the same step as the tables, so no run of the old
  // instance (which knows its tables exist) can start between the drop and the restart.
  await userMemory(env, userId).flush();
  await runInDurableObject(userMemory(env, userId), async (_m, state) => {
    await state.storage.deleteAlarm();
    state.storage.sql.exec(`
      DROP TABLE recall_docs; DROP TABLE recall_index; DROP TABLE recall_conversations; DROP TABLE recall_backfill;
      DROP TABLE fact_history; DROP TABLE memory_scopes; ALTER TABLE facts DROP COLUMN valid_from;
      UPDATE profile SET schema_version = 2`);
  });
  await restartObject(userMemory(env, userId));
}

async function memory(userId: string): Promise<any> {
  const res = await apiGet(`/v1/users/${encodeURIComponent(userId)}/memory`);
  expect(res.status).toBe(200);
  return res.json();
}

describe("recall backfill", () => {
  it("indexes a pre-existing user's stored conversations by alarm, in bounded runs, webhooks accepted meanwhile", async () => {
    const user = uid("user");
    const count = LIMITS.backfillBatch * LIMITS.backfillBatchesPerRun + 5; // more than one run
    const base = nowSeconds() - 100 * 86_400;
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const e = conversationWith([["user", `Reminder number ${i}: water the bonsai tree.`]], { userId: user, startedAt: base + i * 3600 });
      ids.push(e["data"].conversation_id);
      await record(e);
    }
    expect(await userMemory(env, user).flush()).toMatchObject({ failed: 0, pending: 0 });
    await makeVersion2(user);

    // One run indexes a bounded amount and says there is more (called directly: the alarm would
    // otherwise fire on its own in this runtime, and the test could not see between two runs).
    const first = await runInDurableObject(userMemory(env, user), async (instance, state) => {
      expect((instance as unknown as { schema: { exists(): boolean } }).schema.exists()).toBe(true); // the upgrade
      const more = await backfillRun(env, state.storage, Date.now());
      const n = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM recall_conversations").one().n;
      return { more, n };
    });
    expect(first).toEqual({ more: true, n: LIMITS.backfillBatch * LIMITS.backfillBatchesPerRun });
    expect((await memory(user)).recall_index.backfill).toBe("pending");

    // A webhook meanwhile is accepted and indexed at once.
    const live = conversationWith([["user", "The bonsai needs a bigger pot."]], { userId: user });
    const res = await postWebhook(live);
    expect(res.status).toBe(200);
    expect((await res.json<any>()).status).toBe("stored");
    expect((await recallFor(user, "bigger pot")).results[0]?.conversation_id).toBe(live["data"].conversation_id);

    // The rest by the object's alarm (armed by the reads above and by the webhook).
    for (let i = 0; i < 50 && (await memory(user)).recall_index.backfill === "pending"; i++) {
      await runDurableObjectAlarm(userMemory(env, user));
      await new Promise((r) => setTimeout(r, 20));
    }
    const done = (await memory(user)).recall_index;
    expect(done.backfill).toBe("done");
    expect(done.conversations).toBe(count + 1);

    const found = await recallFor(user, "bonsai reminder number 3", { limit: 20 });
    expect(found.results.some((r) => r.conversation_id === ids[3])).toBe(true);
    // Each stored conversation indexed once, whichever of the webhook and the backfill came first.
    const docs = await runInDurableObject(userMemory(env, user), (_m, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM recall_docs WHERE conversation_id = ?", live["data"].conversation_id).one().n,
    );
    expect(docs).toBe(3); // its title, its summary and its one turn
  });

  it("upgrades facts: old values kept from then on", async () => {
    const user = uid("user");
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 5000, facts: { colour: "red" } }));
    await makeVersion2(user);
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 100, facts: { colour: "blue" } }));
    const colour = (await memory(user)).facts.find((f: any) => f.id === "colour");
    expect(colour.value).toBe("blue");
    expect(colour.history.map((h: any) => h.value)).toEqual(["red"]);
  });
});
