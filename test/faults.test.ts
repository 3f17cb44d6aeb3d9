/**
 * Nothing acknowledged is lost: D1 and R2 failing for a while (then recovering), writes whose answer
 * is lost after they committed, an outbox item that can never be delivered, and a Durable Object call
 * that throws. Faults are injected from outside (test/faults.ts); production code has no test seam.
 */
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";

import worker from "../src/index";
import type { Env } from "../src/lib/env";
import { ownerOf, setOutboxDue, userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { MAX_BACKOFF_MS, STUCK_ATTEMPTS, backoffMs, payloadOf, remove } from "../src/objects/shared/outbox";
import type { UserMemory } from "../src/objects/user-memory/user-memory";
import { transcriptKey } from "../src/records/keys";
import sipFailure from "./fixtures/call-initiation-failure-sip.json";
import { drainWithAlarm, fault, faultyD1, faultyR2, injectBindings, outboxItems, retryNow } from "./faults";
import { BASE, context, d1Count, postWebhook, signatureHeader, storedTurns, transcription, uid, userIdOf } from "./helpers";
import { expectLogs, outboxFailure } from "./logs";
import { homeDb, userDb } from "./shards";

// Megabyte bodies, bursts and many outbox runs share 2 cores with other work: the default 5 s per test
// is a ceiling against hangs that such a machine can reach. This raises the ceiling; nothing here is timed.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const TURNS_PER_FIXTURE = 5;

async function sha(bytes: ArrayBuffer | Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Posts exact bytes (a redelivery must be byte-identical) and returns the status and body. */
async function deliver(text: string, header?: string) {
  const res = await postWebhook(text, header === undefined ? {} : { header });
  return { status: res.status, body: await res.json<Record<string, unknown>>() };
}

describe("D1 failing for a while, then recovering", () => {
  it("keeps every acknowledged event and writes each to D1 exactly once after recovery", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("outage");
    const stub = userMemory(env, userId);
    const d1 = fault("down");
    const restore = await injectBindings(stub, { DB: faultyD1(d1) });

    const events = Array.from({ length: 5 }, (_, i) => transcription({ userId, title: `Outage call ${i}` }));
    const texts = events.map((e) => JSON.stringify(e));
    const acknowledged: string[] = [];
    for (const text of texts) {
      const r = await deliver(text);
      expect(r.status).toBe(200);
      expect(r.body["status"]).toBe("stored");
      acknowledged.push(JSON.parse(text).data.conversation_id);
    }
    // Redeliveries during the outage (ElevenLabs retries, byte-identical) are recognised as such.
    for (const text of [texts[0]!, texts[3]!]) expect((await deliver(text)).body["status"]).toBe("duplicate");

    await retryNow(stub);
    await retryNow(stub);
    const during = await outboxItems(stub);
    expect(during.map((r) => r.conversationId)).toEqual(acknowledged);
    for (const row of during) {
      expect(row.attempts).toBeGreaterThanOrEqual(2);
      expect(row.lastError).toContain("simulated outage");
    }
    expect(d1.failures).toBeGreaterThanOrEqual(10);
    const inD1 = () => d1Count("conversations", `conversation_id IN (${acknowledged.map(() => "?").join(",")})`, ...acknowledged);
    expect(await inD1()).toBe(0);
    // Memory is served from the Durable Object, so it is complete during the outage.
    expect((await context(userId))["call_count"]).toBe(5);

    d1.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    expect(await outboxItems(stub)).toEqual([]);
    expect(await inD1()).toBe(5);
    for (const id of acknowledged) {
      expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
      expect(await storedTurns("conversation_id = ?", id)).toBe(TURNS_PER_FIXTURE);
    }
    for (const [i, id] of acknowledged.entries()) {
      const obj = await env.AUDIO.get(transcriptKey(id));
      expect(await sha(await obj!.arrayBuffer())).toBe(await sha(new TextEncoder().encode(texts[i]!)));
    }
    expect((await context(userId))["call_count"]).toBe(5);
  });

  it("delivers events that belong to no user, and call failures, once D1 is back", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const conversationId = uid("nouser");
    const failure = structuredClone(sipFailure) as { data: { conversation_id: string } };
    failure.data.conversation_id = uid("fail");
    const owners = [ownerOf(env, null, conversationId), ownerOf(env, null, failure.data.conversation_id)];
    const d1 = fault("down");
    const restores = await Promise.all(owners.map((o) => injectBindings(o, { DB: faultyD1(d1) })));

    expect((await deliver(JSON.stringify(transcription({ conversationId, userId: null })))).status).toBe(200);
    expect((await deliver(JSON.stringify(failure))).status).toBe(200);
    for (const o of owners) await retryNow(o);
    expect(await d1Count("conversations", "conversation_id = ?", conversationId)).toBe(0);
    expect(await d1Count("call_failures", "conversation_id = ?", failure.data.conversation_id)).toBe(0);

    d1.mode = "up";
    for (const o of owners) await drainWithAlarm(o);
    await Promise.all(restores.map((r) => r()));
    expect(await d1Count("conversations", "conversation_id = ?", conversationId)).toBe(1);
    expect(await d1Count("call_failures", "conversation_id = ?", failure.data.conversation_id)).toBe(1);
  });

  it("replays a D1 write whose answer was lost after it committed, without doubling anything", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated lost response after commit"));
    const userId = uid("lostack");
    const stub = userMemory(env, userId);
    const d1 = fault("lost-ack");
    const restore = await injectBindings(stub, { DB: faultyD1(d1) });
    const event = transcription({ userId });
    const id = event["data"].conversation_id as string;
    expect((await deliver(JSON.stringify(event))).status).toBe(200);

    await retryNow(stub);
    await retryNow(stub);
    expect(d1.failures).toBeGreaterThanOrEqual(2);
    // Committed (more than once), yet held once: every statement is idempotent. On shards
    // (src/storage/shards.ts) whose home for the id is not the user's, the write is two batches and
    // stops at the first lost answer: the entry is committed, the row waits for the next attempt.
    const oneBatch = homeDb(id) === userDb(userId);
    expect(await d1Count("conversation_shards", "conversation_id = ?", id)).toBe(1);
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(oneBatch ? 1 : 0);
    expect(await storedTurns("conversation_id = ?", id)).toBe(oneBatch ? TURNS_PER_FIXTURE : 0);
    expect((await outboxItems(stub)).map((r) => r.conversationId)).toEqual([id]);

    d1.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
    expect(await storedTurns("conversation_id = ?", id)).toBe(TURNS_PER_FIXTURE);
  });
});

