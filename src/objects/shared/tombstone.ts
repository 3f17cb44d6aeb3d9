/**
 * What an object keeps after it was wiped, so that a wipe is not undone by what arrives late
 * (docs/storage.md "Tombstones" and "The erasure ledger"). Two tables of one row each, outside the
 * class's schema: `deleteAll()` drops every table, so they are written right after the wipe, and the
 * memory's own schema (`schema.ts`) stays absent, so reads still find nothing.
 *
 * The tombstone (`tombstone`, 30 days):
 *  - `erased_at` (an erasure wiped the object, as of the moment it began): an event for a
 *    conversation that started before it, or any audio for an erased conversation, is acknowledged
 *    and dropped; a conversation that started later is remembered normally (and the row stays).
 *  - `unlinked_at` (a number's object that held nothing but a link was wiped when its owner was
 *    erased): a link made at or before it, arriving late from an outbox, is not applied.
 * Bounded: removed by the object's alarm TOMBSTONE_SECONDS after it was written (30 days, far past
 * ElevenLabs' last retry at about 41 minutes and the longest accepted signature age).
 *
 * The erasure mark (`erasure_mark`, forever): the object's entry of the erasure ledger, which outlives
 * the tombstone so that an import next quarter, an attribution or a backfill cannot bring an erased
 * conversation back. No D1 round trip: the object that would take the event carries it.
 *  - `erased_at`: as the tombstone's, but permanent (the latest erasure of this object).
 *  - `held`: the conversations the object held when the erasure began that started at or after that
 *    second (whole seconds: a call that began in the second the erasure did, or a clock ahead of ours),
 *    as salted hashes (`salt` is the object's own): dropped whatever their start time.
 *  - `linked_erased_at` (a number's object): when a user the number was linked to was erased. A
 *    phone-only conversation that started before it may have been that user's, and erased with them:
 *    its own ledger (which keeps an erased conversation's mark) is asked before the number records it.
 * An object that holds a mark is never deleted whole: one row per erased user, number and conversation.
 */
import { saltedHash } from "../../records/erasure-hash";

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

const MARK_TABLE = `CREATE TABLE IF NOT EXISTS erasure_mark (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  erased_at INTEGER,
  linked_erased_at INTEGER,
  salt TEXT NOT NULL,
  held TEXT NOT NULL DEFAULT '[]'
)`;

export interface ErasureMark {
  erasedAt: number | null;
  linkedErasedAt: number | null;
  salt: string;
  held: string[];
}

/** Salted hashes kept per object at most (a held set is the few calls of one second; this only bounds a pathological one). */
const HELD_MAX = 1000;

const exists = (sql: SqlStorage, table: string) =>
  sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray().length > 0;

/**
 * The tombstone and the erasure mark of one object, read once and then kept in memory: this instance
 * is the only writer of its storage, so the copy is only changed here (and forgotten by `reset()`
 * after a wipe).
 */
export class Tombstones {
  private state: Tombstone | null | undefined = undefined;
  private markState: ErasureMark | null | undefined = undefined;

  constructor(private readonly sql: SqlStorage) {}

  /** The 30-day tombstone alone. */
  get(): Tombstone | null {
    if (this.state !== undefined) return this.state;
    const row = exists(this.sql, "tombstone")
      ? this.sql
          .exec<{ erased_at: number | null; unlinked_at: number | null; expires_at: number }>("SELECT erased_at, unlinked_at, expires_at FROM tombstone WHERE id = 1")
          .toArray()[0]
      : undefined;
    this.state = row ? { erasedAt: row.erased_at, unlinkedAt: row.unlinked_at, expiresAt: row.expires_at } : null;
    return this.state;
  }

  /** The permanent erasure mark, or null. */
  mark(): ErasureMark | null {
    if (this.markState !== undefined) return this.markState;
    const row = exists(this.sql, "erasure_mark")
      ? this.sql
          .exec<{ erased_at: number | null; linked_erased_at: number | null; salt: string; held: string }>(
            "SELECT erased_at, linked_erased_at, salt, held FROM erasure_mark WHERE id = 1",
          )
          .toArray()[0]
      : undefined;
    this.markState = row ? { erasedAt: row.erased_at, linkedErasedAt: row.linked_erased_at, salt: row.salt, held: JSON.parse(row.held) as string[] } : null;
    return this.markState;
  }

