/**
 * The health page's counters (migrations/0013_fewer_rows_written.sql `health_hourly`), kept in the
 * same D1 batch as the conversation rows they count, in the same shard: the page reads a few rows
 * per hour instead of scanning conversations (src/storage/health.ts). One row per UTC hour the calls
 * started, so counting a conversation is one UPSERT (one D1 row written): a column per outcome, per
 * duration bucket, and the projection's lag.
 *
 * An insert counts only when its conversation row was really inserted: the UPSERT runs only when the
 * statement before it changed a row (`changes() = 1`, the row's `ON CONFLICT DO NOTHING` insert), so
 * a replayed write adds nothing. A delete subtracts what the deleted rows held, grouped by hour, in
 * the batch that deletes them.
 */

import { DURATION_BOUNDS, durationBin } from "../records/health-charts";

/** The duration bucket of a call: the health chart's bin (src/records/health-charts.ts). */
export const durationBucket = durationBin;

/** The outcomes that have a column; any other call_successful (or none) counts as `unknown`. */
export const OUTCOME_COLUMNS = ["success", "failure", "unknown"] as const;
const outcomeColumn = (callSuccessful: string | null) => (callSuccessful === "success" || callSuccessful === "failure" ? callSuccessful : "unknown");

/** The duration buckets' columns, d0 (under DURATION_BOUNDS[0]) to d6 (DURATION_BOUNDS' last or more). */
export const BUCKET_COLUMNS = Array.from({ length: DURATION_BOUNDS.length + 1 }, (_, i) => `d${i}`);

/** `column = column + <sql>` for every count column, where `sql(c)` gives the change of column `c`. */
const addAll = (sql: (column: string) => string) => [...OUTCOME_COLUMNS, ...BUCKET_COLUMNS].map((c) => `${c} = ${c} + ${sql(c)}`).join(", ");

export interface Counted {
  startedAt: number;
  durationSecs: number;
  callSuccessful: string | null;
  receivedAt: number;
  /** When this write projected it (null: a move between shards, not a projection). */
  projectedAt: number | null;
}

/**
 * The statement that counts one conversation; to be placed right after the statement that inserts
 * its row (it runs only if that changed a row). It leaves `changes() = 1` too.
 */
export function countStatements(db: D1Database, c: Counted): D1PreparedStatement[] {
  const outcome = outcomeColumn(c.callSuccessful);
  const bucket = `d${durationBucket(c.durationSecs)}`;
  const lag = c.projectedAt === null ? null : c.projectedAt - c.receivedAt;
  return [
    db
      .prepare(
        `INSERT INTO health_hourly (hour, ${outcome}, ${bucket}, lag_n, lag_sum, lag_max, last_projected_at)
         SELECT ?1, 1, 1, ?2, coalesce(?3, 0), ?3, ?4 WHERE changes() = 1
         ON CONFLICT (hour) DO UPDATE SET ${outcome} = ${outcome} + 1, ${bucket} = ${bucket} + 1,
           lag_n = lag_n + excluded.lag_n, lag_sum = lag_sum + excluded.lag_sum,
           lag_max = coalesce(max(lag_max, excluded.lag_max), lag_max, excluded.lag_max),
           last_projected_at = coalesce(max(last_projected_at, excluded.last_projected_at), last_projected_at, excluded.last_projected_at)`,
      )
      .bind(Math.floor(c.startedAt / 3600), lag === null ? 0 : 1, lag, c.projectedAt),
  ];
}

const OUTCOME_SQL: Record<string, string> = {
  success: "call_successful = 'success'",
  failure: "call_successful = 'failure'",
  unknown: "(call_successful IS NULL OR call_successful NOT IN ('success', 'failure'))",
};
const bucketSql = (i: number) =>
  [i > 0 ? `duration_secs >= ${DURATION_BOUNDS[i - 1]}` : null, i < DURATION_BOUNDS.length ? `duration_secs < ${DURATION_BOUNDS[i]}` : null].filter(Boolean).join(" AND ");
const whenSql = (column: string) => (column.startsWith("d") ? bucketSql(Number(column.slice(1))) : OUTCOME_SQL[column]!);

/**
 * Statements that take the conversations about to be deleted (`where`, with its parameters, over
 * `conversations`) out of the counters; to run in the batch that deletes them, before the delete.
 * The projection's lag is not taken back (it tells how writes went, not what is stored).
 */
export function uncountStatements(db: D1Database, where: string, params: unknown[]): D1PreparedStatement[] {
  const columns = [...OUTCOME_COLUMNS, ...BUCKET_COLUMNS];
  return [
    db
      .prepare(
        `INSERT INTO health_hourly (hour, ${columns.join(", ")})
         SELECT started_at / 3600, ${columns.map((c) => `-count(CASE WHEN ${whenSql(c)} THEN 1 END)`).join(", ")}
         FROM conversations WHERE ${where} GROUP BY 1
         ON CONFLICT (hour) DO UPDATE SET ${addAll((c) => `excluded.${c}`)}`,
      )
      .bind(...params),
  ];
}
