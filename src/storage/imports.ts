/**
 * D1 `imports`: the console's list of history imports. Each import's Durable Object refreshes its row
 * after every step (an upsert of the whole summary, so a replay changes nothing); the object remains
 * the authority for GET /v1/imports/:id. Also: whether D1 already holds a conversation, so an import
 * does not fetch what it already has.
 */
import { shardEntry } from "./placement";
import type { ShardEnv } from "./shards";

export interface ImportRow {
  import_id: string;
  agent_id: string;
  since: number | null;
  include_audio: number;
  status: string;
  pages: number;
  seen: number;
  imported: number;
  skipped: number;
  failed: number;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

const COLUMNS = "import_id, agent_id, since, include_audio, status, pages, seen, imported, skipped, failed, created_at, updated_at, finished_at";

export async function saveImportRow(db: D1Database, r: ImportRow): Promise<void> {
  await db
    .prepare(
      `INSERT INTO imports (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (import_id) DO UPDATE SET status = excluded.status, pages = excluded.pages, seen = excluded.seen,
         imported = excluded.imported, skipped = excluded.skipped, failed = excluded.failed,
         updated_at = excluded.updated_at, finished_at = excluded.finished_at`,
    )
    .bind(r.import_id, r.agent_id, r.since, r.include_audio, r.status, r.pages, r.seen, r.imported, r.skipped, r.failed, r.created_at, r.updated_at, r.finished_at)
    .run();
}

/** The newest imports first. */
export async function listImportRows(db: D1Database, limit: number): Promise<ImportRow[]> {
  const { results } = await db.prepare(`SELECT ${COLUMNS} FROM imports ORDER BY created_at DESC, import_id DESC LIMIT ?`).bind(limit).all<ImportRow>();
  return results;
}

/** Whether D1 holds the conversation (its entry in its home shard: src/storage/placement.ts). */
export async function conversationStored(env: ShardEnv, conversationId: string): Promise<boolean> {
  return (await shardEntry(env, conversationId)) !== null;
}
