/**
 * Adding D1 shards later (src/storage/shards.ts generations, docs/storage.md "Shards"): rows already
 * stored stay where they are, and every read by user or by conversation still finds them. Runs on
 * five databases of its own (vitest.config.ts GROW_0..GROW_4), laid out as DB, DB_1, ... of an env
 * grown 1 -> 3 -> 5 with data written before each growth.
 */
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { Env } from "../src/lib/env";
import { conversationRecord, parseEnvelope } from "../src/records/payload";
import { storeAudioRow } from "../src/storage/audio";
import { conversationsToIndex } from "../src/storage/backfill";
import { attributeConversation, listConversationsOfUser, readConversation, storeCallFailure, storeConversation } from "../src/storage/conversations";
import { eraseConversations } from "../src/storage/erase";
import { conversationsOfUser } from "../src/storage/expiry";
import { conversationPageForExport, storedTranscriptsOf } from "../src/storage/export";
import { homeWriteShard, shardEntry, userWriteShard } from "../src/storage/placement";
import { searchTranscripts } from "../src/storage/search";
import { allShards, generationSizes, homeCandidates, shardIndex, userCandidates } from "../src/storage/shards";
import { directoryRow, listUsers } from "../src/storage/users";
import { nowSeconds, transcription, uid } from "./helpers";
import { expectLogs } from "./logs";

const grow = env as unknown as Record<string, D1Database>;
const names = (n: number) => ["DB", ...Array.from({ length: n - 1 }, (_, i) => `DB_${i + 1}`)].join(",");

/** A fresh env object (as a new isolate would have) of `n` shards: GROW_i bound as DB, DB_1, ... */
function layout(n: number, setting = names(n)): Env {
  const dbs = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [i === 0 ? "DB" : `DB_${i}`, grow[`GROW_${i}`]]));
  // Only the first n are bound: a setting naming more finds no binding.
  for (let i = n; i < 5; i++) delete dbs[`DB_${i}`];
  return { ...env, ...dbs, D1_SHARDS: setting } as Env;
}

const recorded = /d1_shards_generation_recorded/;

// Storage is shared by the file's tests: each starts from five empty, migrated databases and no generations.
beforeEach(async () => {
  for (let i = 0; i < 5; i++) {
    const db = grow[`GROW_${i}`]!;
    await applyD1Migrations(db, env.TEST_MIGRATIONS);
    const tables = await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%' AND name NOT LIKE 'conversations_fts%'").all<{ name: string }>();
    await db.batch([
      ...tables.results.map((t) => db.prepare(`DELETE FROM ${t.name}`)),
      db.prepare("INSERT INTO conversations_fts (conversations_fts) VALUES ('delete-all')"),
    ]);
  }
});

/** A user id whose candidate among `n` shards is (or is not) `index`. */
function userAt(prefix: string, n: number, wanted: (index: number) => boolean): string {
  for (let i = 0; ; i++) {
    const id = uid(`${prefix}${i}`);
    if (wanted(shardIndex(`user:${id}`, n))) return id;
  }
}
function conversationAt(n: number, wanted: (index: number) => boolean): string {
  for (let i = 0; ; i++) {
    const id = uid(`conv${i}`);
    if (wanted(shardIndex(`conversation:${id}`, n))) return id;
  }
}

async function store(e: Env, userId: string | null, conversationId = uid("conv"), startedAt = nowSeconds() - 3600) {
  const raw = new TextEncoder().encode(JSON.stringify(transcription({ userId, conversationId, startedAt })));
  const r = conversationRecord(parseEnvelope(raw), { userId, source: userId === null ? null : "dynamic_variable", phoneNumber: null, vouchedBy: userId === null ? null : "token" }, nowSeconds());
  await storeConversation(e, r, { transcriptKey: `conversations/${conversationId}/transcript.json`, receivedAt: nowSeconds() });
  return conversationId;
}

