/**
 * The health counters' one home: the `stats:global` object (HealthStats, binding HEALTH_STATS,
 * health-stats.ts). It holds what no single user's object can answer:
 *
 * - `counts`: webhook outcomes in hourly buckets, `(hour, metric, key) -> n`, added to by the
 *   per-isolate tallies (src/memory/health-counts.ts), which flush at most every few seconds, so a
 *   flood of refused requests costs a bounded number of writes here, never one per request;
 * - `last_event`: the last accepted event of each type, and when;
 * - `backlog`: the outboxes that are failing to deliver, as their objects report them (only when a
 *   delivery fails or recovers: a healthy outbox never calls here).
 *
 * Bounded: buckets older than RETAIN_HOURS are deleted on every flush; at most MAX_KEYS keys per
 * (hour, metric) (the rest add to `other`), MAX_TYPES event types, MAX_BACKLOG reporting objects.
 */
import { hourOf } from "../../lib/time";
import type { BacklogReport, CountBatch, StatsView } from "../../memory/rpc";



/** 31 days of hourly buckets: the 30-day window plus the partial hour at each end. */
export const RETAIN_HOURS = 31 * 24;
export const MAX_KEYS = 50;
export const MAX_TYPES = 50;
export const MAX_BACKLOG = 10_000;
/** A failing outbox retries at least every 10 minutes and reports each failure: a report older than this is stale. */
export const STALE_REPORT_SECONDS = 30 * 60;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS counts (
  hour INTEGER NOT NULL,
  metric TEXT NOT NULL,
  key TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (hour, metric, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS last_event (
  type TEXT PRIMARY KEY,
  at INTEGER NOT NULL,
  conversation_id TEXT
);
CREATE TABLE IF NOT EXISTS backlog (
  object TEXT PRIMARY KEY,
  pending INTEGER NOT NULL,
  oldest_created_at INTEGER,
  max_attempts INTEGER NOT NULL,
  last_error TEXT,
  reported_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  flushes INTEGER NOT NULL,
  rows_written INTEGER NOT NULL,
  backlog_dropped INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, flushes, rows_written, backlog_dropped) VALUES (1, 0, 0, 0);
`;


function ensure(sql: SqlStorage): void {
  sql.exec(SCHEMA);
}

/** Adds one flush of an isolate's tallies. Returns the rows it wrote (the test of "bounded writes" reads them). */
export function addCounts(storage: DurableObjectStorage, batch: CountBatch, nowSeconds: number): number {
  const sql = storage.sql;
  ensure(sql);
  return storage.transactionSync(() => {
    let written = 0;
    for (const [hour, metric, rawKey, n] of batch.counts) {
      if (!(n > 0) || hour < hourOf(nowSeconds) - RETAIN_HOURS * 3600) continue;
      let key = rawKey.slice(0, 64);
      const known = sql.exec("SELECT 1 FROM counts WHERE hour = ? AND metric = ? AND key = ?", hour, metric, key).toArray().length > 0;
      if (!known) {
        const keys = sql.exec<{ k: number }>("SELECT count(*) AS k FROM counts WHERE hour = ? AND metric = ?", hour, metric).one().k;
        if (keys >= MAX_KEYS) key = "other";
      }
      written += sql.exec(
        "INSERT INTO counts (hour, metric, key, n) VALUES (?, ?, ?, ?) ON CONFLICT (hour, metric, key) DO UPDATE SET n = n + excluded.n",
        hour,
        metric,
        key,
        n,
      ).rowsWritten;
    }
    for (const e of batch.last) {
      const type = e.type.slice(0, 64);
      const known = sql.exec("SELECT 1 FROM last_event WHERE type = ?", type).toArray().length > 0;
      if (!known && sql.exec<{ k: number }>("SELECT count(*) AS k FROM last_event").one().k >= MAX_TYPES) continue;
      written += sql.exec(
        `INSERT INTO last_event (type, at, conversation_id) VALUES (?, ?, ?)
         ON CONFLICT (type) DO UPDATE SET at = excluded.at, conversation_id = excluded.conversation_id WHERE excluded.at >= last_event.at`,
        type,
        e.at,
        e.conversationId,
      ).rowsWritten;
    }
    written += sql.exec("DELETE FROM counts WHERE hour < ?", hourOf(nowSeconds) - RETAIN_HOURS * 3600).rowsWritten;
    written += 1;
    sql.exec("UPDATE meta SET flushes = flushes + 1, rows_written = rows_written + ? WHERE id = 1", written);
    return written;
  });
}

/** An object's outbox after a failed or recovering delivery run: kept while it has pending items, removed once empty. */
export function reportBacklog(storage: DurableObjectStorage, r: BacklogReport): void {
  const sql = storage.sql;
  ensure(sql);
  storage.transactionSync(() => {
    if (r.pending === 0) {
      sql.exec("DELETE FROM backlog WHERE object = ?", r.object);
      return;
    }
    const known = sql.exec("SELECT 1 FROM backlog WHERE object = ?", r.object).toArray().length > 0;
    if (!known && sql.exec<{ k: number }>("SELECT count(*) AS k FROM backlog").one().k >= MAX_BACKLOG) {
      sql.exec("UPDATE meta SET backlog_dropped = backlog_dropped + 1 WHERE id = 1");
      return;
    }
    sql.exec(
      `INSERT INTO backlog (object, pending, oldest_created_at, max_attempts, last_error, reported_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (object) DO UPDATE SET pending = excluded.pending, oldest_created_at = excluded.oldest_created_at,
         max_attempts = excluded.max_attempts, last_error = excluded.last_error, reported_at = excluded.reported_at`,
      r.object.slice(0, 300),
      r.pending,
      r.oldestCreatedAt,
      r.maxAttempts,
      r.lastError?.slice(0, 500) ?? null,
      r.at,
    );
  });
}

/** Everything the health page needs from this object, aggregated here (a few hundred rows at most). */
export function readStats(sql: SqlStorage, nowSeconds: number): StatsView {
  ensure(sql);
  const current = hourOf(nowSeconds);
  const window = (hours: number) =>
    sql
      .exec<{ metric: string; key: string; n: number }>(
        "SELECT metric, key, sum(n) AS n FROM counts WHERE hour > ? GROUP BY metric, key ORDER BY metric, key",
        current - hours * 3600,
      )
      .toArray();
  const backlogAgg = sql
    .exec<{ objects: number; pending: number | null; oldest: number | null; max_attempts: number | null; stale: number }>(
      `SELECT count(*) AS objects, sum(pending) AS pending, min(oldest_created_at) AS oldest, max(max_attempts) AS max_attempts,
         count(CASE WHEN reported_at < ? THEN 1 END) AS stale FROM backlog`,
      nowSeconds - STALE_REPORT_SECONDS,
    )
    .one();
  const meta = sql.exec<{ flushes: number; rows_written: number; backlog_dropped: number }>("SELECT flushes, rows_written, backlog_dropped FROM meta").one();
  return {
    window24h: window(24),
    window30d: window(30 * 24),
    hourly: sql
      .exec<{ hour: number; metric: string; key: string; n: number }>(
        "SELECT hour, metric, key, n FROM counts WHERE hour > ? AND metric IN ('refused', 'initiation_refused') ORDER BY hour",
        current - 24 * 3600,
      )
      .toArray(),
    last: sql.exec<{ type: string; at: number; conversation_id: string | null }>("SELECT type, at, conversation_id FROM last_event ORDER BY type").toArray(),
    backlog: {
      objects: backlogAgg.objects,
      pending: backlogAgg.pending ?? 0,
      oldestCreatedAt: backlogAgg.oldest,
      maxAttempts: backlogAgg.max_attempts ?? 0,
      stale: backlogAgg.stale,
      dropped: meta.backlog_dropped,
      worst: sql
        .exec<{ object: string; pending: number; oldest_created_at: number | null; max_attempts: number; last_error: string | null; reported_at: number }>(
          "SELECT object, pending, oldest_created_at, max_attempts, last_error, reported_at FROM backlog ORDER BY oldest_created_at LIMIT 10",
        )
        .toArray(),
    },
    writes: { flushes: meta.flushes, rowsWritten: meta.rows_written },
  };
}
