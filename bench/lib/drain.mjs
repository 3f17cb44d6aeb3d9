// Background work (Durable Object alarms delivering to R2 and D1) outlives the requests that caused
// it; a run is only over once it has caught up, so that no run pays for the previous one's.

export const count = async (db, table) => (await db.prepare(`SELECT count(*) AS n FROM ${table}`).first()).n;

/** Waits until `table` holds exactly `expected` rows; returns the seconds it took. */
export async function drain(db, table, expected, what, timeoutMs = 180_000) {
  const t0 = Date.now();
  for (;;) {
    const n = await count(db, table);
    if (n === expected) return (Date.now() - t0) / 1000;
    if (n > expected) throw new Error(`${what}: ${n} rows in D1, more than the ${expected} events acknowledged`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: only ${n} of ${expected} rows reached D1 after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