async function storeAudio(e: Env, conversationId: string) {
  const link = { conversationId, agentId: "agent_1", key: `audio/${conversationId}.mp3`, bytes: 1234, sha256: "ab".repeat(32), receivedAt: nowSeconds() };
  return storeAudioRow(e, await homeWriteShard(e, conversationId), link);
}

/** Indexes of the GROW databases holding a row of `table` where `column` = `value`. */
async function holding(table: string, column: string, value: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 5; i++) {
    if ((await grow[`GROW_${i}`]!.prepare(`SELECT 1 FROM ${table} WHERE ${column} = ?`).bind(value).first()) !== null) out.push(i);
  }
  return out;
}

/** Everything a user's reads find: conversations, export, recall backfill, directory. */
async function readsOf(e: Env, userId: string) {
  const listed = (await listConversationsOfUser(e, userId, { limit: 100, after: null })).map((c) => c.conversation_id).sort();
  const exported = await conversationPageForExport(e, userId, { limit: 100, after: null });
  const transcripts = await storedTranscriptsOf(e, userId, exported.map((r) => r.conversation_id));
  const indexed = (await conversationsToIndex(e, userId, null, 100)).map((c) => c.conversation_id).sort();
  return { listed, exported: exported.map((r) => r.conversation_id).sort(), transcripts: [...transcripts.keys()].sort(), indexed, directory: await directoryRow(e, userId) };
}

/** The statements prepared on the GROW databases while `fn` runs (their prepare patched in place: a Proxy breaks batch). */
async function statementsOf(fn: () => Promise<unknown>): Promise<{ db: number; sql: string }[]> {
  const seen: { db: number; sql: string }[] = [];
  const dbs = Array.from({ length: 5 }, (_, i) => grow[`GROW_${i}`]!);
  const real = dbs.map((db) => db.prepare);
  dbs.forEach((db, i) => {
    db.prepare = function (this: D1Database, query: string) {
      seen.push({ db: i, sql: query });
      return real[i]!.call(this, query);
    };
  });
  try {
    await fn();
  } finally {
    dbs.forEach((db, i) => (db.prepare = real[i]!));
  }
  return seen;
}

async function eraseUser(e: Env, userId: string) {
  const ids = await conversationsOfUser(e, userId, 100);
  await eraseConversations(e, e.AUDIO, ids, userId);
}

