/**
 * The health page's D1 questions (src/api/health.ts), each one aggregate query over a window of
 * `conversations` found through the `conversations_by_start` index (calls that started in the
 * window; a window's scan reads about as many rows as calls in it).
 *
 * - calls per day by outcome and the call-duration distribution (what is stored, exactly);
 * - the projection's lag: `projected_at - received_at` of conversations received in the last 24 hours
 *   (of calls started in the 30-day window);
 * - audio that never came: conversations with no `audio` row, received long enough ago, of an
 *   agent that did deliver audio for another conversation in the window (audio delivery is set per
 *   workspace or agent; `has_audio` in payloads is not relied on, docs/elevenlabs.md).
 */
import { DURATION_BOUNDS } from "../records/health-charts";

export interface DayOutcome {
  day: number;
  outcome: string;
  n: number;
}

/** Calls that started since `since` (Unix seconds), by UTC day (days since the epoch) and `call_successful`. */
export async function callsPerDay(db: D1Database, since: number): Promise<DayOutcome[]> {
  const { results } = await db
    .prepare(
      `SELECT started_at / 86400 AS day, coalesce(call_successful, 'unknown') AS outcome, count(*) AS n
       FROM conversations WHERE started_at >= ? GROUP BY day, outcome ORDER BY day`,
    )
    .bind(since)
    .all<DayOutcome>();
  return results;
}

/**
 * Calls that never connected (call_initiation_failure) received since `since`, by UTC day: the
 * `not_connected` outcome of calls per day (they have no conversation row).
 */
export async function failedCallsPerDay(db: D1Database, since: number): Promise<DayOutcome[]> {
  const { results } = await db
    .prepare(`SELECT received_at / 86400 AS day, 'not_connected' AS outcome, count(*) AS n FROM call_failures WHERE received_at >= ? GROUP BY day ORDER BY day`)
    .bind(since)
    .all<DayOutcome>();
  return results;
}

/** Counts per duration bin (src/records/health-charts.ts, whose bounds the CASE is written from). */

export async function durationBuckets(db: D1Database, since: number): Promise<number[]> {
  const cases = DURATION_BOUNDS.map((b, i) => `WHEN duration_secs < ${b} THEN ${i}`).join(" ");
  const { results } = await db
    .prepare(`SELECT CASE ${cases} ELSE ${DURATION_BOUNDS.length} END AS bucket, count(*) AS n FROM conversations WHERE started_at >= ? GROUP BY bucket`)
    .bind(since)
    .all<{ bucket: number; n: number }>();
  const out = new Array<number>(DURATION_BOUNDS.length + 1).fill(0);
  for (const r of results) out[r.bucket] = r.n;
  return out;
}

export interface ProjectionLag {
  conversations: number;
  avgLagSeconds: number | null;
  maxLagSeconds: number | null;
  lastProjectedAt: number | null;
}

/** Lag of the conversations received since `since` that started since `startedSince` (the index's range). */
export async function projectionLag(db: D1Database, since: number, startedSince: number): Promise<ProjectionLag> {
  const row = await db
    .prepare(
      `SELECT count(*) AS n, avg(projected_at - received_at) AS avg_lag, max(projected_at - received_at) AS max_lag,
         max(projected_at) AS last FROM conversations
       WHERE started_at >= ? AND received_at >= ? AND projected_at IS NOT NULL`,
    )
    .bind(startedSince, since)
    .first<{ n: number; avg_lag: number | null; max_lag: number | null; last: number | null }>();
  return {
    conversations: row?.n ?? 0,
    avgLagSeconds: row?.avg_lag ?? null,
    maxLagSeconds: row?.max_lag ?? null,
    lastProjectedAt: row?.last ?? null,
  };
}

export interface MissingAudio {
  /** Counted over conversations received since each window's start. */
  last24h: number;
  last30d: number;
  examples: { conversation_id: string; agent_id: string; user_id: string | null; started_at: number; received_at: number }[];
}

/**
 * Conversations received between `since30d` and `receivedBefore` (now minus the grace an audio
 * webhook is given) without audio, of agents that delivered audio for a call started in the window.
 */
export async function missingAudio(db: D1Database, w: { since30d: number; since24h: number; receivedBefore: number }): Promise<MissingAudio> {
  const from = `FROM conversations c
    WHERE c.started_at >= ?1 AND c.received_at >= ?2 AND c.received_at <= ?3
      AND NOT EXISTS (SELECT 1 FROM audio a WHERE a.conversation_id = c.conversation_id)
      AND c.agent_id IN (SELECT c2.agent_id FROM conversations c2 JOIN audio a2 ON a2.conversation_id = c2.conversation_id WHERE c2.started_at >= ?1)`;
  const [counts, examples] = await db.batch<unknown>([
    db.prepare(`SELECT count(*) AS d30, count(CASE WHEN c.received_at >= ?4 THEN 1 END) AS d1 ${from}`).bind(w.since30d - 86_400, w.since30d, w.receivedBefore, w.since24h),
    db
      .prepare(`SELECT c.conversation_id, c.agent_id, c.user_id, c.started_at, c.received_at ${from} ORDER BY c.received_at DESC LIMIT 20`)
      .bind(w.since30d - 86_400, w.since30d, w.receivedBefore),
  ]);
  const c = counts!.results[0] as { d30: number; d1: number };
  return { last24h: c.d1, last30d: c.d30, examples: examples!.results as MissingAudio["examples"] };
}
