/**
 * D1 shards (src/storage/shards.ts) and the health counters (src/storage/counters.ts). Runs on one
 * shard or three (POSTCALL_TEST_SHARDS=3, as .ci/run does): the placement checks hold either way, and
 * on three they show rows in exactly the shard their id hashes to.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { getHealthDetails } from "../src/api/health";
import { parseEnvelope, conversationRecord } from "../src/records/payload";
import { listUnattributed, storeConversation } from "../src/storage/conversations";
import { durationBin } from "../src/records/health-charts";
import { BUCKET_COLUMNS } from "../src/storage/counters";
import { allShards, homeShardIndex, jumpHash, shardIndex, shardNames, userShardIndex } from "../src/storage/shards";
import { api, apiJson, u } from "./api-helpers";
import { audioEvent, audioBytes } from "./audio-helpers";
import { flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { homeDb, rowsEverywhere, shardCount, userDb } from "./shards";

describe("placement (pure)", () => {
  it("starts with DB, refuses a repeated name, and takes whitespace and an empty setting as DB", () => {
    const db = {} as D1Database;
    expect(shardNames({ DB: db })).toEqual(["DB"]);
    expect(shardNames({ DB: db, D1_SHARDS: " " })).toEqual(["DB"]);
    expect(shardNames({ DB: db, D1_SHARDS: "DB, DB_1 ,DB_2" })).toEqual(["DB", "DB_1", "DB_2"]);
    expect(() => shardNames({ DB: db, D1_SHARDS: "DB_1,DB" })).toThrow(/start with DB/);
    expect(() => shardNames({ DB: db, D1_SHARDS: "DB,DB_1,DB_1" })).toThrow(/twice/);
    expect(() => allShards({ DB: env.DB, D1_SHARDS: "DB,NOT_A_BINDING" })).toThrow(/NOT_A_BINDING, which is not a D1 binding/);
  });

  it("spreads ids evenly, and a fourth shard takes about a quarter of them from the three, moving no other", () => {
    const ids = Array.from({ length: 6000 }, (_, i) => `user:u${i}`);
    const three = ids.map((id) => shardIndex(id, 3));
    for (let s = 0; s < 3; s++) {
      const share = three.filter((x) => x === s).length / ids.length;
      expect(share).toBeGreaterThan(0.29);
      expect(share).toBeLessThan(0.38);
    }
    const four = ids.map((id) => shardIndex(id, 4));
    const moved = ids.filter((_, i) => four[i] !== three[i]);
    expect(moved.length / ids.length).toBeGreaterThan(0.2);
    expect(moved.length / ids.length).toBeLessThan(0.3);
    // Every id that moved went to the new shard: none was shuffled between the old ones.
    expect(moved.every((id) => shardIndex(id, 4) === 3)).toBe(true);
    // Stable: the same key, the same bucket (no per-isolate seed).
    expect(jumpHash(123456789n, 10)).toBe(jumpHash(123456789n, 10));
    expect(shardIndex("anything", 1)).toBe(0);
  });
});

/** A conversation id whose home shard is not `userId`'s (any id on one shard). */
function idAwayFrom(userId: string): string {
  for (let i = 0; ; i++) {
    const id = uid(`away${i}`);
    if (shardCount() === 1 || homeShardIndex(env, id) !== userShardIndex(env, userId)) return id;
  }
}

async function shardsHolding(table: string, conversationId: string): Promise<number[]> {
  const out: number[] = [];
  for (const [i, db] of allShards(env).entries()) {
    const n = await db.prepare(`SELECT count(*) AS n FROM ${table} WHERE conversation_id = ?`).bind(conversationId).first<{ n: number }>();
    if (n!.n > 0) out.push(i);
  }
  return out;
}

