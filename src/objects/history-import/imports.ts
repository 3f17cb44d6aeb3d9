/**
 * A history import (POST /v1/imports), in its own `import:<id>` object: day-one memory for a new
 * deployment from the conversations ElevenLabs already holds for an agent.
 *
 * Driven by the object's alarm, in steps of at most IMPORT_BATCH conversations (each step is one
 * invocation, far under the platform's subrequest limit). Durable after every conversation: a page's
 * conversation ids are queued in this object together with the cursor of the next page, and each
 * queued id leaves the queue in the same transaction that counts it. A restart, deploy or eviction
 * midway resumes at the first id still queued; one that was recorded but not yet counted is then
 * recorded again, which the owner's dedupe turns into "skipped": a call is never counted twice.
 *
 * Each conversation goes through `transcriptionArrived` (src/memory/arrival.ts), the webhook's own
 * path, as an event `{"type":"post_call_transcription","data":<the API's body, byte for byte>}`.
 */
import type { Env } from "../../lib/env";
import { iso } from "../../lib/time";
import { saveImportRow, type ImportRow } from "../../storage/imports";
import type { ImportSpec, ImportState, ImportStatus, LegacyImport } from "../../memory/rpc";

/** Conversations imported per alarm invocation. */
export const IMPORT_BATCH = 25;
/** Conversations imported at once within a step. */
export const IMPORT_PARALLEL = 5;
/** Conversations asked for per list page (the API's maximum is 100). */
export const IMPORT_PAGE_SIZE = 100;
/** Failed attempts of one page or conversation (each after the client's own retries) before giving up on it. */
export const IMPORT_MAX_ATTEMPTS = 6;
/** Failures kept with their reasons (the counter keeps counting past it). */
export const FAILURES_KEPT = 200;

export const FINISHED = new Set(["done", "failed"]);

const SCHEMA = `
CREATE TABLE IF NOT EXISTS import_job (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  import_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  since INTEGER,
  include_audio INTEGER NOT NULL,
  status TEXT NOT NULL,
  cursor TEXT,
  more INTEGER NOT NULL DEFAULT 1,
  pages INTEGER NOT NULL DEFAULT 0,
  seen INTEGER NOT NULL DEFAULT 0,
  imported INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  unfinished INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS import_queue (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  conversation_id TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS import_failures (
  conversation_id TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
);
`;

export type JobRow = {
  import_id: string;
  agent_id: string;
  since: number | null;
  include_audio: number;
  status: ImportState;
  cursor: string | null;
  more: number;
  pages: number;
  seen: number;
  imported: number;
  skipped: number;
  unfinished: number;
  failed: number;
  attempts: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
};

export const nowSeconds = () => Math.floor(Date.now() / 1000);

function hasJob(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'import_job'").toArray().length > 0;
}

export function job(sql: SqlStorage): JobRow | null {
  return hasJob(sql) ? (sql.exec<JobRow>("SELECT * FROM import_job WHERE id = 1").toArray()[0] ?? null) : null;
}

/** Starts the import (a second call with the same id returns the import as it is). */
export async function startImport(storage: DurableObjectStorage, env: Env, spec: ImportSpec): Promise<ImportStatus> {
  const sql = storage.sql;
  if (job(sql) === null) {
    const now = nowSeconds();
    storage.transactionSync(() => {
      sql.exec(SCHEMA);
      sql.exec(
        "INSERT INTO import_job (id, import_id, agent_id, since, include_audio, status, created_at, updated_at) VALUES (1, ?, ?, ?, ?, 'running', ?, ?)",
        spec.importId,
        spec.agentId,
        spec.since,
        spec.includeAudio ? 1 : 0,
        now,
        now,
      );
    });
    await storage.setAlarm(Date.now());
    await publish(env, sql);
  }
  return statusOf(sql)!;
}

/** An alarm this far past due was lost with its instance (an abort, a deploy): arm it again. */
const OVERDUE_MS = 10_000;

/**
 * The import's progress, or null. A running import whose alarm is missing or long overdue (the
 * instance running it was aborted, and the runtime's own retry has not come) gets it back, so
 * asking how an import is doing is also enough to keep it going.
 */
export async function importStatus(storage: DurableObjectStorage): Promise<ImportStatus | null> {
  const status = statusOf(storage.sql);
  if (status?.status === "running") {
    const alarm = await storage.getAlarm();
    if (alarm === null || alarm < Date.now() - OVERDUE_MS) await storage.setAlarm(Date.now());
  }
  return status;
}

function statusOf(sql: SqlStorage): ImportStatus | null {
  const j = job(sql);
  if (j === null) return null;
  const failures = sql
    .exec<{ conversation_id: string; reason: string }>("SELECT conversation_id, reason FROM import_failures ORDER BY at, conversation_id LIMIT ?", FAILURES_KEPT)
    .toArray();
  return {
    import_id: j.import_id,
    agent_id: j.agent_id,
    since: iso(j.since),
    include_audio: j.include_audio === 1,
    status: j.status,
    identity: "operator_trusted",
    pages: j.pages,
    seen: j.seen,
    imported: j.imported,
    skipped: j.skipped,
    unfinished: j.unfinished,
    failed: j.failed,
    failures,
    last_error: j.last_error,
    created_at: iso(j.created_at)!,
    updated_at: iso(j.updated_at)!,
    finished_at: iso(j.finished_at),
  };
}

/** The console's copy in D1. Best effort: the object stays the authority, and the next step refreshes it. */
export async function publish(env: Env, sql: SqlStorage): Promise<void> {
  const j = job(sql);
  if (j === null) return;
  const row: ImportRow = {
    import_id: j.import_id,
    agent_id: j.agent_id,
    since: j.since,
    include_audio: j.include_audio,
    status: j.status,
    pages: j.pages,
    seen: j.seen,
    imported: j.imported,
    skipped: j.skipped + j.unfinished,
    failed: j.failed,
    created_at: j.created_at,
    updated_at: j.updated_at,
    finished_at: j.finished_at,
  };
  try {
    await saveImportRow(env.DB, row);
  } catch (err) {
    console.warn(`import ${j.import_id}: could not refresh its D1 row: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Writes an exported import into this object's tables, as it was (cursor, counters, queue, failures). */
export function adoptJob(storage: DurableObjectStorage, state: LegacyImport): void {
  const sql = storage.sql;
  storage.transactionSync(() => {
    sql.exec(SCHEMA);
    const cols = Object.keys(state.job).filter((c) => /^[a-z_]+$/.test(c));
    sql.exec(`INSERT OR IGNORE INTO import_job (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, ...cols.map((c) => state.job[c] ?? null));
    for (const q of state.queue) sql.exec("INSERT OR IGNORE INTO import_queue (position, conversation_id, attempts) VALUES (?, ?, ?)", q.position, q.conversation_id, q.attempts);
    for (const f of state.failures) sql.exec("INSERT OR IGNORE INTO import_failures (conversation_id, reason, at) VALUES (?, ?, ?)", f.conversation_id, f.reason, f.at);
  });
}

/** Whether this object holds an import (created, or taken over). */
export const holdsJob = (sql: SqlStorage): boolean => job(sql) !== null;
