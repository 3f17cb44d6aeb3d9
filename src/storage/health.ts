/**
 * The health page's D1 questions (src/api/health.ts), answered from counters kept as conversations
 * are written and deleted (src/storage/counters.ts, migrations/0013_fewer_rows_written.sql: one row per
 * hour the calls started), never by scanning `conversations`: each read touches the rows of its
 * window (at most 24 per day), in every shard, summed.
 *
 * - calls per day by outcome and the call-duration distribution (what is stored, exactly: erasure
 *   and retention take their rows out of the counts);
 * - the projection's lag: `projected_at - received_at` of conversations that started in the last 24
 *   hours (by the hour started; an import of old calls counts in the hours they started);
 * - audio that never came: conversations still waiting in `audio_pending`, received long enough ago,
 *   of an agent that delivered audio in the window (audio delivery is set per workspace or agent;
 *   `has_audio` in payloads is not relied on, docs/elevenlabs.md). Only conversations of agents that
 *   had delivered audio to their shard in the month before wait there (src/storage/conversations.ts),
 *   so the conversations of agents that send no audio are never written there nor read.
 */
import { DURATION_BOUNDS } from "../records/health-charts";
import { BUCKET_COLUMNS, OUTCOME_COLUMNS } from "./counters";
import { onEveryShard, type ShardEnv } from "./shards";

export { DURATION_BOUNDS };

export interface DayOutcome {
  day: number;
  outcome: string;
  n: number;
}

/** Stored calls that started on or after UTC day `sinceDay` (days since the epoch), by day and outcome (OUTCOME_COLUMNS). */
export async function callsPerDay(env: ShardEnv, sinceDay: number): Promise<DayOutcome[]> {
  const sums = OUTCOME_COLUMNS.map((c) => `sum(${c}) AS ${c}`).join(", ");
  const pages = await onEveryShard(env, async (db) =>
    (await db.prepare(`SELECT hour / 24 AS day, ${sums} FROM health_hourly WHERE hour >= ? GROUP BY 1`).bind(sinceDay * 24).all<Record<string, number>>()).results,
  );
  const rows = pages.flat().flatMap((r) => OUTCOME_COLUMNS.map((outcome) => ({ day: r["day"]!, outcome, n: r[outcome] ?? 0 })));
  return sumByDay(rows.filter((r) => r.n !== 0));
}

/** Rows of several shards summed per day and outcome, by day. */
function sumByDay(rows: DayOutcome[]): DayOutcome[] {
  const sum = new Map<string, DayOutcome>();
  for (const r of rows) {
    const k = `${r.day}/${r.outcome}`;
    const had = sum.get(k);
    sum.set(k, had ? { ...had, n: had.n + r.n } : r);
  }
  return [...sum.values()].sort((a, b) => a.day - b.day);
}

/**
 * Calls that never connected (call_initiation_failure) received since `since`, by UTC day: the
 * `not_connected` outcome of calls per day (they have no conversation row). Each shard's failures of
 * the window only (`call_failures_by_received`), summed.
 */
export async function failedCallsPerDay(env: ShardEnv, since: number): Promise<DayOutcome[]> {
  const pages = await onEveryShard(env, async (db) =>
    (
      await db
        .prepare(`SELECT received_at / 86400 AS day, 'not_connected' AS outcome, count(*) AS n FROM call_failures WHERE received_at >= ? GROUP BY day`)
        .bind(since)
        .all<DayOutcome>()
    ).results,
  );
  return sumByDay(pages.flat());
}

/** Stored calls that started on or after UTC day `sinceDay`, by duration bucket (DURATION_BOUNDS). */
export async function durationBuckets(env: ShardEnv, sinceDay: number): Promise<number[]> {
  const sums = BUCKET_COLUMNS.map((c) => `sum(${c}) AS ${c}`).join(", ");
  const rows = await onEveryShard(env, (db) => db.prepare(`SELECT ${sums} FROM health_hourly WHERE hour >= ?`).bind(sinceDay * 24).first<Record<string, number | null>>());
  return BUCKET_COLUMNS.map((c) => rows.reduce((n, r) => n + (r?.[c] ?? 0), 0));
}

export interface ProjectionLag {
  conversations: number;
  avgLagSeconds: number | null;
  maxLagSeconds: number | null;
  lastProjectedAt: number | null;
}

/** Lag of the conversations that started in the hours from the one holding `since` on. */
export async function projectionLag(env: ShardEnv, since: number): Promise<ProjectionLag> {
  const rows = await onEveryShard(env, (db) =>
    db
      .prepare("SELECT sum(lag_n) AS n, sum(lag_sum) AS lag_sum, max(lag_max) AS lag_max, max(last_projected_at) AS last FROM health_hourly WHERE hour >= ?")
      .bind(Math.floor(since / 3600))
      .first<{ n: number | null; lag_sum: number | null; lag_max: number | null; last: number | null }>(),
  );
  let n = 0;
  let lagSum = 0;
  let max: number | null = null;
  let last: number | null = null;
  for (const r of rows) {
    if (!r || !r.n) continue;
    n += r.n;
    lagSum += r.lag_sum ?? 0;
    max = max === null ? r.lag_max : Math.max(max, r.lag_max ?? max);
    last = last === null ? r.last : Math.max(last, r.last ?? last);
  }
  return { conversations: n, avgLagSeconds: n === 0 ? null : lagSum / n, maxLagSeconds: max, lastProjectedAt: last };
}

export interface MissingAudio {
  /** Counted over conversations received since each window's start. */
  last24h: number;
  last30d: number;
  examples: { conversation_id: string; agent_id: string; user_id: string | null; started_at: number; received_at: number }[];
}

/**
 * Conversations received between `since30d` and `receivedBefore` (now minus the grace an audio
 * webhook is given) still without audio, of agents that delivered audio since `since30d` in any shard.
 */
export async function missingAudio(env: ShardEnv, w: { since30d: number; since24h: number; receivedBefore: number }): Promise<MissingAudio> {
  const agentPages = await onEveryShard(env, async (db) =>
    (await db.prepare("SELECT agent_id FROM audio_agents WHERE last_audio_at >= ? LIMIT 1000").bind(w.since30d).all<{ agent_id: string }>()).results,
  );
  const agents = JSON.stringify([...new Set(agentPages.flat().map((a) => a.agent_id))]);
  const from = `FROM audio_pending p WHERE p.agent_id IN (SELECT value FROM json_each(?1)) AND p.received_at >= ?2 AND p.received_at <= ?3`;
  const answers = await onEveryShard(env, async (db) => {
    const [counts, examples] = await db.batch<unknown>([
      db.prepare(`SELECT count(*) AS d30, count(CASE WHEN p.received_at >= ?4 THEN 1 END) AS d1 ${from}`).bind(agents, w.since30d, w.receivedBefore, w.since24h),
      db
        .prepare(`SELECT p.conversation_id, p.agent_id, p.user_id, p.started_at, p.received_at ${from} ORDER BY p.received_at DESC LIMIT 20`)
        .bind(agents, w.since30d, w.receivedBefore),
    ]);
    return { counts: counts!.results[0] as { d30: number; d1: number }, examples: examples!.results as MissingAudio["examples"] };
  });
  const examples = answers.flatMap((a) => a.examples).sort((a, b) => b.received_at - a.received_at).slice(0, 20);
  return {
    last24h: answers.reduce((s, a) => s + a.counts.d1, 0),
    last30d: answers.reduce((s, a) => s + a.counts.d30, 0),
    examples,
  };
}
