/**
 * The SQLite schema inside each UserMemory Durable Object (docs/storage.md). Created on the first
 * write only, so that reading a user who never called leaves no storage behind. Every statement is
 * IF NOT EXISTS: an object written by an older version is brought up to date by running it again
 * (version 2 added phones, phone_owner and upkeep), then by the version's own steps
 * (`UPGRADE_STEPS`: what IF NOT EXISTS cannot express, such as a new column). Version 3 added the
 * recall index (recall_docs, recall_index and its triggers, recall_conversations, recall_backfill),
 * fact_history, facts.valid_from and memory_scopes (the registry of a user's agent-scoped memories,
 * MEMORY_SCOPE="agent"). Version 4 (Core v3) added `outbox.after_seq`: an item that waits for
 * another (src/objects/shared/outbox.ts). Version 5 (Recall v2) indexes windows of turns instead of
 * a document per turn (recall-index.ts): `recall_docs.speakers`, `recall_conversations.first_doc`,
 * `last_doc` and `format`; a new object's recall_docs has no index on conversation_id, and its
 * recall_conversations no rowid and no index on started_at (each a row written less per document
 * or call: the trim and retention, which look for the oldest, scan the table, a row per call kept). The outbox tables are shared with the ledger (../shared/tables.ts).
 */
import { OUTBOX_TRIGGERS, linkWaitingForwards } from "../shared/outbox";
import { OUTBOX_TABLES, Schema, addColumn, type SchemaSpec } from "../shared/tables";

export const MEMORY_SCHEMA_VERSION = 7;

export const MEMORY_SCHEMA = OUTBOX_TABLES + OUTBOX_TRIGGERS + `
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
  fact_id TEXT,
  speakers TEXT
);
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
  bytes INTEGER NOT NULL,
  first_doc INTEGER,
  last_doc INTEGER,
  format INTEGER NOT NULL DEFAULT 2
) WITHOUT ROWID;
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
`;


/**
 * What an object below version `to` needs beyond MEMORY_SCHEMA's IF NOT EXISTS statements, run in
 * order inside the upgrade's transaction. Version 3: facts gain `valid_from` (a value's first
 * sighting, for fact history), upkeep `recall_bytes` (the recall index's size, kept as a running
 * total so bounding it reads one row), and an object that already holds memory is queued for the recall
 * backfill (its stored conversations are in D1: src/objects/user-memory/recall-backfill.ts indexes them by alarm).
 */
const UPGRADE_STEPS: SchemaSpec["upgrades"] = [
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
  {
    to: 4,
    run(sql) {
      addColumn(sql, "outbox", "after_seq", "INTEGER");
      // A forward item queued before version 4 waited by failing until its source item was gone.
      linkWaitingForwards(sql);
    },
  },
  {
    to: 5,
    run(sql, now) {
      addColumn(sql, "recall_docs", "speakers", "TEXT");
      addColumn(sql, "recall_conversations", "first_doc", "INTEGER");
      addColumn(sql, "recall_conversations", "last_doc", "INTEGER");
      // Rows already there indexed a document per turn (format 1).
      addColumn(sql, "recall_conversations", "format", "INTEGER NOT NULL DEFAULT 1");
      // Re-indexed as windows by the backfill's bounded alarm runs, from the first conversation on
      // (recall-backfill.ts; indexConversation replaces a format 1 conversation). Nothing here is
      // deleted: the object serves its old documents until each conversation's turn comes.
      sql.exec(
        `INSERT INTO recall_backfill (id, started_at) SELECT 1, ? FROM profile
           WHERE id = 1 AND user_id IS NOT NULL AND EXISTS (SELECT 1 FROM recall_conversations)
         ON CONFLICT (id) DO UPDATE SET after_started_at = NULL, after_conversation_id = NULL`,
        now,
      );
    },
  },
  // Version 6 added the outbox_payload_goes trigger (shared/outbox.ts OUTBOX_TRIGGERS): created by the DDL itself, no step.
  // Version 7: an item's one-part payload in its own row (`outbox.payload`), and the outbox_conversation_goes trigger (the DDL).
  { to: 7, run: (sql) => addColumn(sql, "outbox", "payload", "BLOB") },
];

export const MEMORY_TABLES: SchemaSpec = {
  versionTable: "profile",
  version: MEMORY_SCHEMA_VERSION,
  ddl: MEMORY_SCHEMA,
  firstRow: "INSERT OR IGNORE INTO profile (id, schema_version, created_at, updated_at) VALUES (1, ?, ?, ?)",
  upgrades: UPGRADE_STEPS,
};

export const memorySchema = (storage: DurableObjectStorage) => new Schema(storage, MEMORY_TABLES);
