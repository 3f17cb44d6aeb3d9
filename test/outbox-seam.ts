/**
 * Test seam (docs/contract-tests.md "Test seams"): moves an object's outbox items in time, as if a
 * delivery had failed and were waiting to be retried ("time passes"). Written against the outbox
 * table inside `runInDurableObject`, because no method of an object lets a caller move its clock.
 */
export function delayAll(sql: SqlStorage, atMs: number, conversationId?: string): void {
  if (conversationId === undefined) sql.exec("UPDATE outbox SET next_attempt_at = ?", atMs);
  else sql.exec("UPDATE outbox SET next_attempt_at = ? WHERE conversation_id = ?", atMs, conversationId);
}

/** Makes every pending item due now. */
export function makeAllDue(sql: SqlStorage): void {
  sql.exec("UPDATE outbox SET next_attempt_at = 0");
}
