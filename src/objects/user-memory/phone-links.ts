/**
 * Phone links (README "Phone callers", docs/storage.md): a number belongs to at most one app user
 * at a time, the latest link wins.
 *
 * The link lives on both sides. The number's object (`user:+E164`) holds the truth in `phone_owner`
 * (initiation requests and phone-only conversations consult it); the app user's object lists its
 * numbers in `phones`, a reverse index used to read and erase. The reverse index is always a
 * superset of the truth: entries are added before the truth points at them and removed only after
 * it stopped, so erasing a user always finds every number that resolves to them, whatever step a
 * crash interrupted.
 *
 * A link is forward-looking: memory gathered under the bare number before the link stays with the
 * number and is not merged into the app user, so a link can be removed without un-merging anything.
 */
import type { MemoryRecord } from "../../records/payload";
import { enqueue } from "../shared/outbox";
import type { LinkVia, OwnerRow } from "../../memory/rpc";

// ---- in a user's object: the reverse index ---------------------------------------------------------

const LINKING_SOURCES = new Set(["user_id", "client_data_user_id", "dynamic_variable"]);

/**
 * A conversation that names an app user and also carries the caller's number links the two, unless
 * the user already lists that number. The user id must come from the app (not from the number
 * itself), and a user id equal to the number is not a link.
 */
export function shouldLink(sql: SqlStorage, r: MemoryRecord): r is MemoryRecord & { userId: string; phoneNumber: string } {
  if (r.userId === null || r.phoneNumber === null || r.userId === r.phoneNumber) return false;
  if (r.userIdSource === null || !LINKING_SOURCES.has(r.userIdSource)) return false;
  return sql.exec("SELECT 1 FROM phones WHERE phone_number = ?", r.phoneNumber).toArray().length === 0;
}

/** Lists the conversation's number as this user's (reverse index first), and queues telling the number. */
export function linkFromConversation(sql: SqlStorage, r: MemoryRecord & { userId: string; phoneNumber: string }, now: number): void {
  sql.exec(
    "INSERT OR IGNORE INTO phones (phone_number, linked_at, via, conversation_id) VALUES (?, ?, 'conversation', ?)",
    r.phoneNumber,
    r.startedAt,
    r.conversationId,
  );
  enqueue(sql, { kind: "link", phoneNumber: r.phoneNumber, userId: r.userId, at: r.startedAt, conversationId: r.conversationId }, r.conversationId, now);
}

export function addPhone(sql: SqlStorage, phoneNumber: string, at: number, via: LinkVia): void {
  sql.exec(
    `INSERT INTO phones (phone_number, linked_at, via, conversation_id) VALUES (?, ?, ?, NULL)
     ON CONFLICT (phone_number) DO UPDATE SET linked_at = max(phones.linked_at, excluded.linked_at), via = excluded.via`,
    phoneNumber,
    at,
    via,
  );
}

/** Forgets a number linked at or before `at` (after its object stopped pointing here). */
export function removePhone(sql: SqlStorage, phoneNumber: string, at: number): boolean {
  return sql.exec("DELETE FROM phones WHERE phone_number = ? AND linked_at <= ? RETURNING phone_number", phoneNumber, at).toArray().length > 0;
}

/** A newer link won the number: drop this user's entry if it is not newer than `at`. */
export const forgetReverseLink = (sql: SqlStorage, phoneNumber: string, at: number) => void removePhone(sql, phoneNumber, at);

export function listPhones(sql: SqlStorage, limit = -1): { phone_number: string; linked_at: number; via: string; conversation_id: string | null }[] {
  return sql
    .exec<{ phone_number: string; linked_at: number; via: string; conversation_id: string | null }>(
      "SELECT phone_number, linked_at, via, conversation_id FROM phones ORDER BY linked_at DESC, phone_number LIMIT ?",
      limit,
    )
    .toArray();
}

export function forgetPhone(sql: SqlStorage, phoneNumber: string): void {
  sql.exec("DELETE FROM phones WHERE phone_number = ?", phoneNumber);
}

// ---- in a number's object: the truth ---------------------------------------------------------------

export function ownerRow(sql: SqlStorage): OwnerRow | null {
  return sql.exec<OwnerRow>("SELECT phone_number, user_id, linked_at, via, conversation_id FROM phone_owner WHERE id = 1").toArray()[0] ?? null;
}

/**
 * The number now belongs to `userId`. Latest wins by `at` (Unix seconds: the conversation's start,
 * or the time of the API call), so links arriving out of order settle on the newest, and an unlink
 * is not undone by an older link. A displaced owner is told through the outbox, after the truth
 * changed. Returns whom it queued a notice for (the caller arms the alarm).
 */
export function setOwner(
  sql: SqlStorage,
  input: { phoneNumber: string; userId: string; at: number; via: LinkVia; conversationId: string | null },
  now: number,
): { owner: string | null; applied: boolean; notified: boolean } {
  const row = ownerRow(sql);
  if (row && row.linked_at > input.at) return { owner: row.user_id, applied: false, notified: false };
  if (row && row.user_id === input.userId) return { owner: input.userId, applied: true, notified: false };
  sql.exec(
    `INSERT INTO phone_owner (id, phone_number, user_id, linked_at, via, conversation_id, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET phone_number = excluded.phone_number, user_id = excluded.user_id,
       linked_at = excluded.linked_at, via = excluded.via, conversation_id = excluded.conversation_id, updated_at = excluded.updated_at`,
    input.phoneNumber,
    input.userId,
    input.at,
    input.via,
    input.conversationId,
    now,
  );
  const previous = row?.user_id ?? null;
  if (previous !== null) {
    enqueue(sql, { kind: "phone_removed", phoneNumber: input.phoneNumber, userId: previous, at: input.at }, input.phoneNumber, now);
  }
  return { owner: input.userId, applied: true, notified: previous !== null };
}

/**
 * Whether a number's object holds nothing but its owner row (no memory, deliveries, pending items or
 * links of its own): an erasure of the owner then wipes it instead of leaving a tombstone.
 */
export function holdsOnlyALink(sql: SqlStorage): boolean {
  const row = sql
    .exec<{ n: number }>(
      `SELECT (SELECT call_count FROM profile WHERE id = 1) + (SELECT count(*) FROM facts) + (SELECT count(*) FROM seen)
         + (SELECT count(*) FROM outbox) + (SELECT count(*) FROM phones) AS n`,
    )
    .one();
  return row.n === 0;
}

/** The number no longer belongs to anyone; a tombstone keeps the time, so an older link in flight cannot restore it. */
export function clearOwner(sql: SqlStorage, at: number, via: LinkVia, now: number): void {
  sql.exec(
    "UPDATE phone_owner SET user_id = NULL, linked_at = max(linked_at, ?), via = ?, conversation_id = NULL, updated_at = ? WHERE id = 1",
    at,
    via,
    now,
  );
}
