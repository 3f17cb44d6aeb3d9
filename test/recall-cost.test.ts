/**
 * What the recall index costs per call (docs/storage.md "Recall index: cost"): rows written and
 * bytes the object holds after a 50-turn call, and the bounds on a long call and on a memory.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../src/objects/shared/limits";
import { WINDOW_CHARS } from "../src/records/recall-windows";
import { apiGet, uid } from "./helpers";
import { userMemory } from "./objects";
import { conversationWith, recallFor, record, type TurnSpec } from "./recall-helpers";
import { metered } from "./metered";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { nowSeconds } from "./helpers";

const turn = (i: number): TurnSpec => [i % 2 === 0 ? "agent" : "user", `Turn ${i}: a sentence of ordinary length about the order, the delivery date and the refund policy.`];

async function footprint(userId: string) {
  return runInDurableObject(userMemory(env, userId), (_m, state) => {
    const sql = state.storage.sql;
    const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_%' ESCAPE '\\'").toArray();
    const rows: Record<string, number> = {};
    for (const { name } of tables) rows[name] = sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${name}"`).one().n;
    const text = sql.exec<{ b: number | null }>("SELECT sum(length(CAST(body AS BLOB))) AS b FROM recall_docs").one().b ?? 0;
    const index = sql.exec<{ b: number | null }>("SELECT sum(length(block)) AS b FROM recall_index_data").one().b ?? 0;
    return { rows, bytes: sql.databaseSize, text, index };
  });
}

/** Turns in a conversation's windows (a letter each in `speakers`; `s` is the title or summary). */
const turnsIndexed = (userId: string, conversationId: string) =>
  runInDurableObject(userMemory(env, userId), (_m, state) =>
    state.storage.sql
      .exec<{ n: number | null }>("SELECT sum(length(replace(speakers, 's', ''))) AS n FROM recall_docs WHERE conversation_id = ? AND speaker = 'turns'", conversationId)
      .one().n ?? 0,
  );

const delta = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(Object.keys(b).map((k) => [k, b[k]! - (a[k] ?? 0)]).filter(([, n]) => n !== 0));

describe("recall index cost", () => {
  it("a 50-turn call: a few documents (windows of its title, summary and turns), measured rows and bytes", async () => {
    const user = uid("user");
    // A first call, so the tables exist and the second call's delta is the steady cost of one call.
    await record(conversationWith([turn(0), turn(1)], { userId: user }));
    const before = await footprint(user);
    const event = conversationWith(Array.from({ length: 50 }, (_, i) => turn(i)), { userId: user });
    const raw = new TextEncoder().encode(JSON.stringify(event));
    const r = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() });
    // Every statement of the call metered: rows written as SQLite counts them (indexes and FTS shadow tables included).
    const rows = await runInDurableObject(userMemory(env, user), (instance, state) =>
      metered(instance, state, (memory) => memory.recordConversation({ record: r, raw, receivedAt: nowSeconds() })),
    );
    const after = await footprint(user);
    const d = delta(before.rows, after.rows);
    // The title, the summary and 50 turns of about 100 characters: windows of at most WINDOW_CHARS.
    expect(d["recall_docs"]).toBe(Math.ceil((50 * 101 + 150) / WINDOW_CHARS));
    expect(await turnsIndexed(user, event["data"].conversation_id)).toBe(50);
    // 175 rows with a document per turn (2026-12-01); a guard against a change that multiplies the writes again.
    // 23 measured (2026-12-07).
    expect(rows.written).toBeLessThan(35);
    expect(d["recall_conversations"]).toBe(1);
  });

  it("a call longer than the bound indexes its first turns only", async () => {
    const user = uid("user");
    const n = LIMITS.recallTurnsPerConversation + 50;
    const e = conversationWith(Array.from({ length: n }, (_, i) => turn(i)), { userId: user, title: null, summary: null, facts: {} });
    await record(e);
    expect(await turnsIndexed(user, e["data"].conversation_id)).toBe(LIMITS.recallTurnsPerConversation);
    expect((await recallFor(user, `Turn ${LIMITS.recallTurnsPerConversation - 1}`)).results.some((r) => r.text.includes(`Turn ${LIMITS.recallTurnsPerConversation - 1}:`))).toBe(true);
    expect((await recallFor(user, `Turn ${LIMITS.recallTurnsPerConversation}`)).results.some((r) => r.text.includes(`Turn ${LIMITS.recallTurnsPerConversation}:`))).toBe(false);
  });
});

describe("recall index bound", () => {
  it("stays under LIMITS.recallBytesPerMemory: the oldest conversations leave the index first", async () => {
    const user = uid("user");
    const perTurn = LIMITS.recallDocChars;
    const perCall = LIMITS.recallTurnsPerConversation * perTurn;
    const calls = Math.ceil(LIMITS.recallBytesPerMemory / perCall) + 2;
    const base = Math.floor(Date.now() / 1000) - calls * 3600;
    const ids: string[] = [];
    for (let i = 0; i < calls; i++) {
      const word = `marker${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`;
      const turns = Array.from({ length: LIMITS.recallTurnsPerConversation }, (_, t) => ["user", `${word} ${"x".repeat(perTurn - word.length - 1 - String(t).length)}${t}`] as TurnSpec);
      const e = conversationWith(turns, { userId: user, title: null, summary: null, facts: {}, startedAt: base + i * 3600 });
      ids.push(e["data"].conversation_id);
      await record(e);
    }
    const mem = await apiGet(`/v1/users/${encodeURIComponent(user)}/memory`);
    const index = (await mem.json<any>()).recall_index;
    expect(index.text_bytes).toBeLessThanOrEqual(LIMITS.recallBytesPerMemory);
    expect(index.conversations).toBe(Math.floor(LIMITS.recallBytesPerMemory / perCall));
    expect((await recallFor(user, "markeraa")).results).toEqual([]); // the oldest
    const newest = await recallFor(user, `marker${String.fromCharCode(97 + ((calls - 1) % 26))}${String.fromCharCode(97 + Math.floor((calls - 1) / 26))}`);
    expect(newest.results[0]?.conversation_id).toBe(ids[calls - 1]);
  });
});