/** Counters against a scan of what is stored, shard by shard: they must agree exactly. */
async function expectCountersMatchRows() {
  const outcome = "CASE WHEN call_successful IN ('success', 'failure') THEN call_successful ELSE 'unknown' END";
  for (const db of allShards(env)) {
    const hourly = "SELECT hour / 24 AS day, 'success' AS outcome, success AS n FROM health_hourly UNION ALL SELECT hour / 24, 'failure', failure FROM health_hourly UNION ALL SELECT hour / 24, 'unknown', unknown FROM health_hourly";
    const counted = await db.prepare(`SELECT day, outcome, sum(n) AS n FROM (${hourly}) GROUP BY 1, 2 HAVING sum(n) != 0 ORDER BY 1, 2`).all();
    const scanned = await db.prepare(`SELECT started_at / 86400 AS day, ${outcome} AS outcome, count(*) AS n FROM conversations GROUP BY 1, 2 ORDER BY 1, 2`).all();
    expect(counted.results).toEqual(scanned.results);
    const buckets = await db.prepare(`SELECT hour, ${BUCKET_COLUMNS.join(", ")} FROM health_hourly WHERE ${BUCKET_COLUMNS.join(" + ")} != 0 ORDER BY hour`).all();
    const perHour = await db.prepare("SELECT started_at / 3600 AS hour, duration_secs FROM conversations").all<{ hour: number; duration_secs: number }>();
    const expected = new Map<number, Record<string, number>>();
    for (const r of perHour.results) {
      const row = expected.get(r.hour) ?? { hour: r.hour, ...Object.fromEntries(BUCKET_COLUMNS.map((c) => [c, 0])) };
      row[`d${durationBin(r.duration_secs)}`]! += 1;
      expected.set(r.hour, row);
    }
    expect(buckets.results).toEqual([...expected.values()].sort((a, b) => a["hour"]! - b["hour"]!));
  }
}

describe("where rows live", () => {
  it("puts a user's conversation in their shard and its entry and audio in the id's home; every read finds them", async () => {
    const userId = uid("placed");
    const id = idAwayFrom(userId);
    expect((await postWebhook(transcription({ userId, conversationId: id }))).status).toBe(200);
    await flush(userId, id);
    expect((await postWebhook(new TextDecoder().decode(audioEvent(audioBytes(2048), { conversationId: id }).body))).status).toBe(200);
    await flush(null, id);

    expect(await shardsHolding("conversations", id)).toEqual([userShardIndex(env, userId)]);
    expect(await shardsHolding("conversation_shards", id)).toEqual([homeShardIndex(env, id)]);
    expect(await shardsHolding("audio", id)).toEqual([homeShardIndex(env, id)]);
    expect(await userDb(userId).prepare("SELECT conversation_count AS n FROM users WHERE user_id = ?").bind(userId).first()).toEqual({ n: 1 });

    // By id (home, then the owner's shard), by user (their shard, audio asked of the home), the export.
    expect(await apiJson("GET", `/v1/conversations/${u(id)}`)).toMatchObject({ conversation_id: id, user_id: userId, has_audio: true });
    expect((await apiJson("GET", `/v1/users/${u(userId)}/conversations`))["conversations"]).toMatchObject([{ conversation_id: id, has_audio: true }]);
    const lines = new TextDecoder().decode(await (await api("GET", `/v1/users/${u(userId)}/export`)).arrayBuffer()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.find((l) => l.type === "conversation")).toMatchObject({ conversation_id: id, has_audio: true, audio: { bytes: 2048 } });
    expect((await apiJson("GET", `/v1/users?q=${u(userId)}`))["users"]).toMatchObject([{ user_id: userId, conversation_count: 1 }]);

    // Erasure finds the row in the user's shard and the entry and audio in the home.
    expect((await api("DELETE", `/v1/users/${u(userId)}`)).status).toBeLessThan(300);
    for (let i = 0; i < 10 && (await rowsEverywhere("SELECT 1 FROM conversation_shards WHERE conversation_id = ?", id)).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const table of ["conversations", "conversation_shards", "audio", "audio_pending"]) expect(await shardsHolding(table, id)).toEqual([]);
    await expectCountersMatchRows();
  });

  it("moves an attributed conversation from its home to the user's shard, with its search document and counts", async () => {
    const userId = uid("movedto");
    const id = idAwayFrom(userId);
    const event = transcription({ userId, conversationId: id, token: null, startedAt: nowSeconds() - 60 });
    expect((await postWebhook(event)).status).toBe(200);
    await flush(null, id);
    expect(await shardsHolding("conversations", id)).toEqual([homeShardIndex(env, id)]);
    const unattributed = await apiJson("GET", "/v1/conversations?unattributed=true&limit=100");
    expect(unattributed["conversations"].map((c: { conversation_id: string }) => c.conversation_id)).toContain(id);

    const res = await api("POST", `/v1/conversations/${u(id)}/attribute`, undefined, JSON.stringify({ user_id: userId }));
    expect(await res.json()).toMatchObject({ status: "attributed" });
    expect(await shardsHolding("conversations", id)).toEqual([userShardIndex(env, userId)]);
    expect(await homeDb(id).prepare("SELECT user_id FROM conversation_shards WHERE conversation_id = ?").bind(id).first()).toEqual({ user_id: userId });
    const doc = await userDb(userId)
      .prepare("SELECT count(*) AS n FROM conversations_fts WHERE conversations_fts MATCH 'cracked' AND rowid = (SELECT doc_id FROM conversations WHERE conversation_id = ?)")
      .bind(id)
      .first();
    expect(doc).toEqual({ n: 1 });
    expect(await apiJson("GET", `/v1/conversations/${u(id)}`)).toMatchObject({ user_id: userId, vouched_by: "operator" });
    const after = await apiJson("GET", "/v1/conversations?unattributed=true&limit=100");
    expect(after["conversations"].map((c: { conversation_id: string }) => c.conversation_id)).not.toContain(id);
    await expectCountersMatchRows();
  });

  it("counts a conversation once however often its write is replayed", async () => {
    const userId = uid("replayed");
    const event = transcription({ userId });
    const raw = new TextEncoder().encode(JSON.stringify(event));
    const r = conversationRecord(parseEnvelope(raw), { userId, source: "dynamic_variable", phoneNumber: null, vouchedBy: "token" }, nowSeconds());
    for (let i = 0; i < 3; i++) await storeConversation(env, r, { transcriptKey: `conversations/${r.conversationId}/transcript.json`, receivedAt: nowSeconds() });
    expect(await shardsHolding("conversations", r.conversationId)).toEqual([userShardIndex(env, userId)]);
    const hour = Math.floor(nowSeconds() / 3600);
    const lagRows = await rowsEverywhere<{ n: number }>("SELECT lag_n AS n FROM health_hourly WHERE hour >= ?", hour - 1);
    expect(lagRows.reduce((a, b) => a + b.n, 0)).toBeGreaterThanOrEqual(1);
    await expectCountersMatchRows();
  });
});

