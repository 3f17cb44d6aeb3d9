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

/**
 * Turns a user's recall index back into what version 4 wrote: a document per turn (and one each for
 * the title and the summary), recall_conversations without doc ranges.
 */
async function makeVersion4(userId: string, calls: { id: string; startedAt: number; title: string; summary: string; turns: [string, string][] }[]): Promise<void> {
  await runInDurableObject(userMemory(env, userId), (_m, state) => {
    const sql = state.storage.sql;
    sql.exec(`
      DROP TABLE recall_docs; DROP TABLE recall_index; DROP TABLE recall_conversations;
      CREATE TABLE recall_docs (doc_id INTEGER PRIMARY KEY, conversation_id TEXT, speaker TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL, fact_id TEXT);
      CREATE INDEX recall_docs_by_conversation ON recall_docs (conversation_id);
      CREATE INDEX recall_docs_by_fact ON recall_docs (fact_id) WHERE fact_id IS NOT NULL;
      CREATE VIRTUAL TABLE recall_index USING fts5(body, content='recall_docs', content_rowid='doc_id', tokenize='porter unicode61 remove_diacritics 2');
      CREATE TRIGGER recall_docs_insert AFTER INSERT ON recall_docs BEGIN INSERT INTO recall_index (rowid, body) VALUES (new.doc_id, new.body); END;
      CREATE TRIGGER recall_docs_delete AFTER DELETE ON recall_docs BEGIN INSERT INTO recall_index (recall_index, rowid, body) VALUES ('delete', old.doc_id, old.body); END;
      CREATE TABLE recall_conversations (conversation_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, title TEXT, docs INTEGER NOT NULL, bytes INTEGER NOT NULL);
      CREATE INDEX recall_conversations_by_start ON recall_conversations (started_at);
      DELETE FROM recall_backfill;
      UPDATE profile SET schema_version = 4`);
    let total = 0;
    for (const c of calls) {
      const docs: [string, string][] = [["summary", c.title], ["summary", c.summary], ...c.turns];
      for (const [speaker, body] of docs) sql.exec("INSERT INTO recall_docs (conversation_id, speaker, at, body) VALUES (?, ?, ?, ?)", c.id, speaker, c.startedAt, body);
      const bytes = docs.reduce((n, [, b]) => n + b.length, 0);
      total += bytes;
      sql.exec("INSERT INTO recall_conversations VALUES (?, ?, ?, ?, ?)", c.id, c.startedAt, c.title, docs.length, bytes);
    }
    sql.exec("UPDATE upkeep SET recall_bytes = ?", total);
  });
  await runInDurableObject(userMemory(env, userId), (_m, state) => state.storage.deleteAlarm());
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
    expect(docs).toBe(1); // one window: its title, its summary and its one turn
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

  it("re-indexes a version 4 index (a document per turn) as windows, by the same bounded alarm runs, searchable throughout", async () => {
    const user = uid("user");
    const base = nowSeconds() - 50 * 86_400;
    const count = LIMITS.backfillBatch * LIMITS.backfillBatchesPerRun + 3;
    const calls = Array.from({ length: count }, (_, i) => {
      const turns: [string, string][] = [
        ["agent", "Hello again, how can I help?"],
        ["user", `Which colour did we pick for fence number ${i}?`],
        ["agent", `Sage green for fence number ${i}, two coats.`],
      ];
      const e = conversationWith(turns as [("user" | "agent"), string][], { userId: user, startedAt: base + i * 3600, title: `Fence ${i}`, summary: `Painting fence ${i} sage green.` });
      return { e, c: { id: e["data"].conversation_id as string, startedAt: base + i * 3600, title: `Fence ${i}`, summary: `Painting fence ${i} sage green.`, turns } };
    });
    for (const { e } of calls) await record(e);
    expect(await userMemory(env, user).flush()).toMatchObject({ failed: 0, pending: 0 });
    await makeVersion4(user, calls.map((x) => x.c));

    const run = () =>
      runInDurableObject(userMemory(env, user), async (instance, state) => {
        expect((instance as unknown as { schema: { exists(): boolean } }).schema.exists()).toBe(true); // upgrades on first sight
        const more = await backfillRun(env, state.storage, Date.now());
        const sql = state.storage.sql;
        const formats = sql.exec<{ f: number; n: number }>("SELECT format AS f, count(*) AS n FROM recall_conversations GROUP BY format ORDER BY format").toArray();
        return { more, formats: Object.fromEntries(formats.map((r) => [r.f, r.n])) };
      });
    // Upgraded on first sight; one run re-indexes a bounded number of conversations and says there is
    // more (called directly, before any read arms the alarm, so the test sees between two runs).
    const first = await run();
    expect(first).toEqual({ more: true, formats: { 1: 3, 2: LIMITS.backfillBatch * LIMITS.backfillBatchesPerRun } });
    // Meanwhile both kinds answer: an old document per turn (with the turn before a short one), and windows.
    const old = await recallFor(user, `sage green fence number ${count - 1}`, { limit: 20 });
    expect(old.results.some((r) => r.conversation_id === calls[count - 1]!.c.id && r.text.includes(`Sage green for fence number ${count - 1}`))).toBe(true);
    const rebuilt = await recallFor(user, "sage green fence number 2", { limit: 20 });
    expect(rebuilt.results.some((r) => r.conversation_id === calls[2]!.c.id && r.text.includes("Sage green for fence number 2"))).toBe(true);
    // The rest by the object's alarm (armed by the reads).
    for (let i = 0; i < 50 && (await memory(user)).recall_index.backfill === "pending"; i++) {
      await runDurableObjectAlarm(userMemory(env, user));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await memory(user)).recall_index.backfill).toBe("done");
    const formats = await runInDurableObject(userMemory(env, user), (_i, state) =>
      state.storage.sql.exec<{ f: number; n: number }>("SELECT format AS f, count(*) AS n FROM recall_conversations GROUP BY format").toArray(),
    );
    expect(formats).toEqual([{ f: 2, n: count }]);

    // One document a call now (a window: title, summary, the turns), the byte count kept, the same answers.
    const index = (await memory(user)).recall_index;
    expect(index.documents).toBe(count);
    const docs = await runInDurableObject(userMemory(env, user), (_m, state) => {
      const sql = state.storage.sql;
      return {
        bytes: sql.exec<{ b: number }>("SELECT sum(length(body)) AS b FROM recall_docs WHERE fact_id IS NULL").one().b,
        counted: sql.exec<{ b: number }>("SELECT recall_bytes AS b FROM upkeep").one().b,
      };
    });
    expect(docs.counted).toBe(docs.bytes);
    expect(index.text_bytes).toBe(docs.bytes);
    const after = await recallFor(user, "sage green fence number 2", { limit: 20 });
    expect(after.results.some((r) => r.conversation_id === calls[2]!.c.id && r.text.includes("Sage green for fence number 2"))).toBe(true);
    // A redelivered webhook of a re-indexed call indexes nothing twice.
    await record(calls[0]!.e);
    expect((await memory(user)).recall_index.documents).toBe(count);
  });
});
