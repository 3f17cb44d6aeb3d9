/**
 * One step of a history import, run by its object's alarm: up to IMPORT_BATCH conversations from
 * the queue, each through the one arrival path a webhook takes (src/memory/arrival.ts), fetching
 * the next page when the queue is empty. The job's tables and status are in imports.ts.
 */
import { ApiError } from "../../lib/errors";
import type { Env } from "../../lib/env";
import { parseEnvelope } from "../../records/payload";
import { ElevenLabsApi, ElevenLabsApiError } from "../../elevenlabs/api";
import { conversationStored } from "../../storage/imports";
import { transcriptionArrived, wasErased } from "../../memory/arrival";
import { ledgerObject } from "../../memory/objects";
import type { ImportState } from "../../memory/rpc";
import { FINISHED, IMPORT_BATCH, IMPORT_MAX_ATTEMPTS, IMPORT_PAGE_SIZE, IMPORT_PARALLEL, job, nowSeconds, publish, type JobRow } from "./imports";

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
  // Erased once, never fetched again (nor its audio): the erasure ledger (src/memory/arrival.ts).
  if (await wasErased(env, conversationId)) return "skipped";
  if (await conversationStored(env, conversationId)) {
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
  return arrived.duplicate || arrived.dropped ? "skipped" : "imported";
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