/** The env with every shard's `prepare` observed: `seen(db, sql)` returns what to do with the statement. */
function spyOnShards(extra: Record<string, unknown>, seen: (db: D1Database, sql: string) => (stmt: D1PreparedStatement) => D1PreparedStatement) {
  const spied: Record<string, unknown> = { ...env, ...extra };
  for (const name of shardNames(env)) {
    const real = (env as unknown as Record<string, D1Database>)[name]!;
    spied[name] = new Proxy(real, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === "prepare") return (sql: string) => seen(real, sql)(target.prepare(sql));
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
  return spied;
}

describe("rows written", () => {
  /** The env with every shard's batch results summed: D1 rows written (each index entry counts). */
  function metered() {
    const total = { rowsWritten: 0 };
    const spied: Record<string, unknown> = { ...env };
    for (const name of shardNames(env)) {
      const real = (env as unknown as Record<string, D1Database>)[name]!;
      spied[name] = new Proxy(real, {
        get(target, prop) {
          if (prop === "batch") {
            return async (stmts: D1PreparedStatement[]) => {
              const results = await target.batch(stmts);
              for (const r of results) total.rowsWritten += r.meta.rows_written ?? 0;
              return results;
            };
          }
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    }
    return { env: spied as unknown as typeof env, total };
  }

  async function store(e: typeof env, agentId: string) {
    const userId = uid("metered");
    const event = transcription({ userId });
    event["data"].agent_id = agentId;
    const raw = new TextEncoder().encode(JSON.stringify(event));
    const r = conversationRecord(parseEnvelope(raw), { userId, source: "dynamic_variable", phoneNumber: null, vouchedBy: "token" }, nowSeconds());
    await storeConversation(e, r, { transcriptKey: `conversations/${r.conversationId}/transcript.json`, receivedAt: nowSeconds() });
    return r.conversationId;
  }

  it("costs at most 10 D1 rows per transcription of an agent without audio, which waits for audio in no shard", async () => {
    const m = metered();
    const agent = uid("agent_silent");
    await store(m.env, agent); // the first of the hour creates its counter row
    const before = m.total.rowsWritten;
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await store(m.env, agent));
    // The row and its indexes, search document, counter, entry and directory row: the meter sees them.
    expect((m.total.rowsWritten - before) / 4).toBeGreaterThanOrEqual(7);
    expect((m.total.rowsWritten - before) / 4).toBeLessThanOrEqual(10);
    for (const id of ids) expect(await shardsHolding("audio_pending", id)).toEqual([]);
  });

  it("makes an agent's conversations wait for audio in every shard once it sent audio to one, at two rows more", async () => {
    const agent = uid("agent_loud");
    const first = await store(env, agent);
    expect((await postWebhook(new TextDecoder().decode(audioEvent(audioBytes(512), { conversationId: first, agentId: agent }).body))).status).toBe(200);
    await flush(null, first);
    const m = metered();
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await store(m.env, agent));
    for (const id of ids) expect(await shardsHolding("audio_pending", id)).toEqual([homeShardIndex(env, id)]);
    expect(m.total.rowsWritten / 6).toBeGreaterThanOrEqual(9);
    expect(m.total.rowsWritten / 6).toBeLessThanOrEqual(12);
  });
});

describe("the health page", () => {
  it("reads counters and never the conversations table, on every shard", async () => {
    const statements: string[] = [];
    const spied = spyOnShards({}, (_db, sql) => {
      statements.push(sql);
      return (stmt) => stmt;
    });
    const res = await getHealthDetails(spied as unknown as typeof env);
    expect(res.status).toBe(200);
    expect(statements.length).toBeGreaterThanOrEqual(5 * shardCount());
    expect(statements.filter((s) => /\b(FROM|JOIN)\s+conversations\b(?!_)/i.test(s))).toEqual([]);
    const body = (await res.json()) as { charts: { calls_per_day: { outcomes: Record<string, number[]> } } };
    expect(Object.values(body.charts.calls_per_day.outcomes).flat().reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});

describe("the daily sweep", () => {
  it("finds its work through indexes: no statement scans conversations or audio, on any shard", async () => {
    const reads: { db: D1Database; sql: string; params: unknown[] }[] = [];
    const spied = spyOnShards({ RETENTION_DAYS: "30" }, (db, sql) => {
      const read = { db, sql, params: [] as unknown[] };
      if (/^\s*SELECT/i.test(sql)) reads.push(read);
      return (stmt) =>
        new Proxy(stmt, {
          get(s, p) {
            const v = Reflect.get(s, p, s) as unknown;
            if (p === "bind") return (...params: unknown[]) => ((read.params = params), s.bind(...params));
            return typeof v === "function" ? v.bind(s) : v;
          },
        });
    });
    const { sweepRetention } = await import("../src/cron/sweep");
    await sweepRetention(spied as unknown as typeof env);
    expect(reads.length).toBeGreaterThanOrEqual(3 * shardCount());
    const scans: string[] = [];
    for (const r of reads) {
      const { results } = await r.db.prepare(`EXPLAIN QUERY PLAN ${r.sql}`).bind(...r.params).all<{ detail: string }>();
      for (const { detail } of results) if (/^SCAN (conversations|audio|a|c)\b/.test(detail)) scans.push(`${detail}: ${r.sql}`);
    }
    expect(scans).toEqual([]);
  });
});

describe("the unattributed list", () => {
  it("reads its page in index order on every shard: no sort of every unowned row", async () => {
    const sqls: string[] = [];
    const spied = spyOnShards({}, (_db, sql) => (sqls.push(sql), (stmt) => stmt));
    await listUnattributed(spied as unknown as typeof env, { limit: 50, after: null });
    await listUnattributed(spied as unknown as typeof env, { limit: 50, after: { receivedAt: nowSeconds(), conversationId: "conv_x" } });
    expect(sqls.length).toBe(2 * shardCount());
    for (const sql of sqls) {
      const args = sql.includes("received_at <") ? [1, 1, "x", 50] : [50];
      const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...args).all<{ detail: string }>();
      expect(results.map((r) => r.detail).join("; ")).not.toMatch(/TEMP B-TREE|conversations_by_user/);
    }
  });
});
