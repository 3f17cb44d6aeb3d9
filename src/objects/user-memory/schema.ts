/**
 * The SQLite schema inside each UserMemory Durable Object (docs/storage.md), its bounds, and the
 * small `upkeep` row. Created on the first write only, so that reading a user who never called
 * leaves no storage behind. Every statement is IF NOT EXISTS: an object written by an older version
 * is brought up to date by running it again (version 2 added phones, phone_owner and upkeep), then
 * by the version's own steps (`UPGRADE_STEPS`: what IF NOT EXISTS cannot express, such as a new
 * column). Version 3 added the recall index (recall_docs, recall_index and its triggers,
 * recall_conversations, recall_backfill), fact_history, facts.valid_from and memory_scopes (the
 * registry of a user's agent-scoped memories, MEMORY_SCOPE="agent") (src/memory/recall-index.ts,
 * src/memory/facts.ts).
 */
export const MEMORY_SCHEMA_VERSION = 3;

export const MEMORY_SCHEMA = `
CREATE TABLE IF NOT EXISTS profile (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  user_id TEXT,
  schema_version INTEGER NOT NULL,
  call_count INTEGER NOT NULL DEFAULT 0,
  total_duration_secs INTEGER NOT NULL DEFAULT 0,
  first_call_at INTEGER,
  last_call_at INTEGER,
  last_conversation_id TEXT,
  last_call_summary TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
  conversation_id TEXT PRIMARY KEY,
  started_at INTEGER NOT NULL,
  duration_secs INTEGER NOT NULL,
  title TEXT,
  summary TEXT,
  outcome TEXT,
  received_at INTEGER NOT NULL,
  has_audio INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_start ON conversations (started_at DESC, conversation_id DESC);
CREATE TABLE IF NOT EXISTS facts (
  fact_id TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  collected_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  valid_from INTEGER
);
CREATE TABLE IF NOT EXISTS fact_history (
  fact_id TEXT NOT NULL,
  value TEXT NOT NULL,
  conversation_id TEXT,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER NOT NULL,
  PRIMARY KEY (fact_id, valid_from, value)
);
CREATE TABLE IF NOT EXISTS seen (
  kind TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (kind, conversation_id)
);
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (received_at);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_blobs (
  seq INTEGER NOT NULL,
  part INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (seq, part)
);
CREATE TABLE IF NOT EXISTS phones (
  phone_number TEXT PRIMARY KEY,
  linked_at INTEGER NOT NULL,
  via TEXT NOT NULL,
  conversation_id TEXT
);
CREATE TABLE IF NOT EXISTS phone_owner (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  phone_number TEXT NOT NULL,
  user_id TEXT,
  linked_at INTEGER NOT NULL,
  via TEXT NOT NULL,
  conversation_id TEXT,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recall_docs (
  doc_id INTEGER PRIMARY KEY,
  conversation_id TEXT,
  speaker TEXT NOT NULL,
  at INTEGER NOT NULL,
  body TEXT NOT NULL,
  fact_id TEXT
);
CREATE INDEX IF NOT EXISTS recall_docs_by_conversation ON recall_docs (conversation_id);
CREATE INDEX IF NOT EXISTS recall_docs_by_fact ON recall_docs (fact_id) WHERE fact_id IS NOT NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS recall_index USING fts5(
  body, content='recall_docs', content_rowid='doc_id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS recall_docs_insert AFTER INSERT ON recall_docs BEGIN
  INSERT INTO recall_index (rowid, body) VALUES (new.doc_id, new.body);
END;
CREATE TRIGGER IF NOT EXISTS recall_docs_delete AFTER DELETE ON recall_docs BEGIN
  INSERT INTO recall_index (recall_index, rowid, body) VALUES ('delete', old.doc_id, old.body);
END;
CREATE TABLE IF NOT EXISTS recall_conversations (
  conversation_id TEXT PRIMARY KEY,
  started_at INTEGER NOT NULL,
  title TEXT,
  docs INTEGER NOT NULL,
  bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recall_conversations_by_start ON recall_conversations (started_at);
CREATE TABLE IF NOT EXISTS recall_backfill (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  after_started_at INTEGER,
  after_conversation_id TEXT,
  indexed INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS memory_scopes (
  agent_id TEXT PRIMARY KEY,
  registered_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS upkeep (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  retention_anchor INTEGER,
  erasing_since INTEGER,
  recall_bytes INTEGER NOT NULL DEFAULT 0
);
`;

/** How much detail a user's memory keeps: counters stay exact, older detail is compacted away. */
export const LIMITS = {
  /** Conversations kept with title and summary (the rest live on in D1 and in the counters). */
  recentConversations: 50,
  /** Conversations rendered into previous_topics (before the character budget applies). */
  topicConversations: 20,
  facts: 200,
  /** Serialised size above which a fact value is not kept in memory (it stays in D1 and R2). */
  factValueChars: 8192,
  /** Delivery ids remembered for deduplication; ElevenLabs retries within about 41 minutes. */
  seenEvents: 10_000,
  /** DO SQLite refuses values over 2 MB: raw payloads are stored in parts. */
  blobPartBytes: 1 << 20,
  /** Outbox items delivered per alarm run. */
  flushBatch: 25,
  /**
   * Conversations erased per Durable Object call (DELETE and retention): eraseBatch x eraseBatchesPerCall
   * = 200. Each can cost up to four subrequests (an R2 list, R2 heads of recorded keys, a call to the
   * conversation's own object for its audio link), so one invocation stays under the platform's
   * 1,000-subrequest limit.
   */
  eraseBatch: 100,
  eraseBatchesPerCall: 2,
  /** Phone links undone per Durable Object call during an erasure (each is one call to another object). */
  unlinkBatch: 50,
  /** Recall index (src/memory/recall-index.ts): turns indexed per conversation (the first ones). */
  recallTurnsPerConversation: 200,
  /** Characters of one turn, title or summary kept in the index. */
  recallDocChars: 2000,
  /** Bytes of indexed text per memory; past it the oldest conversations leave the index. */
  recallBytesPerMemory: 8 * 1024 * 1024,
  /** Old values kept per fact, and in all (fact_history). */
  factHistoryPerFact: 20,
  factHistoryTotal: 2000,
  /** Agent scopes erased per Durable Object call (each is up to a few calls to another object). */
  scopeBatch: 20,
  /** Conversations read from D1 per backfill batch, and batches per alarm run. */
  backfillBatch: 20,
  backfillBatchesPerRun: 2,
} as const;

