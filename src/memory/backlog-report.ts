/**
 * How a failing outbox becomes visible on the health page without costing a healthy one anything:
 * an object tells the stats object (src/memory/stats.ts) about its outbox only after a delivery run
 * in which an item failed, or in which items that had failed before were delivered (so the report
 * can be withdrawn). A healthy outbox, whose items all go through at the first attempt, never calls.
 * Best effort: a report that cannot be sent is logged, and the next failure sends it again.
 */
import type { Env } from "../lib/env";
import { statsObject } from "./objects";
import type { BacklogReport } from "./roles";

/** Whether any pending item has failed before (its object may have reported it). */
export function hasFailedItems(sql: SqlStorage): boolean {
  return sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE attempts > 0").one().n > 0;
}

export function backlogOf(sql: SqlStorage, object: string, nowSeconds: number): BacklogReport {
  const agg = sql
    .exec<{ pending: number; oldest: number | null; max_attempts: number | null }>(
      "SELECT count(*) AS pending, min(created_at) AS oldest, max(attempts) AS max_attempts FROM outbox",
    )
    .one();
  const last = sql
    .exec<{ last_error: string | null }>("SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY attempts DESC, seq LIMIT 1")
    .toArray()[0];
  return { object, pending: agg.pending, oldestCreatedAt: agg.oldest, maxAttempts: agg.max_attempts ?? 0, lastError: last?.last_error ?? null, at: nowSeconds };
}

/** An empty outbox: withdraws an earlier report. */
export const clearedBacklog = (object: string, nowSeconds: number): BacklogReport => ({
  object,
  pending: 0,
  oldestCreatedAt: null,
  maxAttempts: 0,
  lastError: null,
  at: nowSeconds,
});

/** Sends a report; false (logged) when it could not be sent. */
export async function sendBacklog(env: Env, report: BacklogReport): Promise<boolean> {
  try {
    await statsObject(env).reportBacklog(report);
    return true;
  } catch (err) {
    console.warn(`outbox backlog report for ${report.object} not sent: ${err instanceof Error ? err.message : String(err)}`);
    return false;
  }
}