describe("shard generations", () => {
  it("records the first layout as one generation and an appended one as the next", async () => {
    const logs = expectLogs(recorded);
    expect(await generationSizes(layout(1))).toEqual([1]);
    expect(await generationSizes(layout(3))).toEqual([1, 3]);
    expect(await generationSizes(layout(3))).toEqual([1, 3]);
    expect(await generationSizes(layout(5))).toEqual([1, 3, 5]);
    const rows = await grow["GROW_0"]!.prepare("SELECT generation, shards FROM shard_generations ORDER BY generation").all();
    expect(rows.results).toEqual([
      { generation: 1, shards: "DB" },
      { generation: 2, shards: "DB_1,DB_2" },
      { generation: 3, shards: "DB_3,DB_4" },
    ]);
    expect(logs.matching(recorded)).toHaveLength(2);
    // Candidates: one per generation, deduplicated; most ids keep one shard.
    const ids = Array.from({ length: 600 }, (_, i) => `u${i}`);
    const single = (await Promise.all(ids.map((id) => userCandidates(layout(5), id)))).filter((c) => c.length === 1).length;
    expect(single / ids.length).toBeGreaterThan(0.15);
    for (const id of ids.slice(0, 50)) {
      const c = await userCandidates(layout(5), id);
      expect(c[0]).toBe(0); // generation 1 had one shard
      expect(c.at(-1)).toBe(shardIndex(`user:${id}`, 5));
    }
  });

  it("refuses a shard removed, reordered, renamed or inserted, and a missing binding, loudly and every time", async () => {
    const logs = expectLogs(/d1_shards_refused/);
    await generationSizes(layout(3));
    await expect(generationSizes(layout(3, "DB,DB_1"))).rejects.toThrow(/drops DB_2.*may only be appended/);
    await expect(generationSizes(layout(3, "DB,DB_2,DB_1"))).rejects.toThrow(/has DB_2 where DB_1 was recorded/);
    await expect(generationSizes(layout(4, "DB,DB_1,DB_3,DB_2"))).rejects.toThrow(/has DB_3 where DB_2 was recorded/);
    await expect(generationSizes(layout(3, "DB,DB_1,DB_2,DB_4"))).rejects.toThrow(/DB_4, which is not a D1 binding/);
    // A refused env is not cached: asked again, it refuses again; nothing was recorded.
    const bad = layout(3, "DB,DB_2,DB_1");
    await expect(generationSizes(bad)).rejects.toThrow(/where DB_1 was recorded/);
    await expect(generationSizes(bad)).rejects.toThrow(/where DB_1 was recorded/);
    await expect(readConversation(bad, "any")).rejects.toThrow(/where DB_1 was recorded/);
    expect((await grow["GROW_0"]!.prepare("SELECT count(*) AS n FROM shard_generations").first())?.["n"]).toBe(1);
    expect(logs.matching(/d1_shards_refused/).length).toBeGreaterThanOrEqual(6);
  });

  it("asks nothing more of a key whose candidates are all one shard, and asks each candidate of one that has two", async () => {
    expectLogs(recorded);
    await generationSizes(layout(1));
    const three = layout(3);
    await generationSizes(three);
    const asked = await statementsOf(async () => {
      const userId = userAt("one", 3, (i) => i === 0);
      const id = await store(three, userId, conversationAt(3, (i) => i === 0));
      await readConversation(three, id);
      await listConversationsOfUser(three, userId, { limit: 10, after: null });
    });
    expect(asked.filter((q) => q.db !== 0)).toEqual([]);
    expect(asked.filter((q) => /AS held/.test(q.sql))).toEqual([]);
    const two = await statementsOf(async () => {
      await store(three, userAt("two", 3, (i) => i !== 0), conversationAt(3, (i) => i !== 0));
    });
    // One "held" query per candidate of the user and of the home, before the write.
    expect(two.filter((q) => /AS held/.test(q.sql)).map((q) => q.db).sort()).toHaveLength(4);
  });

  it("refuses to record as the first generation shards added beside data stored before generations existed", async () => {
    const logs = expectLogs(/d1_shards_refused/);
    // A deployment of one shard, upgraded and given two more in the same deploy: DB holds a user, DB_1 and DB_2 nothing.
    await grow["GROW_0"]!.prepare("INSERT INTO users (user_id, first_call_at, last_call_at, conversation_count, updated_at) VALUES ('old-user', 1, 1, 1, 1)").run();
    await expect(generationSizes(layout(3))).rejects.toThrow(/seen for the first time, DB already holds users and DB_1,DB_2 holds nothing/);
    expect(logs.matching(/d1_shards_refused/)).toHaveLength(1);
    // Deployed first with the setting the data was written with, then appended: recorded as two generations.
    expect(await generationSizes(layout(1))).toEqual([1]);
    expectLogs(recorded);
    expect(await generationSizes(layout(3))).toEqual([1, 3]);
  });
});

