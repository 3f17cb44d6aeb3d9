/**
 * SQL statements a transcription costs its user's object (issue 21's target: at most 15 per call,
 * docs/cost-and-capacity.md): every statement the webhook's commit and the alarm's delivery run,
 * counted on the object's own SqlStorage, for a user's second call (the first also creates the tables).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { postWebhook, transcription, uid } from "./helpers";
import { userMemory } from "./objects";

const statements: string[] = [];

function count(state: DurableObjectState) {
  const sql = state.storage.sql as SqlStorage & { exec: SqlStorage["exec"] };
  const real = Object.getPrototypeOf(sql).exec as SqlStorage["exec"];
  sql.exec = ((q: string, ...b: SqlStorageValue[]) => {
    statements.push(q.replace(/\s+/g, " ").trim());
    return real.call(sql, q, ...b);
  }) as SqlStorage["exec"];
}

const LEFT = "SELECT count(*) AS items_left FROM outbox";
const left = (stub: DurableObjectStub) => runInDurableObject(stub, (_m, state) => state.storage.sql.exec<{ items_left: number }>(LEFT).one().items_left);

const stop = (state: DurableObjectState) => void delete (state.storage.sql as Partial<SqlStorage>).exec;

describe("statements per transcription", () => {
  it("a 53-turn call with four facts: the commit and its delivery, each fact and each turn costing no statement of its own", async () => {
    const user = uid("user");
    const call = () => {
      const e = transcription({ userId: user, facts: { plan: "pro", city: "Reno", dentist: "Dr. Patel", pet: "Truffle" } });
      const t = e["data"].transcript;
      while (t.length < 53) t.push({ ...t[t.length % 5], message: `turn ${t.length} about the order and the refund` });
      return e;
    };
    const stub = userMemory(env, user);
    expect((await postWebhook(call())).status).toBe(200);
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (_m, state) => count(state));
    statements.length = 0;
    try {
      expect((await postWebhook(call())).status).toBe(200);
      const commit = statements.length;
      // The alarm is due at once and may run by itself: run it, then wait until the outbox is empty.
      await runDurableObjectAlarm(stub);
      for (let i = 0; i < 100 && (await left(stub)) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      const delivery = statements.filter((q) => q !== LEFT).length - commit;
      // 21 and 14 before issue 21's second part (2026-12-07): a SELECT and an UPDATE per fact, re-reads in the alarm.
      expect({ commit, delivery }).toEqual({ commit: 11, delivery: 8 });
    } finally {
      await runInDurableObject(stub, (_m, state) => stop(state));
    }
    expect(await left(stub)).toBe(0);
  });
});
