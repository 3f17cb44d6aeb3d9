/**
 * The tables every object with an outbox has (a memory and a conversation's ledger), the `upkeep`
 * row, and the Schema class that creates an object's tables on its first write and upgrades an
 * older object on first sight. Each class names its own tables and versions (user-memory/schema.ts,
 * conversation-ledger/schema.ts); docs/storage.md lists them.
 */

/**
 * The delivery record, the outbox and its payloads, the upkeep row (created here too, so a first
 * write costs no statement of its own for it). An item's payload is in its own row (`payload`) when
 * it is one part (LIMITS.blobPartBytes), else in `outbox_blobs`, a row per part.
 */
export const OUTBOX_TABLES = `
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
  created_at INTEGER NOT NULL,
  after_seq INTEGER,
  payload BLOB
);
CREATE TABLE IF NOT EXISTS outbox_blobs (
  seq INTEGER NOT NULL,
  part INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (seq, part)
);
CREATE TABLE IF NOT EXISTS upkeep (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  retention_anchor INTEGER,
  erasing_since INTEGER,
  recall_bytes INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO upkeep (id) VALUES (1);
`;

/** An outbox item is ready when it follows nothing, or what it follows has been delivered. */
export const READY = "(after_seq IS NULL OR NOT EXISTS (SELECT 1 FROM outbox s WHERE s.seq = outbox.after_seq))";

export interface SchemaSpec {
  /** The table whose row 1 holds `schema_version` (its presence means the object has tables). */
  versionTable: string;
  version: number;
  /** Every CREATE ... IF NOT EXISTS of the class, OUTBOX_TABLES included. */
  ddl: string;
  /** Inserts row 1 of `versionTable` (the version and `now`, Unix seconds, are bound in that order). */
  firstRow: string;
  /** What an object below `to` needs beyond the IF NOT EXISTS statements, in order. */
  upgrades: { to: number; run(sql: SqlStorage, now: number): void }[];
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

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly spec: SchemaSpec,
  ) {}

  exists(): boolean {
    if (this.state !== "unknown") return this.state === "ready";
    const { sql } = this.storage;
    const { versionTable, version: current } = this.spec;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", versionTable).toArray().length === 0) {
      this.state = "absent";
      return false;
    }
    const version = sql.exec<{ v: number }>(`SELECT schema_version AS v FROM ${versionTable} WHERE id = 1`).toArray()[0]?.v ?? 0;
    if (version < current) {
      this.storage.transactionSync(() => {
        sql.exec(this.spec.ddl);
        for (const step of this.spec.upgrades) if (version < step.to) step.run(sql, Math.floor(Date.now() / 1000));
        sql.exec(`UPDATE ${versionTable} SET schema_version = ? WHERE id = 1`, current);
      });
    }
    this.state = "ready";
    return true;
  }

  /** `now`: Unix seconds, the version row's created_at. */
  ensure(now: number): void {
    if (this.exists()) return;
    const { sql } = this.storage;
    this.storage.transactionSync(() => {
      sql.exec(this.spec.ddl);
      sql.exec(this.spec.firstRow, this.spec.version, now, now);
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

/** erasingSince and retentionAnchor in one statement (the alarm's retention step reads both). */
export function upkeepOf(sql: SqlStorage): { erasingSince: number | null; retentionAnchor: number | null } {
  const row = sql.exec<{ e: number | null; a: number | null }>("SELECT erasing_since AS e, retention_anchor AS a FROM upkeep WHERE id = 1").toArray()[0];
  return { erasingSince: row?.e ?? null, retentionAnchor: row?.a ?? null };
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

/** Adds a column an older object's table lacks (an upgrade step: what IF NOT EXISTS cannot express). */
export function addColumn(sql: SqlStorage, table: string, column: string, type: string): void {
  const columns = sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray();
  if (!columns.some((c) => c.name === column)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
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
