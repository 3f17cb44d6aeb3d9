/**
 * D1's erasure ledger (migrations/0011_erasure_ledger.sql, docs/storage.md "The erasure ledger"): one
 * `erasures` row per erasure, one `erased_conversations` row per conversation an erasure removed, and
 * the ledger's own key. Nothing here holds an id in clear: every id is a keyed hash
 * (src/records/erasure-hash.ts).
 *
 * The key: ERASURE_LEDGER_KEY's values (a secret, comma-separated, the first hashes) when set, and
 * always, last, a random key postcall generated once and keeps in `erasure_keys`. It is derived from
 * nothing else, so rotating the webhook secret or an API key changes nothing here. A lookup hashes
 * with every key, so an entry written under an older key still matches.
 */
import type { EraseCounts } from "./erase";

const generated = new WeakMap<D1Database, Promise<string>>();

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The key postcall keeps in D1, made on first use (read once per isolate). */
function storedKey(db: D1Database): Promise<string> {
  let k = generated.get(db);
  if (!k) {
    k = (async () => {
      const [, read] = await db.batch<{ key: string }>([
        db.prepare("INSERT OR IGNORE INTO erasure_keys (id, key, created_at) VALUES (1, ?, ?)").bind(randomKey(), Math.floor(Date.now() / 1000)),
        db.prepare("SELECT key FROM erasure_keys WHERE id = 1"),
      ]);
      const key = read!.results[0]?.key;
      if (!key) throw new Error("the erasure ledger's key could not be read");
      return key;
    })();
    k.catch(() => generated.delete(db));
    generated.set(db, k);
  }
  return k;
}

/** Every key of the ledger, the one that hashes new entries first. */
export async function ledgerKeys(db: D1Database, configured: readonly string[]): Promise<string[]> {
  return [...configured, await storedKey(db)];
}

export interface ErasureRow {
  erasure_id: string;
  subject_hash: string;
  began_at: number;
  finished_at: number | null;
  memory_rows: number;
  conversations: number;
  turns: number;
  audio: number;
  call_failures: number;
  r2_objects: number;
  phone_links: number;
  scopes: number;
  forwarded: number;
  at_source: number;
  updated_at: number;
}

/** An erasure's running totals, as its object keeps them (src/objects/user-memory/erasure-record.ts). */
export interface ErasureTotals extends EraseCounts {
  memoryRows: number;
  phoneLinks: number;
  scopes: number;
  forwarded: number;
}

const COLUMNS =
  "erasure_id, subject_hash, began_at, finished_at, memory_rows, conversations, turns, audio, call_failures, r2_objects, phone_links, scopes, forwarded, at_source, updated_at";

/** Writes an erasure's row with its totals so far (absolute, so a replay changes nothing). */
export async function saveErasure(
  db: D1Database,
  e: { erasureId: string; subjectHash: string; beganAt: number; finishedAt: number | null; atSource: boolean; totals: ErasureTotals },
): Promise<void> {
  const t = e.totals;
  await db
    .prepare(
      `INSERT INTO erasures (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (erasure_id) DO UPDATE SET finished_at = excluded.finished_at, memory_rows = excluded.memory_rows,
         conversations = excluded.conversations, turns = excluded.turns, audio = excluded.audio, call_failures = excluded.call_failures,
         r2_objects = excluded.r2_objects, phone_links = excluded.phone_links, scopes = excluded.scopes, forwarded = excluded.forwarded,
         at_source = max(at_source, excluded.at_source), updated_at = excluded.updated_at`,
    )
    .bind(
      e.erasureId, e.subjectHash, e.beganAt, e.finishedAt, t.memoryRows, t.conversations, t.turns, t.audio, t.call_failures, t.r2_objects,
      t.phoneLinks, t.scopes, t.forwarded, e.atSource ? 1 : 0, Math.floor(Date.now() / 1000),
    )
    .run();
}

// D1 allows 100 bound parameters per statement.
const ROWS_PER_STATEMENT = 20;

/**
 * Records conversations as erased (before anything of them is deleted, so a retry never misses one).
 * `hashes` are the conversations' hashes under the ledger's first key. With `atSource` each waits for
 * its deletion at ElevenLabs (`pending`).
 */
