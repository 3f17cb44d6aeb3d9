/**
 * migrations/0013 on shards filled by the 0012 layout: the three counter tables become one row per
 * hour (rebuilt from the stored conversations), the key-only tables WITHOUT ROWID with their rows
 * carried over, and only the conversations of agents that send audio keep waiting for it. Each shard
 * is upgraded on its own (rows written here in raw SQL, as the 0012 code left them).
 */
import { applyD1Migrations, reset } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { callsPerDay, durationBuckets, missingAudio, projectionLag } from "../src/storage/health";
import { allShards } from "../src/storage/shards";

const now = Math.floor(Date.now() / 1000);
// [id, outcome, duration, started, projected] (received 100 s after the start): an odd label and none count as unknown.
const CALLS: [string, string | null, number, number, number | null][] = [
  ["m13-a", "success", 45, now - 600, now - 500],
  ["m13-b", "failure", 700, now - 600, now - 590],
  ["m13-c", "maybe", 5, now - 86_400 * 3, null],
  ["m13-d", null, 2000, now - 86_400 * 3, now - 86_400 * 3 + 50],
];

beforeAll(async () => {
  await reset();
  for (const [i, db] of allShards(env).entries()) {
    await applyD1Migrations(db, env.TEST_MIGRATIONS.filter((m) => m.name < "0013"));
    for (const [id, outcome, duration, started, projected] of CALLS) {
      await db
        .prepare(
          `INSERT INTO conversations (conversation_id, user_id, agent_id, started_at, duration_secs, call_successful, turn_count, transcript_key, received_at, projected_at)
           VALUES (?, ?, ?, ?, ?, ?, 0, 'k', ?, ?)`,
        )
        .bind(`${id}-${i}`, `u-${i}`, id === "m13-a" ? "agent_audio" : "agent_quiet", started, duration, outcome, started + 100, projected)
        .run();
    }
    await db.batch([
      db.prepare("INSERT INTO health_calls_daily (day, outcome, n) VALUES (1, 'success', 99)"),
      db.prepare("INSERT INTO conversation_shards (conversation_id, user_id, user_id_source, agent_id) VALUES (?, ?, 'dynamic_variable', 'agent_audio')").bind(`m13-a-${i}`, `u-${i}`),
      db.prepare("INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, 'agent_audio', 'audio/x.mp3', 10, 'ab', ?)").bind(`m13-x-${i}`, now - 900),
      db.prepare("INSERT INTO audio_agents (agent_id, last_audio_at) VALUES ('agent_audio', ?)").bind(now - 900),
      db.prepare("INSERT INTO audio_pending (conversation_id, agent_id, user_id, started_at, received_at) VALUES (?, 'agent_audio', ?, ?, ?)").bind(`m13-a-${i}`, `u-${i}`, now - 600, now - 500),
      db.prepare("INSERT INTO audio_pending (conversation_id, agent_id, user_id, started_at, received_at) VALUES (?, 'agent_quiet', ?, ?, ?)").bind(`m13-b-${i}`, `u-${i}`, now - 600, now - 500),
    ]);
    await applyD1Migrations(db, env.TEST_MIGRATIONS);
  }
});

describe("migration 0013", () => {
  it("rebuilds the counters as one row per hour from the stored conversations, and the health page reads them", async () => {
    const shards = allShards(env).length;
    for (const db of allShards(env)) {
      const tables = (await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'health_%'").all<{ name: string }>()).results;
      expect(tables.map((t) => t.name)).toEqual(["health_hourly"]);
      const rows = (await db.prepare("SELECT * FROM health_hourly ORDER BY hour").all()).results;
      expect(rows).toEqual([
        { hour: Math.floor((now - 86_400 * 3) / 3600), success: 0, failure: 0, unknown: 2, d0: 1, d1: 0, d2: 0, d3: 0, d4: 0, d5: 0, d6: 1, lag_n: 1, lag_sum: -50, lag_max: -50, last_projected_at: now - 86_400 * 3 + 50 },
        { hour: Math.floor((now - 600) / 3600), success: 1, failure: 1, unknown: 0, d0: 0, d1: 1, d2: 0, d3: 0, d4: 0, d5: 1, d6: 0, lag_n: 2, lag_sum: -90, lag_max: 0, last_projected_at: now - 500 },
      ]);
    }
    const today = Math.floor(now / 86_400);
    const perDay = await callsPerDay(env, today - 5);
    const n = (day: number, outcome: string) => perDay.find((r) => r.day === day && r.outcome === outcome)?.n ?? 0;
    expect(n(Math.floor((now - 600) / 86_400), "success")).toBe(shards);
    expect(n(Math.floor((now - 600) / 86_400), "failure")).toBe(shards);
    expect(n(Math.floor((now - 86_400 * 3) / 86_400), "unknown")).toBe(2 * shards);
    expect(await durationBuckets(env, today - 5)).toEqual([1, 1, 0, 0, 0, 1, 1].map((x) => x * shards));
    expect(await projectionLag(env, now - 86_400)).toMatchObject({ conversations: 2 * shards, maxLagSeconds: 0, lastProjectedAt: now - 500 });
  });

  it("carries the key-only tables over as WITHOUT ROWID, and keeps waiting only conversations of agents that send audio", async () => {
    for (const [i, db] of allShards(env).entries()) {
      for (const table of ["conversation_shards", "audio", "audio_agents", "audio_pending"]) {
        const { sql } = (await db.prepare("SELECT sql FROM sqlite_master WHERE name = ?").bind(table).first<{ sql: string }>())!;
        expect(sql, table).toMatch(/\) WITHOUT ROWID$/);
      }
      expect((await db.prepare("SELECT * FROM conversation_shards").all()).results).toEqual([
        { conversation_id: `m13-a-${i}`, user_id: `u-${i}`, user_id_source: "dynamic_variable", agent_id: "agent_audio" },
      ]);
      expect((await db.prepare("SELECT conversation_id, r2_key, stored_at FROM audio").all()).results).toEqual([{ conversation_id: `m13-x-${i}`, r2_key: "audio/x.mp3", stored_at: now - 900 }]);
      expect((await db.prepare("SELECT conversation_id FROM audio_pending").all()).results).toEqual([{ conversation_id: `m13-a-${i}` }]);
      const left = (await db.prepare("SELECT name FROM sqlite_master WHERE name LIKE '%_0012'").all()).results;
      expect(left).toEqual([]);
    }
    const missing = await missingAudio(env, { since30d: now - 30 * 86_400, since24h: now - 86_400, receivedBefore: now });
    expect(missing.last24h).toBe(allShards(env).length);
    expect(missing.examples.map((e) => e.agent_id)).toEqual(allShards(env).map(() => "agent_audio"));
  });
});
