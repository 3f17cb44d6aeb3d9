/**
 * Full Durable Object stubs for tests (src/memory/objects.ts hands out stubs typed by kind; a test
 * may also need the class itself, for runInDurableObject). Names come from the service's own rules.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { conversationObjectName, userObjectName } from "../src/records/object-names";

type TestEnv = typeof env;

/** The object of a user (or of a phone number, for an id in E.164). */
export function userMemory(e: TestEnv, userId: string) {
  return e.USER_MEMORY.get(e.USER_MEMORY.idFromName(userObjectName(userId)));
}

/** A conversation's ledger (a conversation with no user, its call failure, its audio link). */
export function conversationMemory(e: TestEnv, conversationId: string) {
  return e.CONVERSATION_LEDGER.get(e.CONVERSATION_LEDGER.idFromName(conversationObjectName(conversationId)));
}

/** A conversation's object as it was before Core v3: a UserMemory under the same name (test/ledger-migration.test.ts). */
export function legacyConversationObject(e: TestEnv, conversationId: string) {
  return e.USER_MEMORY.get(e.USER_MEMORY.idFromName(conversationObjectName(conversationId)));
}

/** The object that owns a conversation's delivery. */
export function ownerOf(e: TestEnv, userId: string | null, conversationId: string) {
  return userId !== null ? userMemory(e, userId) : conversationMemory(e, conversationId);
}

/**
 * Ends the object's current instance (`ctx.abort()`), as a deploy or an eviction does: the next call
 * meets a new instance, which knows nothing the old one had cached (such as "the tables exist and are
 * up to date"). For tests that change an object's storage from outside. Only call it after the
 * changes were committed by an earlier `runInDurableObject` call: abort breaks the output gate, so
 * writes made in the same call may be lost. workerd logs the abort as an uncaught exception.
 */
export async function restartObject(stub: DurableObjectStub): Promise<void> {
  const reason = "test: restart the object";
  try {
    await runInDurableObject(stub, (_o, state) => state.abort(reason));
  } catch (err) {
    if (!(err instanceof Error) || err.message !== reason) throw err;
    return;
  }
  throw new Error("restartObject: the object did not abort");
}

/**
 * Seam (docs/contract-tests.md "Test seams"): moves the next attempt of every pending outbox item, or
 * of one conversation's, to `atMs` (ms since the epoch), with the SQL the outbox's own table answers
 * to. A time far ahead parks items as if a delivery had failed and were waiting to be retried; 0
 * makes them all due ("time passes"). For use on `state.storage.sql` inside `runInDurableObject`.
 */
export function setOutboxDue(sql: SqlStorage, atMs: number, conversationId?: string): void {
  if (conversationId === undefined) sql.exec("UPDATE outbox SET next_attempt_at = ?", atMs);
  else sql.exec("UPDATE outbox SET next_attempt_at = ? WHERE conversation_id = ?", atMs, conversationId);
}

/** "Time passes": every pending outbox item is due now (`setOutboxDue(sql, 0)`). */
export const makeOutboxDue = (sql: SqlStorage): void => setOutboxDue(sql, 0);
