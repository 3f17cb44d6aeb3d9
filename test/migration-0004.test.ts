/**
 * migrations/0004 on a database filled by the old layout (a row per turn in `turns`, indexed by
 * `turns_fts`): this file empties its D1, applies 0001-0003 only, writes conversations the way the
 * v1 code did (raw SQL), applies 0004 and reads everything back through the v2 storage functions.
 */
import { reset } from "cloudflare:test";
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { readConversation } from "../src/storage/conversations";
import { eraseConversations } from "../src/storage/erase";
import { MATCH_END, MATCH_START, searchTranscripts } from "../src/storage/search";
import { MAX_TEXT_CHARS } from "../src/records/limits";
import { flush, postWebhook, transcription, userIdOf } from "./helpers";

const USER = "mig-user-1";
const A = "mig-conv-a";
const B = "mig-conv-b";
const EMPTY = "mig-conv-empty";
const HUGE = "mig-conv-huge";
const MANY = "mig-conv-many";
// A conversation of 70,000 one-word turns: little text, but one JSON array of them is about 2.4 MB.
const MANY_TURNS = 70_000;
// Text a caller can type in a text session: control characters, each six bytes once escaped in JSON.
const ESCAPED = "mig-conv-escaped";
const ESCAPED_TURNS = 6_000;
const TOOLS = JSON.stringify({ calls: [{ tool_name: "lookup_order", params: { id: 7 } }], results: [{ ok: true }] });

interface V1Turn {
  turn_index: number;
  role: string;
  message: string | null;
  time_in_call_secs: number;
  tools: string | null;
  feedback: string | null;
}

const turnsOfA: V1Turn[] = [
  { turn_index: 0, role: "agent", message: "Hello, how can I help today?", time_in_call_secs: 0, tools: null, feedback: null },
  { turn_index: 1, role: "user", message: "My parcel with the crème brûlée arrived crushed.", time_in_call_secs: 4, tools: null, feedback: null },
  { turn_index: 2, role: "agent", message: "Let me look that order up.", time_in_call_secs: 9, tools: TOOLS, feedback: "like" },
  { turn_index: 3, role: "agent", message: null, time_in_call_secs: 11, tools: null, feedback: null },
  { turn_index: 4, role: "user", message: "Thanks — the wombat sticker too, please 🙏", time_in_call_secs: 15, tools: null, feedback: "dislike" },
];
const turnsOfB: V1Turn[] = [
  { turn_index: 0, role: "agent", message: "Hi again.", time_in_call_secs: 0, tools: null, feedback: null },
  { turn_index: 1, role: "user", message: "Still waiting for the wombat.", time_in_call_secs: 3, tools: null, feedback: null },
];
// 70 turns of 32,000-character messages: 2.2 MB of text, more than a D1 row may hold as one value.
const turnsOfHuge: V1Turn[] = Array.from({ length: 70 }, (_, i) => ({
  turn_index: i,
  role: i % 2 === 0 ? "agent" : "user",
  message: `${i === 69 ? "quokka " : ""}${"x".repeat(MAX_TEXT_CHARS - 8)}`,
  time_in_call_secs: i,
  tools: i === 3 ? TOOLS : null,
  feedback: null,
}));

async function insertV1(conversationId: string, userId: string | null, startedAt: number, turns: V1Turn[]) {
  await env.DB.prepare(
    `INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at, duration_secs,
       title, summary, call_successful, termination_reason, main_language, phone_number, phone_direction, phone_provider,
       turn_count, analysis, transcript_key, event_timestamp, received_at)
     VALUES (?, ?, 'dynamic_variable', 'agent_1', 'Support', 'done', ?, 60, ?, 'A summary', 'success', 'end_call', 'en',
       NULL, NULL, NULL, ?, '{"evaluation":{},"data_collection":{}}', ?, ?, ?)`,
  )
    .bind(conversationId, userId, startedAt, `Title of ${conversationId}`, turns.length, `conversations/${conversationId}/transcript.json`, startedAt + 60, startedAt + 61)
    .run();
  // Reverse order: the migration must not depend on insertion order.
  for (const t of [...turns].reverse()) {
    await env.DB.prepare(
      "INSERT INTO turns (conversation_id, turn_index, role, message, time_in_call_secs, tools, feedback) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
      .bind(conversationId, t.turn_index, t.role, t.message, t.time_in_call_secs, t.tools, t.feedback)
      .run();
  }
  if (userId !== null) {
    await env.DB.prepare(
      `INSERT INTO users (user_id, first_call_at, last_call_at, conversation_count, updated_at)
       SELECT user_id, min(started_at), max(started_at), count(*), 0 FROM conversations WHERE user_id = ? GROUP BY user_id
       ON CONFLICT (user_id) DO UPDATE SET first_call_at = excluded.first_call_at, last_call_at = excluded.last_call_at,
         conversation_count = excluded.conversation_count`,
    )
      .bind(userId)
      .run();
  }
}

const asStored = (t: V1Turn) => ({ index: t.turn_index, role: t.role, message: t.message, time_in_call_secs: t.time_in_call_secs, tools: t.tools, feedback: t.feedback });

async function tableNames(): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all<{ name: string }>();
  return results.map((r) => r.name);
}

