/**
 * Fault injection for tests, without any seam in production code: the bindings a UserMemory instance
 * sees (`this.env`, the DurableObject base class's field) are swapped for wrappers inside
 * `runInDurableObject`, and the outbox is made due ("time passes") with test/objects.ts
 * `makeOutboxDue`. Only the test isolate ever runs this module.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Env } from "../src/lib/env";
import { items, type OutboxItemState } from "../src/objects/shared/outbox-status";
import type { UserMemory } from "../src/objects/user-memory/user-memory";
import type { ConversationLedger } from "../src/objects/conversation-ledger/conversation-ledger";
import { makeOutboxDue } from "./objects";
import { shardNames } from "../src/storage/shards";

type Stub = DurableObjectStub<UserMemory> | DurableObjectStub<ConversationLedger>;

/**
 * - `up`: calls go through.
 * - `down`: every call throws before touching storage (an outage).
 * - `lost-ack`: the call goes through, then throws (the write committed, its answer was lost).
 */
export type FaultMode = "up" | "down" | "lost-ack";

export interface Fault {
  mode: FaultMode;
  calls: number;
  failures: number;
  /** When set, only calls for which it returns true are affected by the mode. */
  only?: (args: unknown[]) => boolean;
}

export const fault = (mode: FaultMode = "down", only?: Fault["only"]): Fault => ({ mode, calls: 0, failures: 0, only });

/** A proxy of a binding whose listed methods obey `f`; everything else is passed through. */
function faulty<T extends object>(real: T, methods: string[], f: Fault, what: string): T {
  return new Proxy(real, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function") return value;
      if (!methods.includes(String(prop))) return value.bind(target);
      return async (...args: unknown[]) => {
        f.calls++;
        const affected = f.only === undefined || f.only(args);
        if (affected && f.mode === "down") {
          f.failures++;
          throw new Error(`${what}: simulated outage`);
        }
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (affected && f.mode === "lost-ack") {
          f.failures++;
          throw new Error(`${what}: simulated lost response after commit`);
        }
        return result;
      };
    },
  });
}

/** Which fault a faulty D1 binding obeys: injectBindings gives every other shard the same one. */
const d1Faults = new WeakMap<object, Fault>();
const faultyShard = (db: D1Database, f: Fault) => faulty(db, ["batch", "exec"], f, "D1_ERROR");
export const faultyD1 = (f: Fault) => {
  const db = faultyShard(env.DB, f);
  d1Faults.set(db, f);
  return db;
};
export const faultyR2 = (f: Fault) => faulty(env.AUDIO, ["put", "createMultipartUpload"], f, "R2 put");

/** Gives the object behind `stub` different bindings until the returned function is called. */
export async function injectBindings(stub: Stub, patch: Partial<Env>): Promise<() => Promise<void>> {
  const original = await runInDurableObject(stub, (instance) => {
    const holder = instance as unknown as { env: Env };
    const before = holder.env;
    holder.env = { ...before, ...patch };
    // A D1 fault is an outage of D1: every shard named in D1_SHARDS (src/storage/shards.ts) obeys it.
    const f = patch.DB && d1Faults.get(patch.DB);
    if (f) for (const name of shardNames(before).slice(1)) (holder.env as unknown as Record<string, D1Database>)[name] = faultyShard((before as unknown as Record<string, D1Database>)[name]!, f);
    return before;
  });
  return () =>
    runInDurableObject(stub, (instance) => {
      (instance as unknown as { env: Env }).env = original;
    });
}

/**
 * Every pending outbox item with its attempts, last error and next attempt, in order (outboxStatus()
 * lists only the stuck ones). Read through the outbox module; an object that never stored anything has none.
 */
export function outboxItems(stub: Stub): Promise<OutboxItemState[]> {
  return runInDurableObject(stub, async (instance, state) =>
    (await (instance as unknown as UserMemory).outboxStatus()).pending === 0 ? [] : items(state.storage.sql, 0, Number.MAX_SAFE_INTEGER),
  );
}

/**
 * "Time passes": every pending item becomes due, then one outbox run is made, as the alarm would.
 * Both happen in one synchronous step of the object, so a background alarm cannot slip in between.
 * Returns when the run (or a concurrent one it joined) is over, and the time the items were made due.
 */
export async function retryNow(stub: Stub): Promise<number> {
  return runInDurableObject(stub, async (instance, state) => {
    const at = Date.now();
    makeOutboxDue(state.storage.sql);
    await (instance as unknown as UserMemory).flush();
    return at;
  });
}

/** Runs the object's alarm (making everything due first) until its outbox is empty; at most `rounds` times. */
export async function drainWithAlarm(stub: Stub, rounds = 5): Promise<number> {
  for (let i = 0; i < rounds; i++) {
    const pending = await runInDurableObject(stub, async (instance, state) => {
      // Counted and made due in one step of the object (no I/O between them). An object that never
      // stored anything has no outbox at all: nothing to make due.
      const { pending } = await (instance as unknown as UserMemory).outboxStatus();
      if (pending > 0) makeOutboxDue(state.storage.sql);
      return pending;
    });
    if (pending === 0) return i;
    // A failed run always re-arms the alarm, and a fresh item arms it: there is one to run, unless
    // the runtime has just started it by itself. Then flush() waits for that run, and runs again.
    if (!(await runDurableObjectAlarm(stub))) await runInDurableObject(stub, (instance) => (instance as unknown as UserMemory).flush());
  }
  throw new Error(`outbox not drained after ${rounds} alarm runs`);
}
