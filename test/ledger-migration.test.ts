/**
 * Core v3 moved conversations and imports out of UserMemory into classes of their own. Objects
 * written before live on under UserMemory with the same name; this file writes state the way the
 * old class wrote it (its tables and rows, inside a UserMemory named `conversation:<id>` or
 * `import:<id>`), then reaches it only through the front door, to show the new classes take it
 * over on first touch (src/objects/conversation-ledger/legacy.ts, history-import/history-import.ts).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { forgetLegacyWindow, LEGACY_WINDOW_SECONDS } from "../src/objects/conversation-ledger/legacy";
import { importObjectName } from "../src/records/object-names";
import type { ImportStatus } from "../src/memory/rpc";
import { api, u } from "./api-helpers";
import { apiGet, uid } from "./helpers";
import { conversationMemory, legacyConversationObject } from "./objects";
import { fault, faultyD1, injectBindings, outboxItems, retryNow } from "./faults";
import { expectLogs, outboxFailure } from "./logs";
import { homeDb } from "./shards";

/** The tables a pre-Core v3 `conversation:<id>` UserMemory held (schema version 3, as it created them). */
const OLD_TABLES = `
CREATE TABLE profile (id INTEGER PRIMARY KEY CHECK (id = 1), user_id TEXT, schema_version INTEGER NOT NULL, call_count INTEGER NOT NULL DEFAULT 0,
  total_duration_secs INTEGER NOT NULL DEFAULT 0, first_call_at INTEGER, last_call_at INTEGER, last_conversation_id TEXT, last_call_summary TEXT,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE seen (kind TEXT NOT NULL, conversation_id TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (kind, conversation_id));
CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, conversation_id TEXT NOT NULL, body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL, last_error TEXT, created_at INTEGER NOT NULL);
CREATE TABLE outbox_blobs (seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, part));
CREATE TABLE audio (conversation_id TEXT PRIMARY KEY, agent_id TEXT, r2_key TEXT NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE upkeep (id INTEGER PRIMARY KEY CHECK (id = 1), retention_anchor INTEGER, erasing_since INTEGER, recall_bytes INTEGER NOT NULL DEFAULT 0);
`;

const now = () => Math.floor(Date.now() / 1000);

async function oldConversation(conversationId: string, fill: (sql: SqlStorage) => void): Promise<void> {
  await runInDurableObject(legacyConversationObject(env, conversationId), async (_o, state) => {
    state.storage.sql.exec(OLD_TABLES);
    state.storage.sql.exec("INSERT INTO profile (id, schema_version, created_at, updated_at) VALUES (1, 3, ?, ?)", now(), now());
    state.storage.sql.exec("INSERT INTO upkeep (id) VALUES (1)");
    fill(state.storage.sql);
  });
}

async function legacyTables(conversationId: string): Promise<string[]> {
  return runInDurableObject(legacyConversationObject(env, conversationId), async (_o, state) =>
    state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'").toArray().map((r) => r.name),
  );
}

/** What migration 0010 records on a deployment that held calls before Core v3 (`at` in Unix seconds). */
async function upgradedAt(at: number | null): Promise<void> {
  if (at === null) await env.DB.prepare("DELETE FROM upgrades WHERE name = 'core_v3'").run();
  else await env.DB.prepare("INSERT OR REPLACE INTO upgrades (name, at) VALUES ('core_v3', ?)").bind(at).run();
  forgetLegacyWindow();
}

