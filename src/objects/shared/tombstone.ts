/**
 * What an object keeps after it was wiped, so that a wipe is not undone by what arrives late
 * (docs/storage.md "Tombstones"). One row, in its own table: `deleteAll()` drops every table, so the
 * row is written right after the wipe, and the memory's own schema (`schema.ts`) stays absent, so
 * reads still find nothing.
 *
 *  - `erased_at` (an erasure wiped the object, as of the moment it began): an event for a
 *    conversation that started before it, or any audio for an erased conversation, is acknowledged
 *    and dropped; a conversation that started later is remembered normally (and the row stays).
 *  - `unlinked_at` (a number's object that held nothing but a link was wiped when its owner was
 *    erased): a link made at or before it, arriving late from an outbox, is not applied.
 *
 * Bounded: one row per wiped object, removed by the object's alarm TOMBSTONE_SECONDS after it was
 * written (30 days, far past ElevenLabs' last retry at about 41 minutes and the longest accepted
 * signature age); an object that holds nothing else is then gone entirely.
 */

export const TOMBSTONE_SECONDS = 30 * 24 * 3600;

export interface Tombstone {
  erasedAt: number | null;
  unlinkedAt: number | null;
  /** Unix seconds. */
  expiresAt: number;
}

const TABLE = `CREATE TABLE IF NOT EXISTS tombstone (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  erased_at INTEGER,
  unlinked_at INTEGER,
  expires_at INTEGER NOT NULL
)`;

/**
 * The tombstone of one object, read once and then kept in memory: this instance is the only writer
 * of its storage, so the copy is only changed here (and forgotten by `reset()` after a wipe).
 */
export class Tombstones {
  private state: Tombstone | null | undefined = undefined;

  constructor(private readonly sql: SqlStorage) {}

  get(): Tombstone | null {
    if (this.state !== undefined) return this.state;
    const exists = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tombstone'").toArray().length > 0;
    const row = exists
      ? this.sql
          .exec<{ erased_at: number | null; unlinked_at: number | null; expires_at: number }>("SELECT erased_at, unlinked_at, expires_at FROM tombstone WHERE id = 1")
          .toArray()[0]
      : undefined;
    this.state = row ? { erasedAt: row.erased_at, unlinkedAt: row.unlinked_at, expiresAt: row.expires_at } : null;
    return this.state;
  }

  /** Records (or widens) the tombstone; returns when it expires (ms, for the alarm). */
  write(mark: { erasedAt?: number; unlinkedAt?: number }, now: number): number {
    const expiresAt = now + TOMBSTONE_SECONDS;
    this.sql.exec(TABLE);
    this.sql.exec(
      `INSERT INTO tombstone (id, erased_at, unlinked_at, expires_at) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET erased_at = coalesce(max(erased_at, excluded.erased_at), erased_at, excluded.erased_at),
         unlinked_at = coalesce(max(unlinked_at, excluded.unlinked_at), unlinked_at, excluded.unlinked_at), expires_at = excluded.expires_at`,
      mark.erasedAt ?? null,
      mark.unlinkedAt ?? null,
      expiresAt,
    );
    this.state = undefined;
    return expiresAt * 1000;
  }

  /** Whether an event for a conversation that started at `startedAt` belongs to an erasure (drop it). */
  erases(startedAt: number): boolean {
    const t = this.get();
    return t !== null && t.erasedAt !== null && startedAt < t.erasedAt;
  }

  /** The time up to which a link may not be applied (an unlink or erasure this object survived), or null. */
  linkFloor(): number | null {
    const t = this.get();
    if (t === null) return null;
    const floors = [t.erasedAt, t.unlinkedAt].filter((x): x is number => x !== null);
    return floors.length === 0 ? null : Math.max(...floors);
  }

  /** Drops an expired tombstone; returns whether it did. */
  expire(now: number): boolean {
    const t = this.get();
    if (t === null || t.expiresAt > now) return false;
    this.sql.exec("DROP TABLE tombstone");
    this.state = null;
    return true;
  }

  reset(): void {
    this.state = undefined;
  }
}