describe("retry schedule", () => {
  it("backs off exponentially from about a second to a ceiling of 10 minutes, with ±10% jitter", () => {
    for (let attempts = 0; attempts <= 40; attempts++) {
      const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempts);
      for (let i = 0; i < 20; i++) {
        const ms = backoffMs(attempts);
        expect(ms).toBeGreaterThanOrEqual(Math.floor(base * 0.9));
        expect(ms).toBeLessThanOrEqual(Math.ceil(base * 1.1));
      }
    }
  });

  it("records attempts and the last error, grows next_attempt_at per failure and caps it", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("backoff");
    const stub = userMemory(env, userId);
    const d1 = fault("down");
    const restore = await injectBindings(stub, { DB: faultyD1(d1) });
    expect((await deliver(JSON.stringify(transcription({ userId })))).status).toBe(200);

    const delays: number[] = [];
    let previousAttempts = 0;
    for (let round = 0; round < 14; round++) {
      const madeDueAt = await retryNow(stub);
      const after = Date.now();
      const [row] = await outboxItems(stub);
      expect(row!.attempts).toBeGreaterThan(previousAttempts);
      expect(row!.lastError).toBe("D1_ERROR: simulated outage");
      // The failure that set this row happened after the item was made due: its delay is the
      // backoff for the attempts before it, whoever (this run or a background alarm) recorded it.
      const expected = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (row!.attempts - 1));
      expect(row!.nextAttemptAt).toBeGreaterThanOrEqual(madeDueAt + Math.floor(expected * 0.9));
      expect(row!.nextAttemptAt).toBeLessThanOrEqual(after + Math.ceil(expected * 1.1));
      delays.push(expected);
      previousAttempts = row!.attempts;
    }
    expect(delays.at(-1)).toBe(MAX_BACKOFF_MS);
    expect(delays[1]!).toBeGreaterThan(delays[0]!);

    d1.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    expect(await outboxItems(stub)).toEqual([]);
  });
});

