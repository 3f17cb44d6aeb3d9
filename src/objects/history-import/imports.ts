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
import { ApiError } from "../../lib/errors";
import type { Env } from "../../lib/env";
import { iso } from "../../lib/time";
import { parseEnvelope } from "../../records/payload";
import { ElevenLabsApi, ElevenLabsApiError } from "../../elevenlabs/api";
import { conversationStored, saveImportRow, type ImportRow } from "../../storage/imports";
import { transcriptionArrived } from "../../memory/arrival";
import { ledgerObject } from "../../memory/objects";
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
const FAILURES_KEPT = 200;

const FINISHED = new Set(["done", "failed"]);

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

type JobRow = {
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

const nowSeconds = () => Math.floor(Date.now() / 1000);

function hasJob(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'import_job'").toArray().length > 0;
}

function job(sql: SqlStorage): JobRow | null {
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
async function publish(env: Env, sql: SqlStorage): Promise<void> {
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

/** Whether asking again later may succeed: outages, rate limits, and our own storage failing. */
function transient(err: unknown): boolean {
  if (err instanceof ElevenLabsApiError) return err.status === 429 || err.status >= 500;
  return !(err instanceof ApiError && err.status < 500);
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 500);

function retryDelayMs(attempts: number): number {
  return Math.min(10 * 60 * 1000, 5000 * 2 ** Math.max(0, attempts - 1));
}

type Outcome = "imported" | "skipped" | "unfinished";

async function importOne(env: Env, api: ElevenLabsApi, conversationId: string, includeAudio: boolean): Promise<Outcome> {
  if (await conversationStored(env.DB, conversationId)) {
    // Already here (an earlier import, or its webhook): only its audio may still be missing.
    if (includeAudio) await ledgerObject(env, conversationId).expectAudio({ agentId: null, dueAtMs: Date.now() });
    return "skipped";
  }
  const fetched = await api.getConversation(conversationId);
  const status = fetched.data["status"];
  if (typeof status === "string" && !FINISHED.has(status)) return "unfinished";
  const metadata = fetched.data["metadata"];
  const m = metadata !== null && typeof metadata === "object" ? (metadata as Record<string, unknown>) : {};
  const start = typeof m["start_time_unix_secs"] === "number" ? m["start_time_unix_secs"] : null;
  const duration = typeof m["call_duration_secs"] === "number" ? m["call_duration_secs"] : 0;
  const eventTimestamp = start === null ? nowSeconds() : Math.floor(start + duration);
  // The API's body goes in byte for byte as `data`: R2 keeps exactly what ElevenLabs answered.
  const raw = wrap(eventTimestamp, fetched.raw);
  const arrived = await transcriptionArrived(env, parseEnvelope(raw), raw, { origin: "import", receivedAt: nowSeconds(), audioNow: includeAudio });
  return arrived.duplicate ? "skipped" : "imported";
}

const encoder = new TextEncoder();

function wrap(eventTimestamp: number, data: Uint8Array): Uint8Array {
  const head = encoder.encode(`{"type":"post_call_transcription","event_timestamp":${eventTimestamp},"data":`);
  const out = new Uint8Array(head.byteLength + data.byteLength + 1);
  out.set(head, 0);
  out.set(data, head.byteLength);
  out[out.byteLength - 1] = 0x7d; // "}"
  return out;
}

/**
 * One step: up to IMPORT_BATCH conversations, fetching the next page when the queue is empty.
 * Returns when to run again (ms), or null when the import has finished.
 */
export async function importStep(storage: DurableObjectStorage, env: Env): Promise<number | null> {
  const sql = storage.sql;
  const j = job(sql);
  if (j === null || j.status !== "running") return null;
  const api = ElevenLabsApi.of(env);
  if (api === null) {
    finish(storage, "failed", "ELEVENLABS_API_KEY is not set: nothing can be fetched.");
    await publish(env, sql);
    return null;
  }
  let next: number | null = Date.now();
  for (let done = 0; done < IMPORT_BATCH; ) {
    const heads = sql
      .exec<{ position: number; conversation_id: string; attempts: number }>("SELECT position, conversation_id, attempts FROM import_queue ORDER BY position LIMIT ?", IMPORT_PARALLEL)
      .toArray();
    if (heads.length === 0) {
      const current = job(sql)!;
      if (current.pages > 0 && (current.more === 0 || current.cursor === null)) {
        finish(storage, "done", null);
        next = null;
        break;
      }
      const waited = await fetchPage(storage, api, current);
      if (waited !== undefined) {
        next = waited;
        break;
      }
      continue;
    }
    // Conversations of different users are recorded by different objects: a few at once.
    const results = await Promise.allSettled(heads.map((h) => importOne(env, api, h.conversation_id, j.include_audio === 1)));
    let retryAt: number | null = null;
    storage.transactionSync(() => {
      heads.forEach((head, i) => {
        const r = results[i]!;
        let outcome: Outcome | { failed: string };
        if (r.status === "fulfilled") outcome = r.value;
        else if (transient(r.reason) && head.attempts + 1 < IMPORT_MAX_ATTEMPTS) {
          sql.exec("UPDATE import_queue SET attempts = attempts + 1 WHERE position = ?", head.position);
          touch(sql, `conversation ${head.conversation_id}: ${messageOf(r.reason)}`);
          const at = Date.now() + retryDelayMs(head.attempts + 1);
          retryAt = retryAt === null ? at : Math.max(retryAt, at);
          return;
        } else outcome = { failed: messageOf(r.reason) };
        sql.exec("DELETE FROM import_queue WHERE position = ?", head.position);
        if (typeof outcome === "string") {
          sql.exec(`UPDATE import_job SET ${outcome} = ${outcome} + 1, updated_at = ? WHERE id = 1`, nowSeconds());
        } else {
          sql.exec("UPDATE import_job SET failed = failed + 1, updated_at = ? WHERE id = 1", nowSeconds());
          sql.exec("INSERT OR REPLACE INTO import_failures (conversation_id, reason, at) VALUES (?, ?, ?)", head.conversation_id, outcome.failed, nowSeconds());
        }
      });
    });
    done += heads.length;
    if (retryAt !== null) {
      next = retryAt;
      break;
    }
  }
  await publish(env, sql);
  return next;
}

/** Fetches and queues the next page. Returns a time to wait until (a failed page), or undefined to go on. */
async function fetchPage(storage: DurableObjectStorage, api: ElevenLabsApi, j: JobRow): Promise<number | null | undefined> {
  const sql = storage.sql;
  let page;
  try {
    page = await api.listConversations({ agentId: j.agent_id, cursor: j.cursor, since: j.since, pageSize: IMPORT_PAGE_SIZE });
  } catch (err) {
    if (transient(err) && j.attempts + 1 < IMPORT_MAX_ATTEMPTS) {
      sql.exec("UPDATE import_job SET attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = 1", `list page ${j.pages + 1}: ${messageOf(err)}`, nowSeconds());
      return Date.now() + retryDelayMs(j.attempts + 1);
    }
    finish(storage, "failed", `list page ${j.pages + 1}: ${messageOf(err)}`);
    return null;
  }
  storage.transactionSync(() => {
    for (const c of page.conversations) {
      if (c.status !== null && !FINISHED.has(c.status)) {
        sql.exec("UPDATE import_job SET unfinished = unfinished + 1 WHERE id = 1");
        continue;
      }
      sql.exec("INSERT INTO import_queue (conversation_id) VALUES (?)", c.conversation_id);
    }
    sql.exec(
      "UPDATE import_job SET cursor = ?, more = ?, pages = pages + 1, seen = seen + ?, attempts = 0, last_error = NULL, updated_at = ? WHERE id = 1",
      page.nextCursor,
      page.hasMore && page.nextCursor !== null ? 1 : 0,
      page.conversations.length,
      nowSeconds(),
    );
  });
  return undefined;
}

function touch(sql: SqlStorage, lastError: string): void {
  sql.exec("UPDATE import_job SET last_error = ?, updated_at = ? WHERE id = 1", lastError, nowSeconds());
}

function finish(storage: DurableObjectStorage, status: ImportState, lastError: string | null): void {
  const now = nowSeconds();
  storage.sql.exec("UPDATE import_job SET status = ?, last_error = coalesce(?, last_error), updated_at = ?, finished_at = ? WHERE id = 1", status, lastError, now, now);
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
