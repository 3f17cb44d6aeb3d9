/**
 * Before Core v3 every kind of object was a UserMemory. Objects named `conversation:<id>` or
 * `import:<id>` that were written then still live in this class; what they hold is handed to the
 * class that now owns their kind, on its first touch (conversation-ledger/legacy.ts,
 * history-import/history-import.ts), and their own alarm starts that take-over if nothing else
 * does. `stats:global` held only 31 days of counters: it is left as it is and never read again.
 * Nothing here writes: the old object is wiped by `UserMemory.forgetLegacy` once its new owner has committed.
 */
import type { LegacyConversation, LegacyImport } from "../../memory/rpc";
import type { Tombstones } from "../shared/tombstone";
import { retentionAnchor } from "../shared/tables";

const hasTable = (sql: SqlStorage, name: string) => sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;

/** Everything an old conversation object holds, or null when it holds nothing at all. */
export function exportConversation(sql: SqlStorage, tombstones: Tombstones): LegacyConversation | null {
  const t = tombstones.get();
  const hasMemory = hasTable(sql, "seen");
  if (!hasMemory && t === null) return null;
  const all = <T>(query: string) => (hasMemory ? sql.exec<T & Record<string, SqlStorageValue>>(query).toArray() : []) as T[];
  const seen = all<LegacyConversation["seen"][number]>("SELECT kind, conversation_id, received_at FROM seen");
  const audio = hasTable(sql, "audio") ? all<LegacyConversation["audio"][number]>("SELECT conversation_id, agent_id, r2_key, bytes, sha256, received_at FROM audio") : [];
  const outbox = all<LegacyConversation["outbox"][number]>("SELECT seq, kind, conversation_id, body, attempts, next_attempt_at, last_error, created_at FROM outbox ORDER BY seq");
  const blobs = all<LegacyConversation["blobs"][number]>("SELECT seq, part, data FROM outbox_blobs ORDER BY seq, part");
  return {
    rows: seen.length + audio.length + outbox.length,
    seen,
    audio,
    outbox,
    blobs,
    retentionAnchor: hasMemory && hasTable(sql, "upkeep") ? retentionAnchor(sql) : null,
    tombstone: t === null ? null : { erasedAt: t.erasedAt, unlinkedAt: t.unlinkedAt, expiresAt: t.expiresAt },
  };
}

/**
 * Which old object this is, read from its tables, for an alarm that runs without the object's name:
 * an import holds `import_job`; a conversation's object holds no user but a delivery record or an
 * audio link naming its conversation. Null when neither (a memory, or only a tombstone).
 */
export function legacyIdentity(sql: SqlStorage): { kind: "conversation" | "import"; id: string } | null {
  if (hasTable(sql, "import_job")) {
    const row = sql.exec<{ import_id: string }>("SELECT import_id FROM import_job WHERE id = 1").toArray()[0];
    return row ? { kind: "import", id: row.import_id } : null;
  }
  if (!hasTable(sql, "seen") || !hasTable(sql, "profile")) return null;
  if (sql.exec("SELECT 1 FROM profile WHERE id = 1 AND user_id IS NOT NULL").toArray().length > 0) return null;
  const own = hasTable(sql, "audio") ? sql.exec<{ id: string }>("SELECT conversation_id AS id FROM audio LIMIT 1").toArray()[0] : undefined;
  const seen = own ?? sql.exec<{ id: string }>("SELECT conversation_id AS id FROM seen LIMIT 1").toArray()[0];
  return seen ? { kind: "conversation", id: seen.id } : null;
}

/** An old import object's job, queue and failures, or null (tables: history-import/imports.ts). */
export function exportImport(sql: SqlStorage): LegacyImport | null {
  if (!hasTable(sql, "import_job")) return null;
  const job = sql.exec<LegacyImport["job"]>("SELECT * FROM import_job WHERE id = 1").toArray()[0];
  if (!job) return null;
  return {
    job,
    queue: sql.exec<LegacyImport["queue"][number]>("SELECT position, conversation_id, attempts FROM import_queue ORDER BY position").toArray(),
    failures: sql.exec<LegacyImport["failures"][number]>("SELECT conversation_id, reason, at FROM import_failures").toArray(),
  };
}