describe("R2 failing", () => {
  it("keeps the item and its raw bytes while R2 puts fail, writes D1 only after R2, and retries", async () => {
    expectLogs(outboxFailure("R2 put: simulated outage"));
    const userId = uid("r2down");
    const stub = userMemory(env, userId);
    const r2 = fault("down");
    const restore = await injectBindings(stub, { AUDIO: faultyR2(r2) });
    const text = JSON.stringify(transcription({ userId, summary: "s".repeat(LIMITS.blobPartBytes + 10) }));
    const id = JSON.parse(text).data.conversation_id as string;
    expect((await deliver(text)).status).toBe(200);

    await retryNow(stub);
    const [row] = await outboxItems(stub);
    expect(row).toMatchObject({ conversationId: id, lastError: "R2 put: simulated outage" });
    // The item still holds the raw bytes, byte for byte (read back through the outbox module).
    const kept = await runInDurableObject(stub, (_o, state) => payloadOf(state.storage.sql, row!.seq));
    expect(await sha(kept)).toBe(await sha(new TextEncoder().encode(text)));
    expect(await env.AUDIO.head(transcriptKey(id))).toBeNull();
    // The raw payload goes first, so D1 never points at an object that is not there.
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(0);

    r2.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    const stored = await env.AUDIO.get(transcriptKey(id));
    expect(await sha(await stored!.arrayBuffer())).toBe(await sha(new TextEncoder().encode(text)));
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
  });

  it("rewrites the object whole when an upload's answer was lost after it was stored", async () => {
    expectLogs(outboxFailure("R2 put: simulated lost response after commit"));
    const userId = uid("r2lost");
    const stub = userMemory(env, userId);
    const r2 = fault("lost-ack");
    const restore = await injectBindings(stub, { AUDIO: faultyR2(r2) });
    const text = JSON.stringify(transcription({ userId }));
    const id = JSON.parse(text).data.conversation_id as string;
    expect((await deliver(text)).status).toBe(200);
    await retryNow(stub);
    expect((await outboxItems(stub)).length).toBe(1);
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(0);
    r2.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    const stored = await env.AUDIO.get(transcriptKey(id));
    expect(await stored!.text()).toBe(text);
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
  });
});

describe("an outbox item that can never be delivered", () => {
  it("does not hold back the items behind it, keeps being retried, and is reported as stuck", async () => {
    expectLogs(outboxFailure(/Expected property name/), outboxFailure("R2 put: simulated outage"));
    const userId = uid("poison");
    const stub = userMemory(env, userId);
    const poisonId = uid("poisoned");
    // R2 refuses this one conversation's object forever; everything else works.
    const r2 = fault("down", (args) => args[0] === transcriptKey(poisonId));
    const restore = await injectBindings(stub, { AUDIO: faultyR2(r2) });
    expect((await deliver(JSON.stringify(transcription({ userId, conversationId: poisonId })))).status).toBe(200);
    // More good items than one outbox batch, all queued behind the poisoned one.
    const good: string[] = [];
    for (let i = 0; i < LIMITS.flushBatch + 5; i++) {
      const e = transcription({ userId });
      good.push(e["data"].conversation_id);
      expect((await deliver(JSON.stringify(e))).status).toBe(200);
    }
    // And one whose stored row is unreadable: a poisoned row of another kind. Raw SQL on purpose: this
    // test exists to show the outbox table survives a row its own code could never have written.
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec(
        "INSERT INTO outbox (kind, conversation_id, body, next_attempt_at, created_at) VALUES ('conversation', 'broken', '{not json', 0, ?)",
        Math.floor(Date.now() / 1000),
      );
    });

    await retryNow(stub);
    const left = await outboxItems(stub);
    expect(left.map((r) => r.conversationId)).toEqual([poisonId, "broken"]);
    for (const id of good) expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);

    for (let i = 0; i < STUCK_ATTEMPTS; i++) await retryNow(stub);
    const status = await stub.outboxStatus();
    expect(status.pending).toBe(2);
    expect(Math.abs(status.oldestCreatedAt! - Math.floor(Date.now() / 1000))).toBeLessThan(3600);
    expect(status.maxAttempts).toBeGreaterThanOrEqual(STUCK_ATTEMPTS + 1);
    expect(status.stuck.map((s) => s.conversationId)).toEqual([poisonId, "broken"]);
    expect(status.stuck[0]!.lastError).toBe("R2 put: simulated outage");
    // Still scheduled, at the ceiling: never dropped.
    const alarm = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();

    // Once the cause is fixed, the poisoned event goes through with the next run.
    r2.mode = "up";
    const broken = status.stuck.find((s) => s.conversationId === "broken")!;
    await runInDurableObject(stub, (_o, state) => remove(state.storage, broken.seq));
    await drainWithAlarm(stub);
    await restore();
    expect(await d1Count("conversations", "conversation_id = ?", poisonId)).toBe(1);
    expect((await context(userId))["call_count"]).toBe(LIMITS.flushBatch + 6);
  });
});