describe("conversations recorded before Core v3", () => {
  beforeEach(() => upgradedAt(now() - 3600));

  it("serves an old object's audio link, then answers for it from the ledger alone", async () => {
    const conversationId = uid("old-audio");
    const key = `audio/${crypto.randomUUID()}.mp3`;
    await env.AUDIO.put(key, new Uint8Array([0x49, 0x44, 0x33, 1, 2, 3]));
    await oldConversation(conversationId, (sql) => {
      sql.exec("INSERT INTO seen VALUES ('post_call_audio', ?, ?)", conversationId, now());
      sql.exec("INSERT INTO audio VALUES (?, 'agent_old', ?, 6, ?, ?)", conversationId, key, "a".repeat(64), now());
    });
    const res = await apiGet(`/v1/conversations/${u(conversationId)}/audio`);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(new Uint8Array([0x49, 0x44, 0x33, 1, 2, 3]));
    // Taken over: the old object is empty, and the link lives in the ledger.
    expect(await legacyTables(conversationId)).toEqual([]);
    expect(await conversationMemory(env, conversationId).audioLink()).toMatchObject({ conversationId, key, bytes: 6 });
    // A redelivery of that audio is still a duplicate (the old delivery record came along).
    expect(await conversationMemory(env, conversationId).recordAudio({ conversationId, agentId: null, key: `audio/${crypto.randomUUID()}.mp3`, bytes: 1, sha256: "b".repeat(64), receivedAt: now() })).toEqual({ duplicate: true });
  });

  it("keeps an old erasure's tombstone: the erased recording is not fetched back", async () => {
    const conversationId = uid("aud-3000");
    await runInDurableObject(legacyConversationObject(env, conversationId), async (_o, state) => {
      state.storage.sql.exec("CREATE TABLE tombstone (id INTEGER PRIMARY KEY CHECK (id = 1), erased_at INTEGER, unlinked_at INTEGER, expires_at INTEGER NOT NULL)");
      state.storage.sql.exec("INSERT INTO tombstone VALUES (1, ?, NULL, ?)", now() - 60, now() + 86_400);
    });
    const res = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    expect(res.status).toBe(410);
    expect((await res.json<{ error: { code: string } }>()).error.code).toBe("conversation_erased");
    expect((await apiGet(`/v1/conversations/${u(conversationId)}/audio`)).status).toBe(404);
  });

  it("delivers an old object's pending items from the ledger, through the old object's own alarm", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const conversationId = uid("old-pending");
    const key = `audio/${crypto.randomUUID()}.mp3`;
    await env.AUDIO.put(key, new Uint8Array([7, 7, 7]));
    const link = { conversationId, agentId: null, key, bytes: 3, sha256: "c".repeat(64), receivedAt: now() };
    const event = { type: "audio.stored", conversationId, occurredAt: now() };
    await oldConversation(conversationId, (sql) => {
      sql.exec("INSERT INTO seen VALUES ('post_call_audio', ?, ?)", conversationId, now());
      sql.exec("INSERT INTO audio VALUES (?, NULL, ?, 3, ?, ?)", conversationId, key, "c".repeat(64), now());
      // Written by the old class: the D1 item, and a forward item that waited by failing (there was no after_seq).
      sql.exec("INSERT INTO outbox (kind, conversation_id, body, next_attempt_at, created_at) VALUES ('audio', ?, ?, 0, ?)", conversationId, JSON.stringify({ kind: "audio", link }), now());
      sql.exec(
        "INSERT INTO outbox (kind, conversation_id, body, attempts, next_attempt_at, last_error, created_at) VALUES ('forward', ?, ?, 2, 0, 'audio.stored waits until its audio item is stored', ?)",
        conversationId, JSON.stringify({ kind: "forward", event, destination: "crm" }), now(),
      );
    });
    await runInDurableObject(legacyConversationObject(env, conversationId), (_o, state) => state.storage.setAlarm(Date.now() + 3_600_000));
    // D1 is down for the ledger: the audio item fails, and the forward item, now waiting for it, is not even tried.
    const ledger = conversationMemory(env, conversationId);
    const outage = fault("down");
    const restore = await injectBindings(ledger, { DB: faultyD1(outage) });
    // The old object's alarm hands over; the ledger's delivers.
    expect(await runDurableObjectAlarm(legacyConversationObject(env, conversationId))).toBe(true);
    expect(await legacyTables(conversationId)).toEqual([]);
    await retryNow(ledger);
    const waiting = await outboxItems(ledger);
    expect(waiting.map((i) => i.kind)).toEqual(["audio", "forward"]);
    expect(waiting[0]!.attempts).toBeGreaterThan(0);
    // Taken over as it was (2 failed attempts by the old class's rule), and not tried since.
    expect(waiting[1]).toMatchObject({ attempts: 2 });
    expect(outage.failures).toBeGreaterThan(0);
    await restore();
    expect(await retryNow(ledger)).toBeGreaterThan(0);
    expect(await homeDb(conversationId).prepare("SELECT r2_key FROM audio WHERE conversation_id = ?").bind(conversationId).first()).toEqual({ r2_key: key });
    expect(await ledger.outboxStatus()).toMatchObject({ pending: 0 });
  });

  it("erases an old object's recording through the ledger", async () => {
    const conversationId = uid("old-erase");
    const key = `audio/${crypto.randomUUID()}.mp3`;
    await env.AUDIO.put(key, new Uint8Array([1]));
    await oldConversation(conversationId, (sql) => {
      sql.exec("INSERT INTO audio VALUES (?, NULL, ?, 1, ?, ?)", conversationId, key, "d".repeat(64), now());
    });
    expect(await conversationMemory(env, conversationId).forgetConversation({ erased: true })).toBe(1);
    expect(await env.AUDIO.head(key)).toBeNull();
    expect(await legacyTables(conversationId)).toEqual([]);
  });
});

