/**
 * The tables of a ConversationLedger (docs/storage.md): only what a conversation's ledger uses. The
 * delivery record and the outbox (shared with memories: ../shared/tables.ts), the audio link, and the
 * `ledger` row (the schema version). No memory tables and no recall index: a ledger is about one
 * conversation, and there is roughly one per call (docs/cost-and-capacity.md gives its size).
 */
import { OUTBOX_TRIGGERS } from "../shared/outbox";
import { OUTBOX_TABLES, Schema, addColumn, type SchemaSpec } from "../shared/tables";

/**
 * 2: the outbox_payload_goes trigger (../shared/outbox.ts OUTBOX_TRIGGERS), created by the DDL itself.
 * 3: an item's one-part payload in its own row (`outbox.payload`), and the outbox_conversation_goes trigger.
 */
export const LEDGER_SCHEMA_VERSION = 3;

const LEDGER_SCHEMA =
  OUTBOX_TABLES +
  OUTBOX_TRIGGERS +
  `
CREATE TABLE IF NOT EXISTS ledger (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  -- The ledger's own conversation id (its name), for an alarm that runs without the name.
  conversation_id TEXT,
  -- 'copied' while the pre-Core v3 object this ledger took over still holds its copy (legacy.ts).
  legacy TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
`;

export const LEDGER_TABLES: SchemaSpec = {
  versionTable: "ledger",
  version: LEDGER_SCHEMA_VERSION,
  ddl: LEDGER_SCHEMA,
  firstRow: "INSERT OR IGNORE INTO ledger (id, schema_version, created_at, updated_at) VALUES (1, ?, ?, ?)",
  upgrades: [{ to: 3, run: (sql) => addColumn(sql, "outbox", "payload", "BLOB") }],
};

export const ledgerSchema = (storage: DurableObjectStorage) => new Schema(storage, LEDGER_TABLES);