describe("growing 1 -> 3 -> 5 with data written before each growth", () => {
  it("finds, writes to and erases every user and conversation where they were", async () => {
    const logs = expectLogs(recorded, /conversation_owner_mismatch/);
    const one = layout(1);
    // Before: users whose candidate will change at 3 and at 5, one that stays, an unowned conversation, audio and a call failure.
    const movesAt3 = userAt("m3", 3, (i) => i !== 0);
    const stays = userAt("st", 3, (i) => i === 0);
    const a1 = await store(one, movesAt3, conversationAt(3, (i) => i !== 0));
    const s1 = await store(one, stays);
    const lone = await store(one, null, conversationAt(3, (i) => i !== 0));
    await storeAudio(one, a1);
    const failed = conversationAt(3, (i) => i !== 0);
    await storeCallFailure(await homeWriteShard(one, failed), { conversationId: failed, agentId: "agent_1", failureReason: "busy", provider: "twilio", fromNumber: null, toNumber: null, sipStatusCode: 486, callSid: null, metadata: null, eventTimestamp: null }, nowSeconds());
    expect(await holding("conversations", "conversation_id", a1)).toEqual([0]);

    // Grow to 3: nothing moves, every read finds it, and writes for existing keys stay with them.
    const three = layout(3);
    expect(await userCandidates(three, movesAt3)).toEqual([0, shardIndex(`user:${movesAt3}`, 3)]);
    const a2 = await store(three, movesAt3);
    expect(await holding("conversations", "user_id", movesAt3)).toEqual([0]);
    expect(await userWriteShard(three, movesAt3)).toBe(grow["GROW_0"]);
    const r = await readsOf(three, movesAt3);
    expect(r).toMatchObject({ listed: [a1, a2].sort(), exported: [a1, a2].sort(), transcripts: [a1, a2].sort(), indexed: [a1, a2].sort() });
    expect(r.directory).toMatchObject({ user_id: movesAt3, conversation_count: 2 });
    expect((await readsOf(three, stays)).listed).toEqual([s1]);
    const byId = await readConversation(three, a1);
    expect(byId?.row).toMatchObject({ conversation_id: a1, user_id: movesAt3 });
    expect(byId?.audio).toMatchObject({ bytes: 1234 });
    expect(await homeCandidates(three, a1)).toHaveLength(2);
    expect(await shardEntry(three, lone)).toMatchObject({ user_id: null });
    // The call failure's conversation keeps its home for what comes later (its transcript, its audio).
    expect(await homeWriteShard(three, failed)).toBe(grow["GROW_0"]);
    expect(await holding("conversation_shards", "conversation_id", a1)).toEqual([0]);

    // Ownership: a later event for a conversation stored before the growth, naming another user, meets
    // its entry in the old home (not a fresh one in the new home) and changes nothing.
    const thief = userAt("th", 3, (i) => i !== 0);
    await store(three, thief, a1);
    expect(logs.matching(/conversation_owner_mismatch/)).toHaveLength(1);
    expect(await holding("conversation_shards", "conversation_id", a1)).toEqual([0]);
    expect(await holding("users", "user_id", thief)).toEqual([]);
    expect((await readConversation(three, a1))?.row).toMatchObject({ user_id: movesAt3 });

    // A new user and a new conversation go to the newest generation's candidate.
    const fresh = userAt("nw", 3, (i) => i !== 0);
    const f1 = await store(three, fresh, conversationAt(3, (i) => i !== 0));
    expect(await holding("conversations", "conversation_id", f1)).toEqual([shardIndex(`user:${fresh}`, 3)]);
    expect(await holding("conversation_shards", "conversation_id", f1)).toEqual([shardIndex(`conversation:${f1}`, 3)]);
    // Audio after the growth for a conversation stored before it meets its entry in the old home.
    const late = await store(one, stays, conversationAt(3, (i) => i !== 0));
    expect(await storeAudio(three, late)).toEqual({ userId: stays, agentId: expect.any(String) });
    expect(await holding("audio", "conversation_id", late)).toEqual([0]);

    // Attribution of an unowned conversation stored before: found at its old home, moved to the user's place.
    expect(await attributeConversation(three, lone, fresh, nowSeconds())).toBe(fresh);
    expect(await holding("conversations", "conversation_id", lone)).toEqual([shardIndex(`user:${fresh}`, 3)]);
    expect((await readsOf(three, fresh)).listed).toEqual([f1, lone].sort());
    expect((await readConversation(three, lone))?.row).toMatchObject({ user_id: fresh });

    // Search and the directory fan out to every shard.
    const hits = await searchTranscripts(three, "cracked", 50);
    for (const id of [a1, a2, s1, f1, lone]) expect(hits?.map((h) => h.conversation_id)).toContain(id);
    const users = (await listUsers(three, { limit: 100, q: "", after: null })).map((u) => u.user_id);
    expect(users.sort()).toEqual([movesAt3, stays, fresh].sort());

    // Grow to 5: a user placed at 3 whose candidate changes at 5 stays too.
    const five = layout(5);
    const movesAt5 = userAt("m5", 5, (i) => i >= 3);
    const b1 = await store(three, movesAt5);
    const before5 = shardIndex(`user:${movesAt5}`, 3);
    expect(await holding("conversations", "user_id", movesAt5)).toEqual([before5]);
    expect(await userCandidates(five, movesAt5)).toContain(before5);
    const b2 = await store(five, movesAt5);
    expect(await holding("conversations", "user_id", movesAt5)).toEqual([before5]);
    expect((await readsOf(five, movesAt5)).listed).toEqual([b1, b2].sort());
    for (const u of [movesAt3, fresh]) expect((await readsOf(five, u)).listed.length).toBe(2);
    expect((await readConversation(five, a1))?.audio).toMatchObject({ bytes: 1234 });
    const newAt5 = userAt("n5", 5, (i) => i >= 3);
    await store(five, newAt5);
    expect(await holding("users", "user_id", newAt5)).toEqual([shardIndex(`user:${newAt5}`, 5)]);

    // Erasure after two growths: nothing of the user's is left in any shard.
    for (const u of [movesAt3, movesAt5, fresh]) {
      const ids = (await readsOf(five, u)).listed;
      await eraseUser(five, u);
      expect(await readsOf(five, u)).toMatchObject({ listed: [], exported: [], indexed: [], directory: null });
      expect(await holding("users", "user_id", u)).toEqual([]);
      for (const id of ids) {
        for (const table of ["conversations", "conversation_shards", "audio", "audio_pending"]) expect(await holding(table, "conversation_id", id)).toEqual([]);
        expect(await readConversation(five, id)).toBeNull();
      }
    }
  });

  it("reads and erases whole a user split by an old version still running beside the new one", async () => {
    expectLogs(recorded);
    // An isolate of the old version: its layout (one shard) read before the growth, and kept.
    const old = layout(1);
    await generationSizes(old);
    const three = layout(3);
    await generationSizes(three);
    const split = userAt("sp", 3, (i) => i !== 0);
    // The new version places the new user at the newest candidate; the old one at its only shard.
    const n1 = await store(three, split);
    const o1 = await store(old, split);
    const o2 = await store(old, split, uid("conv"), nowSeconds() - 60);
    await storeAudio(old, o1);
    expect((await holding("users", "user_id", split)).sort()).toEqual([0, shardIndex(`user:${split}`, 3)].sort());

    const r = await readsOf(three, split);
    expect(r).toMatchObject({ listed: [n1, o1, o2].sort(), exported: [n1, o1, o2].sort(), transcripts: [n1, o1, o2].sort(), indexed: [n1, o1, o2].sort() });
    expect(r.directory).toMatchObject({ user_id: split, conversation_count: 3 });
    // A page of two merges both shards in order (newest first), and the next page continues it.
    const page1 = await listConversationsOfUser(three, split, { limit: 2, after: null });
    const last = page1.at(-1)!;
    const page2 = await listConversationsOfUser(three, split, { limit: 2, after: { startedAt: last.started_at, conversationId: last.conversation_id } });
    expect([...page1, ...page2].map((c) => c.conversation_id).sort()).toEqual([n1, o1, o2].sort());
    expect(page1.map((c) => c.started_at)).toEqual([...page1.map((c) => c.started_at)].sort((a, b) => b - a));
    // The earliest candidate holding the user wins the next write.
    expect(await userWriteShard(three, split)).toBe(allShards(three)[0]);

    await eraseUser(three, split);
    expect(await holding("users", "user_id", split)).toEqual([]);
    for (const id of [n1, o1, o2]) {
      for (const table of ["conversations", "conversation_shards", "audio", "audio_pending"]) expect(await holding(table, "conversation_id", id)).toEqual([]);
    }
  });
});
