/**
 * SQL statements a transcription costs its user's object (issue 21's target: at most 15 per call,
 * docs/cost-and-capacity.md): every statement the webhook's commit and the alarm's delivery run,
 * counted on the object's own SqlStorage, for a user's second call (the first also creates the tables).
 *
 * The alarm is due at once and runs by itself, so the count is split where the alarm starts (the
 * object's alarm is wrapped to mark it) and taken once the object is idle: no alarm under way and the
 * outbox empty. Counting from the first call on, and waiting for its alarm to end, keeps the tail of
 * the first call's delivery out of the second call's commit.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { postWebhook, transcription, uid } from "./helpers";
import { userMemory } from "./objects";

const statements: string[] = [];
const ALARM = "<alarm starts>";
let alarmsRunning = 0;

type Instrumented = { alarm(): Promise<void> };

function count(instance: Instrumented, state: DurableObjectState) {
  const sql = state.storage.sql as SqlStorage & { exec: SqlStorage["exec"] };
  const real = Object.getPrototypeOf(sql).exec as SqlStorage["exec"];
  sql.exec = ((q: string, ...b: SqlStorageValue[]) => {
    statements.push(q.replace(/\s+/g, " ").trim());
    return real.call(sql, q, ...b);
  }) as SqlStorage["exec"];
  const alarm = Object.getPrototypeOf(instance).alarm as () => Promise<void>;
  instance.alarm = async () => {
    statements.push(ALARM);
    alarmsRunning++;
    try {
      await alarm.call(instance);
    } finally {
      alarmsRunning--;
    }
  };
}

const LEFT = "SELECT count(*) AS items_left FROM outbox";
const counted = (q: string) => q !== LEFT;

/** Waits until an alarm has run since `from` (running it if it has not started by itself) and the object is idle. */
async function settled(stub: DurableObjectStub, from: number) {
  for (let i = 0; i < 500; i++) {
    const idle = await runInDurableObject(stub, (_m, state) => alarmsRunning === 0 && state.storage.sql.exec<{ items_left: number }>(LEFT).one().items_left === 0);
    if (idle && statements.indexOf(ALARM, from) >= 0) return;
    if (i === 100 && statements.indexOf(ALARM, from) < 0) await runDurableObjectAlarm(stub);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the object did not settle: an alarm still running, or items left in its outbox");
}

const stop = (instance: Instrumented, state: DurableObjectState) => {
  delete (state.storage.sql as Partial<SqlStorage>).exec;
  delete (instance as Partial<Instrumented>).alarm;
};

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
    await runInDurableObject(stub, (instance, state) => count(instance as unknown as Instrumented, state));
    try {
      expect((await postWebhook(call())).status).toBe(200);
      await settled(stub, 0);
      statements.length = 0;
      expect((await postWebhook(call())).status).toBe(200);
      await settled(stub, 0);
      const start = statements.indexOf(ALARM);
      const next = statements.indexOf(ALARM, start + 1);
      const commit = statements.slice(0, start).filter(counted).length;
      const delivery = statements.slice(start + 1, next < 0 ? undefined : next).filter(counted).length;
      // 21 and 14 before issue 21's second part (2026-12-07): a SELECT and an UPDATE per fact, re-reads in the alarm.
      // Delivery 8 -> 6: the payload is read with the item's row, and goes with it (the outbox_payload_goes trigger).
      // Commit 11 -> 10: the payload in the item's own row. Delivery 6 -> 5: the retention anchor moved as the item leaves (outbox_conversation_goes).
      expect({ commit, delivery }).toEqual({ commit: 10, delivery: 5 });
    } finally {
      await runInDurableObject(stub, (instance, state) => stop(instance as unknown as Instrumented, state));
    }
  });
});
