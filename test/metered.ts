/** Meters the SQL statements a Durable Object method runs (rows read and written), for bounds no method reports. */
import { expect } from "vitest";
import type { UserMemory } from "../src/objects/user-memory/user-memory";

/**
 * Runs `fn` with every SQL statement of the object metered; returns the rows its statements read and
 * wrote. The object's SqlStorage is one object however it is reached, so wrapping its `exec` for the
 * duration meters every module's statements without knowing which fields of the class hold it.
 */
export async function metered(instance: unknown, state: DurableObjectState, fn: (memory: UserMemory) => Promise<unknown>) {
  const sql = state.storage.sql as SqlStorage & { exec: SqlStorage["exec"] };
  const real = sql.exec;
  const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  sql.exec = ((query: string, ...bindings: unknown[]) => {
    const c = real.call(sql, query, ...bindings);
    cursors.push(c);
    return c;
  }) as SqlStorage["exec"];
  try {
    await fn(instance as UserMemory);
  } finally {
    delete (sql as Partial<SqlStorage>).exec;
  }
  expect(sql.exec).toBe(real);
  // Metering reached the object's statements (an event always runs some).
  expect(cursors.length).toBeGreaterThan(0);
  return { read: cursors.reduce((n, c) => n + c.rowsRead, 0), written: cursors.reduce((n, c) => n + c.rowsWritten, 0) };
}

