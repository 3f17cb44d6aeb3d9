/**
 * A user's object keeps what reads serve in memory between writes (src/memory/user-memory.ts
 * `served`). Each test reads first, so the memory is filled, then changes the object through each
 * kind of write, and checks that the next read sees the change at once.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Env } from "../src/lib/env";
import type { UserMemory } from "../src/objects/user-memory/user-memory";
import type { MemorySnapshot } from "../src/memory/variables";
import { describe, expect, it } from "vitest";
import { api, apiJson, deliverParked, initiation, pendingConversation, phoneNumber, u } from "./api-helpers";
import { context, flush, FIRST_TIME_CONTEXT, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { allShards, userShardIndex } from "../src/storage/shards";

async function ingest(userId: string, o: Parameters<typeof transcription>[0] = {}) {
  const event = transcription({ userId, ...o });
  expect((await postWebhook(event)).status).toBe(200);
  await flush(userId, event["data"].conversation_id);
  return event;
}

const callerVariables = async (phone: string) =>
  (await (await initiation({ caller_id: phone, agent_id: "agent_1", called_number: "+14155550000", call_sid: "CA1" })).json<{
    dynamic_variables: Record<string, unknown>;
    user_id?: string;
  }>());

describe("what a read serves follows every write at once", () => {
  it("a first write after reads found no storage at all", async () => {
    const userId = uid("served");
    expect(await context(userId)).toEqual(FIRST_TIME_CONTEXT);
    await ingest(userId, { title: "Very first topic" });
    expect(await context(userId)).toMatchObject({ call_count: 1, previous_topics: "Very first topic" });

    const phone = phoneNumber();
    expect((await callerVariables(phone)).dynamic_variables["call_count"]).toBe(0);
    const call = transcription({ userId: null, externalNumber: phone, title: "First ring" });
    expect((await postWebhook(call)).status).toBe(200);
    expect((await callerVariables(phone)).dynamic_variables).toMatchObject({ call_count: 1, previous_topics: "First ring" });
  });

  it("a new conversation", async () => {
    const userId = uid("served");
    await ingest(userId, { title: "First topic" });
    expect(await context(userId)).toMatchObject({ call_count: 1, previous_topics: "First topic" });
    await ingest(userId, { title: "Second topic", startedAt: nowSeconds() });
    expect(await context(userId)).toMatchObject({ call_count: 2, previous_topics: "Second topic; First topic" });
  });

  it("a phone link made and removed", async () => {
    const userId = uid("served");
    const phone = phoneNumber();
    await ingest(userId, { title: "App topic" });
    // The number has memory of its own (a phone-only call), so its object serves from memory too.
    const call = transcription({ userId: null, externalNumber: phone, title: "Phone topic" });
    expect((await postWebhook(call)).status).toBe(200);
    await flush(phone, call["data"].conversation_id);
    const before = await callerVariables(phone);
    expect(before.user_id).toBeUndefined();
    expect(before.dynamic_variables["previous_topics"]).toBe("Phone topic");
    expect((await api("PUT", `/v1/users/${u(userId)}/phones/${u(phone)}`)).status).toBe(200);
    const linked = await callerVariables(phone);
    expect(linked.user_id).toBe(userId);
    expect(linked.dynamic_variables["previous_topics"]).toBe("App topic");
    expect((await api("DELETE", `/v1/users/${u(userId)}/phones/${u(phone)}`)).status).toBe(200);
    const after = await callerVariables(phone);
    expect(after.user_id).toBeUndefined();
    expect(after.dynamic_variables["previous_topics"]).toBe("Phone topic");
  });

  it("an erasure", async () => {
    const userId = uid("served");
    await ingest(userId, { title: "To be forgotten" });
    expect((await context(userId))["call_count"]).toBe(1);
    await apiJson("DELETE", `/v1/users/${u(userId)}`);
    expect(await context(userId)).toEqual(FIRST_TIME_CONTEXT);
  });

  it("retention removing an expired conversation from the recent list", async () => {
    const userId = uid("served");
    // RETENTION_DAYS is 3650 in the test configuration. Recorded with the outbox parked and no alarm, so
    // nothing expires it before the test asks.
    await pendingConversation(userId, undefined, { title: "Ancient topic", startedAt: nowSeconds() - 4000 * 86_400 });
    await pendingConversation(userId, undefined, { title: "Recent topic", startedAt: nowSeconds() - 60 });
    expect((await context(userId))["previous_topics"]).toBe("Recent topic; Ancient topic");
    expect(await deliverParked(userId)).toBe(0);
    expect((await userMemory(env, userId).applyRetention()).counts.conversations).toBe(1);
    expect((await context(userId))["previous_topics"]).toBe("Recent topic");
  });
});

/**
 * A read that arrives while a write method awaits another service (D1, another object) is answered
 * at once from `served`: a write method must clear it as soon as it changes what a read serves, not
 * only when it returns. Each test runs the write inside the object, with the binding it awaits
 * wrapped so that a read is made at that point, as a concurrent request would be.
 */
