/**
 * How a failing outbox becomes visible on the health page without costing a healthy one anything:
 * an object tells the stats object (src/objects/health-stats/stats.ts) about its outbox only after a delivery run
 * in which an item failed, or in which items that had failed before were delivered (so the report
 * can be withdrawn); a failing one refreshes it only when its backlog doubles, halves or becomes
 * stuck, or every REPORT_EVERY_SECONDS. A healthy outbox, whose items all go through at the first
 * attempt, never calls.
 * Best effort: a report that cannot be sent is logged, and the next failure sends it again.
 */
import type { Env } from "../../lib/env";
import { statsObject } from "../../memory/objects";
import { STUCK_ATTEMPTS } from "./outbox";
import type { BacklogReport } from "../../memory/rpc";

/**
 * A failing outbox refreshes its report at most this often (its failures recur at least every
 * 10 minutes, the backoff's ceiling), so an outage that hits many objects at once does not become a
 * call per failure per object to the one stats object. Recovering and becoming stuck report at once.
 */
export const REPORT_EVERY_SECONDS = 5 * 60;

/** What an object instance last reported (kept in memory: an evicted instance simply reports again). */
export interface SentReport {
  at: number;
  pending: number;
  stuck: boolean;
}

/** Report when the backlog empties, becomes stuck, doubles or halves, or every REPORT_EVERY_SECONDS. */
export function worthReporting(last: SentReport | null, r: BacklogReport): boolean {
  if (r.pending === 0 || last === null) return true;
  if (r.maxAttempts >= STUCK_ATTEMPTS !== last.stuck) return true;
  if (r.pending >= 2 * last.pending || 2 * r.pending <= last.pending) return true;
  return r.at - last.at >= REPORT_EVERY_SECONDS;
}

export const sentReport = (r: BacklogReport): SentReport | null =>
  r.pending === 0 ? null : { at: r.at, pending: r.pending, stuck: r.maxAttempts >= STUCK_ATTEMPTS };

/** Whether any pending item has failed before (its object may have reported it). */
export function hasFailedItems(sql: SqlStorage): boolean {
  return sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE attempts > 0").one().n > 0;
}

/** Before a delivery run, in one statement: whether an erasure is under way (`upkeep.erasing_since`) and hasFailedItems. */
export function runState(sql: SqlStorage): { erasing: boolean; hadFailed: boolean } {
  const row = sql
    .exec<{ e: number | null; f: number }>("SELECT (SELECT erasing_since FROM upkeep WHERE id = 1) AS e, EXISTS (SELECT 1 FROM outbox WHERE attempts > 0) AS f")
    .one();
  return { erasing: row.e !== null, hadFailed: row.f === 1 };
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

/** Key-value marker: this object's outbox backlog is listed by the stats object. */
const BACKLOG_REPORTED = "health.backlog_reported";

/**
 * One object's side of it: what it last sent (in memory) and whether a report is listed (in its
 * storage, so a wipe by a later instance still withdraws it).
 */
export class BacklogReporter {
  private last: SentReport | null = null;

  constructor(
    private readonly env: Env,
    private readonly storage: DurableObjectStorage,
    private readonly object: string,
  ) {}

  /** Call before a delivery run: whether the run's outcome may need reporting even if nothing fails. */
  hadFailures(): boolean {
    return hasFailedItems(this.storage.sql);
  }

  /** After a delivery run: reports when an item failed, or when items that had failed went through. */
  async afterRun(failed: number, hadFailed: boolean): Promise<void> {
    if (failed === 0 && !hadFailed) return;
    const report = backlogOf(this.storage.sql, this.object, Math.floor(Date.now() / 1000));
    if (!worthReporting(this.last, report)) return;
    if (!(await sendBacklog(this.env, report))) return;
    this.last = sentReport(report);
    if (report.pending > 0) await this.storage.put(BACKLOG_REPORTED, true);
    else await this.storage.delete(BACKLOG_REPORTED);
  }

  /** Before the object's storage is wiped: whether a report is listed (read it before deleteAll). */
  async listed(): Promise<boolean> {
    return (await this.storage.get(BACKLOG_REPORTED)) === true;
  }

  /** After the wipe: withdraws a listed report. */
  async withdraw(): Promise<void> {
    this.last = null;
    await sendBacklog(this.env, clearedBacklog(this.object, Math.floor(Date.now() / 1000)));
  }
}