  /** When this object was last erased (as of when the erasure began), tombstone or mark; null if never. */
  erasedAt(): number | null {
    const at = [this.get()?.erasedAt ?? null, this.mark()?.erasedAt ?? null].filter((x): x is number => x !== null);
    return at.length === 0 ? null : Math.max(...at);
  }

  /** A number's object: when a user it was linked to was last erased, or null. */
  linkedErasedAt(): number | null {
    return this.mark()?.linkedErasedAt ?? null;
  }

  /** Writes (or widens) the permanent mark. */
  private writeMark(change: { erasedAt?: number; linkedErasedAt?: number; held?: string[] }): void {
    const current = this.mark();
    const held = [...new Set([...(current?.held ?? []), ...(change.held ?? [])])].slice(-HELD_MAX);
    const widen = (a: number | null | undefined, b: number | undefined) => (b === undefined ? (a ?? null) : Math.max(a ?? b, b));
    this.sql.exec(MARK_TABLE);
    this.sql.exec(
      `INSERT INTO erasure_mark (id, erased_at, linked_erased_at, salt, held) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET erased_at = excluded.erased_at, linked_erased_at = excluded.linked_erased_at, held = excluded.held`,
      widen(current?.erasedAt, change.erasedAt),
      widen(current?.linkedErasedAt, change.linkedErasedAt),
      current?.salt ?? crypto.randomUUID(),
      JSON.stringify(held),
    );
    this.markState = undefined;
  }

  /** After an erasure: the conversations it took that started at or after it began (dropped whatever their start). */
  async markHeld(conversationIds: string[]): Promise<void> {
    if (conversationIds.length === 0) return;
    if (this.mark() === null) this.writeMark({});
    const salt = this.mark()!.salt;
    const held = await Promise.all(conversationIds.map((id) => saltedHash(salt, id)));
    this.writeMark({ held });
  }

  /** Whether an erasure of this object took this conversation though it started after the erasure began. */
  async held(conversationId: string): Promise<boolean> {
    const m = this.mark();
    if (m === null || m.held.length === 0) return false;
    return m.held.includes(await saltedHash(m.salt, conversationId));
  }

  /** A number's object: a user it was linked to was erased at `at`. */
  markLinkedErasure(at: number): void {
    this.writeMark({ linkedErasedAt: at });
  }

  /** Records (or widens) the tombstone, and with `erasedAt` the permanent mark; returns when the tombstone expires (ms, for the alarm). */
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
    if (mark.erasedAt !== undefined) this.writeMark({ erasedAt: mark.erasedAt });
    return expiresAt * 1000;
  }

  /** Whether an event for a conversation that started at `startedAt` belongs to an erasure (drop it). */
  erases(startedAt: number): boolean {
    const at = this.erasedAt();
    return at !== null && startedAt < at;
  }

  /** The time up to which a link may not be applied (an unlink or erasure this object survived), or null. */
  linkFloor(): number | null {
    const floors = [this.erasedAt(), this.get()?.unlinkedAt ?? null].filter((x): x is number => x !== null);
    return floors.length === 0 ? null : Math.max(...floors);
  }

  /**
   * Drops an expired tombstone; returns whether it did. An erasure's mark stays: one written before
   * the mark existed (an older version) is carried forward into it here.
   */
  expire(now: number): boolean {
    const t = this.get();
    if (t === null || t.expiresAt > now) return false;
    if (t.erasedAt !== null && (this.mark()?.erasedAt ?? null) === null) this.writeMark({ erasedAt: t.erasedAt });
    this.sql.exec("DROP TABLE tombstone");
    this.state = null;
    return true;
  }

  /** Whether the object holds an erasure mark (then it is never deleted whole). */
  marked(): boolean {
    return this.mark() !== null;
  }

  reset(): void {
    this.state = undefined;
    this.markState = undefined;
  }
}