describe("a read during a write's await sees what the write already changed", () => {
  it("retention, while it asks D1 for the oldest conversation left", async () => {
    const userId = uid("served");
    await pendingConversation(userId, undefined, { title: "Ancient topic", startedAt: nowSeconds() - 4000 * 86_400 });
    await pendingConversation(userId, undefined, { title: "Recent topic", startedAt: nowSeconds() - 60 });
    expect(await deliverParked(userId)).toBe(0);
    expect((await context(userId))["previous_topics"]).toBe("Recent topic; Ancient topic");
    const during = await runInDurableObject(userMemory(env, userId), async (instance) => {
      const memory = instance as unknown as UserMemory;
      const seen: MemorySnapshot[] = [];
      // The D1 binding is patched in place for this call (a Proxy of it breaks db.batch).
      const instanceEnv = (instance as unknown as { env: Env }).env;
      const db = allShards(instanceEnv)[userShardIndex(instanceEnv, userId)]!;
      const realPrepare = db.prepare;
      db.prepare = function (this: D1Database, query: string) {
        const stmt = realPrepare.call(this, query);
        if (!query.includes("min(started_at)")) return stmt;
        const realBind = stmt.bind;
        stmt.bind = (...args: unknown[]) => {
          const bound = realBind.apply(stmt, args);
          const realFirst = bound.first;
          bound.first = (async (...a: unknown[]) => {
            seen.push(await memory.snapshot());
            return (realFirst as (...x: unknown[]) => Promise<unknown>).apply(bound, a);
          }) as typeof bound.first;
          return bound;
        };
        return stmt;
      };
      try {
        expect((await memory.applyRetention()).counts.conversations).toBe(1);
      } finally {
        db.prepare = realPrepare;
      }
      return seen;
    });
    expect(during).toHaveLength(1);
    expect(during[0]!.recent.map((c) => c.title)).toEqual(["Recent topic"]);
  });

  it("an erasure of a linked number, while it tells the owner the number is gone", async () => {
    const owner = uid("served");
    const phone = phoneNumber();
    // The number has memory of its own, so its erasure goes through releaseNumber before the wipe.
    const call = transcription({ userId: null, externalNumber: phone, title: "Phone topic" });
    expect((await postWebhook(call)).status).toBe(200);
    await flush(phone, call["data"].conversation_id);
    expect((await api("PUT", `/v1/users/${u(owner)}/phones/${u(phone)}`)).status).toBe(200);
    expect((await callerVariables(phone)).user_id).toBe(owner);
    const during = await runInDurableObject(userMemory(env, phone), async (instance) => {
      const memory = instance as unknown as UserMemory;
      const holder = instance as unknown as { env: Env };
      const original = holder.env;
      const seen: (string | null)[] = [];
      const ns = original.USER_MEMORY as unknown as { get(id: DurableObjectId): unknown };
      const wrapped = new Proxy(ns, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target) as unknown;
          if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
          return (id: DurableObjectId) => {
            const stub = target.get(id) as unknown as { removePhone(p: string, at: number): Promise<unknown> };
            return new Proxy(stub, {
              get(s, p) {
                if (p !== "removePhone") return Reflect.get(s, p);
                return async (n: string, at: number) => {
                  seen.push((await memory.resolveCaller()).linkedTo);
                  return s.removePhone(n, at);
                };
              },
            });
          };
        },
      });
      holder.env = { ...original, USER_MEMORY: wrapped as unknown as Env["USER_MEMORY"] };
      try {
        for (let i = 0; i < 10 && !(await memory.erase(phone)).done; i++);
      } finally {
        holder.env = original;
      }
      return seen;
    });
    expect(during).toEqual([null]);
  });

  it("nothing once an erasure has begun, though its steps are not done yet", async () => {
    const userId = uid("served");
    await ingest(userId, { title: "Forget me" });
    // More numbers than one erasure step unlinks (LIMITS.unlinkBatch), so the first step stops short.
    const phones = Array.from({ length: LIMITS.unlinkBatch }, () => phoneNumber());
    for (const phone of phones) expect((await api("PUT", `/v1/users/${u(userId)}/phones/${u(phone)}`)).status).toBe(200);
    expect((await context(userId))["call_count"]).toBe(1);
    expect((await callerVariables(phones[0]!)).user_id).toBe(userId);
    const step = await userMemory(env, userId).erase(userId);
    expect(step.done).toBe(false);
    expect(await context(userId)).toEqual(FIRST_TIME_CONTEXT);
    await apiJson("DELETE", `/v1/users/${u(userId)}`);
    expect(await context(userId)).toEqual(FIRST_TIME_CONTEXT);
  });
});
