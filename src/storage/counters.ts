/**
 * The health page's counters (migrations/0012_shards_and_counters.sql), kept in the same D1 batch as
 * the conversation rows they count, in the same shard: the page reads a few rows per day and hour
 * instead of scanning conversations (src/storage/health.ts).
 *
 * An insert counts only when its conversation row was really inserted: each statement runs only when
 * the one before it changed a row (`changes() = 1`), starting from the row's `ON CONFLICT DO NOTHING`
 * insert, so a replayed write adds nothing. A delete subtracts what the deleted rows held, grouped,
 * in the batch that deletes them.
 */

import { DURATION_BOUNDS, durationBin } from "../records/health-charts";

/** The duration bucket of a call: the health chart's bin (src/records/health-charts.ts). */
export const durationBucket = durationBin;

const BUCKET_SQL = `CASE ${DURATION_BOUNDS.map((b, i) => `WHEN duration_secs < ${b} THEN ${i}`).join(" ")} ELSE ${DURATION_BOUNDS.length} END`;

export interface Counted {
  startedAt: number;
  durationSecs: number;
  callSuccessful: string | null;
  receivedAt: number;
  /** When this write projected it (null: a move between shards, not a projection). */
  projectedAt: number | null;
}

/**
 * Statements that count one conversation; to be placed right after the statement that inserts its
 * row (each runs only if the previous one changed a row). The last one leaves `changes() = 1` too.
 */
export function countStatements(db: D1Database, c: Counted): D1PreparedStatement[] {
  const day = Math.floor(c.startedAt / 86_400);
  const out = [
    db
      .prepare(
        `INSERT INTO health_calls_daily (day, outcome, n) SELECT ?, ?, 1 WHERE changes() = 1
         ON CONFLICT (day, outcome) DO UPDATE SET n = n + 1`,
      )
      .bind(day, c.callSuccessful ?? "unknown"),
    db
      .prepare(
        `INSERT INTO health_durations_daily (day, bucket, n) SELECT ?, ?, 1 WHERE changes() = 1
         ON CONFLICT (day, bucket) DO UPDATE SET n = n + 1`,
      )
      .bind(day, durationBucket(c.durationSecs)),
  ];
  if (c.projectedAt !== null) {
    const lag = c.projectedAt - c.receivedAt;
    out.push(
      db
        .prepare(
          `INSERT INTO health_projection_hourly (hour, n, lag_sum, lag_max, last_projected_at) SELECT ?, 1, ?, ?, ? WHERE changes() = 1
           ON CONFLICT (hour) DO UPDATE SET n = n + 1, lag_sum = lag_sum + excluded.lag_sum,
             lag_max = max(lag_max, excluded.lag_max), last_projected_at = max(last_projected_at, excluded.last_projected_at)`,
        )
        .bind(Math.floor(c.receivedAt / 3600), lag, lag, c.projectedAt),
    );
  }
  return out;
}

/**
 * Statements that take the conversations about to be deleted (`where`, with its parameters, over
 * `conversations`) out of the counters; to run in the batch that deletes them, before the delete.
 */
export function uncountStatements(db: D1Database, where: string, params: unknown[]): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `INSERT INTO health_calls_daily (day, outcome, n)
         SELECT started_at / 86400, coalesce(call_successful, 'unknown'), -count(*) FROM conversations WHERE ${where} GROUP BY 1, 2
         ON CONFLICT (day, outcome) DO UPDATE SET n = n + excluded.n`,
      )
      .bind(...params),
    db
      .prepare(
        `INSERT INTO health_durations_daily (day, bucket, n)
         SELECT started_at / 86400, ${BUCKET_SQL}, -count(*) FROM conversations WHERE ${where} GROUP BY 1, 2
         ON CONFLICT (day, bucket) DO UPDATE SET n = n + excluded.n`,
      )
      .bind(...params),
  ];
}