describe("a Durable Object call that throws", () => {
  /** The Worker with a USER_MEMORY binding whose stubs fail `recordConversation` as described. */
  function envWithFailingObject(how: "before-commit" | "after-commit"): Env {
    const real = env.USER_MEMORY;
    const namespace = {
      idFromName: (name: string) => real.idFromName(name),
      get: (id: DurableObjectId) => {
        const stub = real.get(id);
        return new Proxy(stub, {
          get(target, prop) {
            if (prop !== "recordConversation") return Reflect.get(target, prop, target);
            return async (...args: unknown[]) => {
              if (how === "after-commit") await (target.recordConversation as (...a: unknown[]) => Promise<unknown>)(...args);
              throw new Error("Network connection lost.");
            };
          },
        });
      },
    } as unknown as Env["USER_MEMORY"];
    return { ...env, USER_MEMORY: namespace };
  }

  async function fetchWith(testEnv: Env, text: string, header: string): Promise<Response> {
    const ctx = createExecutionContext();
    const req = new Request(`${BASE}/webhooks/elevenlabs`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "ElevenLabs-Signature": header },
      body: text,
    });
    const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, testEnv, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  }

  it("answers 503 internal_error with Retry-After and keeps nothing; the redelivery is then stored once", async () => {
    expectLogs(/^unhandled error Error: Network connection lost\./);
    const event = transcription();
    const userId = userIdOf(event)!;
    const id = event["data"].conversation_id as string;
    const text = JSON.stringify(event);
    const header = await signatureHeader(text);

    const res = await fetchWith(envWithFailingObject("before-commit"), text, header);
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("30");
    expect(await res.json()).toMatchObject({ error: { code: "internal_error" } });
    expect((await context(userId))["call_count"]).toBe(0);

    // ElevenLabs retries the same bytes with the same header.
    const retry = await deliver(text, header);
    expect(retry).toMatchObject({ status: 200, body: { status: "stored" } });
    await drainWithAlarm(userMemory(env, userId));
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
    expect((await context(userId))["call_count"]).toBe(1);
  });

  it("answers 503 when the call fails after the object committed; the redelivery is a duplicate, counted once", async () => {
    expectLogs(/^unhandled error Error: Network connection lost\./);
    const event = transcription();
    const userId = userIdOf(event)!;
    const id = event["data"].conversation_id as string;
    const text = JSON.stringify(event);
    const header = await signatureHeader(text);

    expect((await fetchWith(envWithFailingObject("after-commit"), text, header)).status).toBe(503);
    const retry = await deliver(text, header);
    expect(retry).toMatchObject({ status: 200, body: { status: "duplicate" } });
    await drainWithAlarm(userMemory(env, userId));
    expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(1);
    expect((await context(userId))["call_count"]).toBe(1);
  });

  it("re-arms a missing alarm when a redelivery arrives", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const event = transcription();
    const userId = userIdOf(event)!;
    const stub = userMemory(env, userId);
    const d1 = fault("down");
    const restore = await injectBindings(stub, { DB: faultyD1(d1) });
    const text = JSON.stringify(event);
    expect((await deliver(text)).status).toBe(200);
    // As if the first delivery had committed but never managed to set its alarm: background alarm
    // runs are silenced (a run re-arms the alarm while items are pending), the item's next attempt is
    // an hour away (so that a re-armed alarm stays visible instead of firing), and the alarm is removed.
    const nextAttempt = Date.now() + 3_600_000;
    await runInDurableObject(stub, async (instance, state) => {
      const memory = instance as unknown as UserMemory;
      memory.alarm = async () => {};
      // flush() waits for a run already under way, then makes its own (which fails: D1 is down).
      await memory.flush();
      setOutboxDue(state.storage.sql, nextAttempt);
      await state.storage.deleteAlarm();
    });
    expect(await runInDurableObject(stub, (_o, state) => state.storage.getAlarm())).toBeNull();
    expect((await deliver(text)).body["status"]).toBe("duplicate");
    expect(await runInDurableObject(stub, (_o, state) => state.storage.getAlarm())).toBe(nextAttempt);
    await runInDurableObject(stub, (instance) => {
      delete (instance as unknown as { alarm?: unknown }).alarm;
    });
    d1.mode = "up";
    await drainWithAlarm(stub);
    await restore();
    expect(await d1Count("conversations", "conversation_id = ?", event["data"].conversation_id)).toBe(1);
  });

  it("re-arms the alarm itself when a whole outbox run fails", async () => {
    expectLogs(/^outbox run failed; retrying in 60 s: simulated failure of the whole run$/);
    const userId = uid("alarmfail");
    const stub = userMemory(env, userId);
    expect((await deliver(JSON.stringify(transcription({ userId })))).status).toBe(200);
    await runInDurableObject(stub, async (instance) => {
      // Let any background run started by the delivery finish, then make the next one fail whole.
      await (instance as unknown as UserMemory).flush();
      (instance as unknown as { deliverDue: () => Promise<never> }).deliverDue = async () => {
        throw new Error("simulated failure of the whole run");
      };
    });
    // Far ahead, so that only runDurableObjectAlarm runs it.
    await runInDurableObject(stub, (_o, state) => state.storage.setAlarm(Date.now() + 3_600_000));
    const before = Date.now();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = Date.now();
    const alarm = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeGreaterThanOrEqual(before + 60_000);
    expect(alarm!).toBeLessThanOrEqual(after + 60_000);
    await runInDurableObject(stub, (instance) => {
      delete (instance as unknown as { deliverDue?: unknown }).deliverDue;
    });
  });
});