// The upgrade of a deployment of one D1 database (the only kind that existed before migration 0004;
// more shards start empty on 0012): under POSTCALL_TEST_SHARDS its rows would be in DB, not in the
// shards their ids hash to, so the file runs only on one shard.
const oneShard = (env.D1_SHARDS ?? "DB") === "DB";

beforeAll(async () => {
  if (!oneShard) return;
  await reset();
  await applyD1Migrations(env.DB, env.TEST_MIGRATIONS.filter((m) => m.name < "0004"));
  expect(await tableNames()).toContain("turns");
  const now = Math.floor(Date.now() / 1000);
  await insertV1(A, USER, now - 3000, turnsOfA);
  await insertV1(B, USER, now - 2000, turnsOfB);
  await insertV1(EMPTY, null, now - 1000, []);
  await insertV1(HUGE, "mig-user-2", now - 500, turnsOfHuge);
  await insertV1(MANY, "mig-user-3", now - 400, []);
  await env.DB.prepare("UPDATE conversations SET turn_count = ? WHERE conversation_id = ?").bind(MANY_TURNS, MANY).run();
  await env.DB.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
     INSERT INTO turns (conversation_id, turn_index, role, message, time_in_call_secs, tools, feedback)
     SELECT ?, i, CASE i % 2 WHEN 0 THEN 'agent' ELSE 'user' END, CASE WHEN i = 3 THEN 'numbat' ELSE 'ok' END, i, NULL, NULL FROM n`,
  )
    .bind(MANY_TURNS, MANY)
    .run();
  await insertV1(ESCAPED, "mig-user-4", now - 300, []);
  await env.DB.prepare("UPDATE conversations SET turn_count = ? WHERE conversation_id = ?").bind(ESCAPED_TURNS, ESCAPED).run();
  await env.DB.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
     INSERT INTO turns (conversation_id, turn_index, role, message, time_in_call_secs, tools, feedback)
     SELECT ?, i, 'user', CASE WHEN i = 2 THEN 'wallaroo' ELSE ? END, i, NULL, NULL FROM n`,
  )
    .bind(ESCAPED_TURNS, ESCAPED, "\u0001".repeat(200))
    .run();
  // The v1 index found them (so the data is really in the old layout).
  const v1 = await env.DB.prepare("SELECT count(*) AS n FROM turns_fts WHERE turns_fts MATCH 'wombat'").first<{ n: number }>();
  expect(v1!.n).toBe(2);
  await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
});