export async function saveErasedConversations(db: D1Database, erasureId: string, hashes: string[], erasedAt: number, atSource: boolean): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < hashes.length; i += ROWS_PER_STATEMENT) {
    const part = hashes.slice(i, i + ROWS_PER_STATEMENT);
    statements.push(
      db
        .prepare(
          `INSERT INTO erased_conversations (conversation_hash, erasure_id, erased_at, source_state) VALUES ${part.map(() => "(?, ?, ?, ?)").join(", ")}
           ON CONFLICT (conversation_hash) DO UPDATE SET source_state = coalesce(source_state, excluded.source_state)`,
        )
        .bind(...part.flatMap((h) => [h, erasureId, erasedAt, atSource ? "pending" : null])),
    );
  }
  if (statements.length > 0) await db.batch(statements);
}

const list = (n: number) => Array.from({ length: n }, () => "?").join(", ");

/** Whether the ledger holds the conversation (any of its hashes, one per key). */
export async function conversationErased(db: D1Database, hashes: string[]): Promise<boolean> {
  const row = await db.prepare(`SELECT 1 AS found FROM erased_conversations WHERE conversation_hash IN (${list(hashes.length)}) LIMIT 1`).bind(...hashes).first();
  return row !== null;
}

export type SourceOutcome = { state: "done" | "failed" | "pending"; status: number };

/**
 * How one attempt to delete the conversation at ElevenLabs went. Only a conversation still `pending`
 * changes, so a replayed answer (the outbox delivered an item twice) changes nothing.
 */
export async function saveSourceOutcome(db: D1Database, hashes: string[], o: SourceOutcome, now: number): Promise<void> {
  await db
    .prepare(
      `UPDATE erased_conversations SET source_state = ?, source_status = ?, source_attempts = source_attempts + 1,
         source_done_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END
       WHERE conversation_hash IN (${list(hashes.length)}) AND source_state = 'pending'`,
    )
    .bind(o.state, o.status, o.state, now, ...hashes)
    .run();
}

export interface SourceCounts {
  erasure_id: string;
  erased: number;
  done: number;
  failed: number;
  pending: number;
  /** The last HTTP status among conversations not deleted yet (0: unreachable), null when none failed. */
  last_status: number | null;
}

/** Per erasure: conversations it erased, and where their deletion at ElevenLabs stands. */
export async function sourceCounts(db: D1Database, erasureIds: string[]): Promise<Map<string, SourceCounts>> {
  const out = new Map<string, SourceCounts>();
  if (erasureIds.length === 0) return out;
  const { results } = await db
    .prepare(
      `SELECT erasure_id, count(*) AS erased, coalesce(sum(source_state = 'done'), 0) AS done, coalesce(sum(source_state = 'failed'), 0) AS failed,
         coalesce(sum(source_state = 'pending'), 0) AS pending,
         max(CASE WHEN source_state IN ('pending', 'failed') THEN source_status END) AS last_status
       FROM erased_conversations WHERE erasure_id IN (${list(erasureIds.length)}) GROUP BY erasure_id`,
    )
    .bind(...erasureIds)
    .all<SourceCounts>();
  for (const r of results) out.set(r.erasure_id, r);
  return out;
}

/** Erasures newest first, after a keyset position (began_at, erasure_id); only those of `subjects` when given. */
export async function listErasures(db: D1Database, o: { limit: number; after: [number, string] | null; subjects: string[] | null }): Promise<ErasureRow[]> {
  const where: string[] = [];
  const binds: unknown[] = [];
  if (o.subjects !== null) {
    where.push(`subject_hash IN (${list(o.subjects.length)})`);
    binds.push(...o.subjects);
  }
  if (o.after !== null) {
    where.push("(began_at < ? OR (began_at = ? AND erasure_id < ?))");
    binds.push(o.after[0], o.after[0], o.after[1]);
  }
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM erasures ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY began_at DESC, erasure_id DESC LIMIT ?`)
    .bind(...binds, o.limit)
    .all<ErasureRow>();
  return results;
}

export function readErasure(db: D1Database, erasureId: string): Promise<ErasureRow | null> {
  return db.prepare(`SELECT ${COLUMNS} FROM erasures WHERE erasure_id = ?`).bind(erasureId).first<ErasureRow>();
}