describe("the window in which ledgers ask the old class", () => {
  const plantLink = async (conversationId: string) => {
    const key = `audio/${crypto.randomUUID()}.mp3`;
    await oldConversation(conversationId, (sql) => sql.exec("INSERT INTO audio VALUES (?, NULL, ?, 1, ?, ?)", conversationId, key, "e".repeat(64), now()));
  };

  it("is never open on a deployment created on Core v3: a new conversation's ledger asks no old object", async () => {
    await upgradedAt(null);
    const conversationId = uid("fresh");
    await plantLink(conversationId); // (state no fresh deployment has: it shows the ledger did not ask)
    expect(await conversationMemory(env, conversationId).audioLink()).toBeNull();
    expect(await legacyTables(conversationId)).toContain("audio");
  });

  it("closes LEGACY_WINDOW_SECONDS after the upgrade; an old object's own alarm still hands over", async () => {
    await upgradedAt(now() - LEGACY_WINDOW_SECONDS - 60);
    const conversationId = uid("late");
    await plantLink(conversationId);
    expect(await conversationMemory(env, conversationId).audioLink()).toBeNull();
    await runInDurableObject(legacyConversationObject(env, conversationId), (_o, state) => state.storage.setAlarm(Date.now() + 3_600_000));
    expect(await runDurableObjectAlarm(legacyConversationObject(env, conversationId))).toBe(true);
    expect(await legacyTables(conversationId)).toEqual([]);
    expect(await conversationMemory(env, conversationId).audioLink()).toMatchObject({ conversationId, bytes: 1 });
  });
});

describe("an import running when Core v3 was deployed", () => {
  it("resumes in its new object where it stopped, with its counters", async () => {
    const importId = `imp_${crypto.randomUUID()}`;
    const old = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(importObjectName(importId)));
    await runInDurableObject(old, async (_o, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE import_job (id INTEGER PRIMARY KEY CHECK (id = 1), import_id TEXT NOT NULL, agent_id TEXT NOT NULL, since INTEGER,
        include_audio INTEGER NOT NULL, status TEXT NOT NULL, cursor TEXT, more INTEGER NOT NULL DEFAULT 1, pages INTEGER NOT NULL DEFAULT 0,
        seen INTEGER NOT NULL DEFAULT 0, imported INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, unfinished INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER);
        CREATE TABLE import_queue (position INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE import_failures (conversation_id TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL);`);
      // Stopped after its one page: 12 listed, 9 imported, 3 still queued, no more pages.
      sql.exec(
        "INSERT INTO import_job (id, import_id, agent_id, include_audio, status, more, pages, seen, imported, created_at, updated_at) VALUES (1, ?, 'agent_small', 0, 'running', 0, 1, 12, 9, ?, ?)",
        importId, now(), now(),
      );
      for (const j of [9, 10, 11]) sql.exec("INSERT INTO import_queue (conversation_id) VALUES (?)", `small-c${j}`);
      // Far ahead, so that only runDurableObjectAlarm runs it.
      await state.storage.setAlarm(Date.now() + 3_600_000);
    });
    // Its old alarm fires after the deploy: the new object takes it over and runs it to the end.
    expect(await runDurableObjectAlarm(old)).toBe(true);
    let s: ImportStatus | null = null;
    for (let i = 0; i < 300; i++) {
      const res = await api("GET", `/v1/imports/${importId}`);
      expect(res.status).toBe(200);
      s = await res.json<ImportStatus>();
      if (s.status !== "running") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(s).toMatchObject({ import_id: importId, status: "done", seen: 12, pages: 1 });
    // The three it had queued are imported (or skipped if a webhook brought them), on top of its 9.
    expect(s!.imported + s!.skipped).toBe(12);
    expect(await runInDurableObject(old, async (_o, state) => state.storage.sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'import_job'").one())).toEqual({ n: 0 });
  });
});