describe.runIf(oneShard)("migration 0004 on a v1 database", () => {
  it("drops the per-turn tables and keeps every conversation as one row", async () => {
    const names = await tableNames();
    expect(names).not.toContain("turns");
    expect(names).not.toContain("turns_fts");
    expect(names).not.toContain("conversations_v1");
    expect(names).toContain("conversations_fts");
    const { results } = await env.DB.prepare("SELECT conversation_id, turn_count, hex(substr(transcript, 1, 1)) AS first FROM conversations ORDER BY doc_id").all();
    expect(results).toEqual([
      { conversation_id: A, turn_count: 5, first: "5B" },
      { conversation_id: B, turn_count: 2, first: "5B" },
      { conversation_id: EMPTY, turn_count: 0, first: "5B" },
      { conversation_id: HUGE, turn_count: 70, first: "5B" },
      { conversation_id: MANY, turn_count: MANY_TURNS, first: "5B" },
      { conversation_id: ESCAPED, turn_count: ESCAPED_TURNS, first: "5B" },
    ]);
  });

  it("reads moved transcripts back exactly (format 0: plain JSON)", async () => {
    const a = await readConversation(env, A);
    expect(a!.transcript).toEqual(turnsOfA.map(asStored));
    expect(a!.row).toMatchObject({ conversation_id: A, user_id: USER, turn_count: 5, title: `Title of ${A}` });
    expect(a!.row).not.toHaveProperty("transcript");
    expect((await readConversation(env, EMPTY))!.transcript).toEqual([]);
  });

  it("bounds a moved transcript that would not fit in a row: tools dropped, messages clipped, still readable and searchable", async () => {
    const size = await env.DB.prepare("SELECT length(transcript) AS n FROM conversations WHERE conversation_id = ?").bind(HUGE).first<{ n: number }>();
    expect(size!.n).toBeLessThan(2_000_000);
    const huge = await readConversation(env, HUGE);
    expect(huge!.transcript).toHaveLength(70);
    expect(huge!.transcript[3]!.tools).toBe('{"truncated":true}');
    expect(huge!.transcript[0]!.message!.length).toBe(Math.floor(250_000 / 70));
    const hits = await searchTranscripts(env, "quokka", 10);
    expect(hits!.map((h) => [h.conversation_id, h.turn_index])).toEqual([[HUGE, 69]]);
  });

  it("bounds a moved transcript of very many short turns (the tuples' own bytes count too)", async () => {
    const size = await env.DB.prepare("SELECT length(transcript) AS n FROM conversations WHERE conversation_id = ?").bind(MANY).first<{ n: number }>();
    expect(size!.n).toBeLessThan(2_000_000);
    const many = await readConversation(env, MANY);
    expect(many!.transcript.length).toBeGreaterThan(0);
    expect(many!.transcript[3]).toMatchObject({ index: 3, role: "user", message: "numbat" });
    const hits = await searchTranscripts(env, "numbat", 10);
    expect(hits!.map((h) => [h.conversation_id, h.turn_index])).toEqual([[MANY, 3]]);
  });

  it("bounds a moved transcript of many turns of escaped characters (their JSON bytes count, not their characters)", async () => {
    const size = await env.DB.prepare("SELECT length(transcript) AS n FROM conversations WHERE conversation_id = ?").bind(ESCAPED).first<{ n: number }>();
    expect(size!.n).toBeLessThan(2_000_000);
    const moved = await readConversation(env, ESCAPED);
    expect(moved!.transcript[2]).toMatchObject({ index: 2, message: "wallaroo" });
    const hits = await searchTranscripts(env, "wallaroo", 10);
    expect(hits!.map((h) => [h.conversation_id, h.turn_index])).toEqual([[ESCAPED, 2]]);
  });

  it("finds moved conversations by their words, with the snippet at the matching turn", async () => {
    const hits = await searchTranscripts(env, "creme brulee", 10);
    expect(hits).toHaveLength(1);
    expect(hits![0]).toMatchObject({ conversation_id: A, turn_index: 1, role: "user", time_in_call_secs: 4, user_id: USER, title: `Title of ${A}` });
    expect(hits![0]!.snippet).toBe(`My parcel with the ${MATCH_START}crème${MATCH_END} ${MATCH_START}brûlée${MATCH_END} arrived crushed`);

    const wombats = await searchTranscripts(env, "womb", 10);
    expect(wombats!.map((h) => [h.conversation_id, h.turn_index]).sort()).toEqual([
      [A, 4],
      [B, 1],
    ]);
  });

  it("serves old and new rows side by side: new writes are compressed (format 1)", async () => {
    const event = transcription({ userId: USER, title: "After the migration" });
    event["data"].transcript[1].message = "The wombat finally arrived.";
    expect((await postWebhook(event)).status).toBe(200);
    await flush(userIdOf(event), event["data"].conversation_id);
    const first = await env.DB.prepare("SELECT hex(substr(transcript, 1, 1)) AS b FROM conversations WHERE conversation_id = ?")
      .bind(event["data"].conversation_id)
      .first<{ b: string }>();
    expect(first!.b).toBe("01");
    const hits = await searchTranscripts(env, "wombat", 10);
    expect(hits!.map((h) => h.conversation_id).sort()).toEqual([A, B, event["data"].conversation_id].sort());
    const fresh = hits!.find((h) => h.conversation_id === event["data"].conversation_id)!;
    expect(fresh.turn_index).toBe(1);
  });

  it("erases moved conversations: row, search document and turn count", async () => {
    const docA = await env.DB.prepare("SELECT doc_id FROM conversations WHERE conversation_id = ?").bind(A).first<{ doc_id: number }>();
    const counts = await eraseConversations(env, env.AUDIO, [A], USER);
    expect(counts).toMatchObject({ conversations: 1, turns: 5 });
    expect(await readConversation(env, A)).toBeNull();
    const doc = await env.DB.prepare("SELECT count(*) AS n FROM conversations_fts WHERE conversations_fts MATCH 'crushed' AND rowid = ?")
      .bind(docA!.doc_id)
      .first<{ n: number }>();
    expect(doc!.n).toBe(0);
    expect(await searchTranscripts(env, "creme", 10)).toEqual([]);
    expect((await searchTranscripts(env, "wombat", 10))!.map((h) => h.conversation_id)).not.toContain(A);
    await env.DB.prepare("INSERT INTO conversations_fts (conversations_fts) VALUES ('integrity-check')").run();
    const dir = await env.DB.prepare("SELECT conversation_count FROM users WHERE user_id = ?").bind(USER).first<{ conversation_count: number }>();
    expect(dir!.conversation_count).toBe(2);
  });
});