/**
 * What an object below version `to` needs beyond MEMORY_SCHEMA's IF NOT EXISTS statements, run in
 * order inside the upgrade's transaction. Version 3: facts gain `valid_from` (a value's first
 * sighting, for fact history), upkeep `recall_bytes` (the recall index's size, kept as a running
 * total so bounding it reads one row), and an object that already holds memory is queued for the recall
 * backfill (its stored conversations are in D1: src/memory/recall-backfill.ts indexes them by alarm).
 */
const UPGRADE_STEPS: { to: number; run(sql: SqlStorage, now: number): void }[] = [
  {
    to: 3,
    run(sql, now) {
      addColumn(sql, "facts", "valid_from", "INTEGER");
      // upkeep is created by MEMORY_SCHEMA for a version 1 object, with the column; a version 2 one lacks it.
      addColumn(sql, "upkeep", "recall_bytes", "INTEGER NOT NULL DEFAULT 0");
      sql.exec("UPDATE facts SET valid_from = collected_at WHERE valid_from IS NULL");
      sql.exec("INSERT OR IGNORE INTO recall_backfill (id, started_at) SELECT 1, ? FROM profile WHERE id = 1 AND user_id IS NOT NULL", now);
    },
  },
];

function addColumn(sql: SqlStorage, table: string, column: string, type: string): void {
  const columns = sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray();
  if (!columns.some((c) => c.name === column)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
}

/**
 * Whether the object's tables exist, upgrading an older object's on first sight. `exists()` never
 * creates anything; `ensure()` creates the tables on a first write. The answer is cached for the
 * object's lifetime, "no tables" included (only `ensure()` in this instance can create them: it is
 * their only writer), so an unknown caller's rings cost no SQL after the first; `reset()` forgets it
 * after a wipe.
 */
export class Schema {
  private state: "unknown" | "absent" | "ready" = "unknown";

  constructor(private readonly storage: DurableObjectStorage) {}

  exists(): boolean {
    if (this.state !== "unknown") return this.state === "ready";
    const sql = this.storage.sql;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profile'").toArray().length === 0) {
      this.state = "absent";
      return false;
    }
    const version = sql.exec<{ v: number }>("SELECT schema_version AS v FROM profile WHERE id = 1").toArray()[0]?.v ?? 0;
    if (version < MEMORY_SCHEMA_VERSION) {
      this.storage.transactionSync(() => {
        sql.exec(MEMORY_SCHEMA);
        for (const step of UPGRADE_STEPS) if (version < step.to) step.run(sql, Math.floor(Date.now() / 1000));
        sql.exec("INSERT OR IGNORE INTO upkeep (id) VALUES (1)");
        sql.exec("UPDATE profile SET schema_version = ? WHERE id = 1", MEMORY_SCHEMA_VERSION);
      });
    }
    this.state = "ready";
    return true;
  }

  /** `now`: Unix seconds, the profile's created_at. */
  ensure(now: number): void {
    if (this.exists()) return;
    const sql = this.storage.sql;
    this.storage.transactionSync(() => {
      sql.exec(MEMORY_SCHEMA);
      sql.exec("INSERT OR IGNORE INTO profile (id, schema_version, created_at, updated_at) VALUES (1, ?, ?, ?)", MEMORY_SCHEMA_VERSION, now, now);
      sql.exec("INSERT OR IGNORE INTO upkeep (id) VALUES (1)");
    });
    this.state = "ready";
  }

  reset(): void {
    this.state = "unknown";
  }
}

/** `upkeep.erasing_since`: set while DELETE /v1/users/:userId is under way (nothing is delivered meanwhile). */
export function erasingSince(sql: SqlStorage): number | null {
  return sql.exec<{ e: number | null }>("SELECT erasing_since AS e FROM upkeep WHERE id = 1").toArray()[0]?.e ?? null;
}

/** `upkeep.retention_anchor`: start of the oldest delivered conversation retention may still have to remove. */
export function retentionAnchor(sql: SqlStorage): number | null {
  return sql.exec<{ a: number | null }>("SELECT retention_anchor AS a FROM upkeep WHERE id = 1").toArray()[0]?.a ?? null;
}

export function setRetentionAnchor(sql: SqlStorage, at: number | null): void {
  sql.exec("UPDATE upkeep SET retention_anchor = ? WHERE id = 1", at);
}

/** Moves the anchor back to `startedAt` if that is older (a conversation just reached D1). */
export function lowerRetentionAnchor(sql: SqlStorage, startedAt: number): void {
  sql.exec("UPDATE upkeep SET retention_anchor = min(coalesce(retention_anchor, ?), ?) WHERE id = 1", startedAt, startedAt);
}

/** Rows held in every table of this object (what an erasure reports it wiped). */
export function countRows(sql: SqlStorage): number {
  const tables = sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")
    .toArray();
  let n = 0;
  for (const { name } of tables) n += sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${name.replace(/"/g, '""')}"`).one().n;
  return n;
}
