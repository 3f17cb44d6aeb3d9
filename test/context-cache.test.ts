/**
 * CONTEXT_CACHE_SECONDS: an opt-in, per-isolate cache of memory snapshots for context reads. Its
 * staleness bound is the setting: a write in another isolate is visible at most that many seconds
 * later; a write through this isolate's webhook handler is visible at once.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ContextCache } from "../src/memory/context-cache";
import { dynamicVariablesFor } from "../src/memory/context";
import { parseConfig } from "../src/lib/config";
import type { Env } from "../src/lib/env";
import { ApiError } from "../src/lib/errors";
import { userMemory } from "./objects";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "../src/memory/variables";
import { deleteUser } from "../src/api/users";
import { handlePostCall } from "../src/webhooks/handler";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { userObjectName } from "../src/records/object-names";
import { BASE, nowSeconds, signatureHeader, transcription, uid } from "./helpers";

/** A memory's name, as the cache is keyed. */
const n = (userId: string) => userObjectName(userId);
const snap = (callCount: number): MemorySnapshot => ({ ...EMPTY_SNAPSHOT, callCount });

describe("ContextCache", () => {
  it("serves an entry until exactly its TTL, then forgets it", () => {
    const c = new ContextCache(10);
    expect(c.get(n("u"), 0)).toBeNull();
    c.set(n("u"), snap(1), 1000, 5);
    expect(c.get(n("u"), 1000)?.callCount).toBe(1);
    expect(c.get(n("u"), 5999)?.callCount).toBe(1);
    expect(c.get(n("u"), 6000)).toBeNull();
    expect(c.size).toBe(0);
  });

  it("stores nothing when the TTL is 0, and drops an entry on forget", () => {
    const c = new ContextCache(10);
    c.set(n("u"), snap(1), 0, 0);
    expect(c.get(n("u"), 0)).toBeNull();
    c.set(n("u"), snap(2), 0, 60);
    c.forget(n("u"));
    expect(c.get(n("u"), 1)).toBeNull();
  });

  it("holds at most its bound, evicting the least recently stored", () => {
    const c = new ContextCache(2);
    c.set(n("a"), snap(1), 0, 60);
    c.set(n("b"), snap(2), 0, 60);
    c.set(n("a"), snap(3), 0, 60); // re-stored: now the newest
    c.set(n("c"), snap(4), 0, 60);
    expect(c.size).toBe(2);
    expect(c.get(n("b"), 1)).toBeNull();
    expect(c.get(n("a"), 1)?.callCount).toBe(3);
    expect(c.get(n("c"), 1)?.callCount).toBe(4);
  });
});

describe("CONTEXT_CACHE_SECONDS", () => {
  it("defaults to 0 (off) and accepts 0 to 300 seconds", () => {
    expect(parseConfig({} as Env).contextCacheSeconds).toBe(0);
    expect(parseConfig({ CONTEXT_CACHE_SECONDS: "5" } as Env).contextCacheSeconds).toBe(5);
    for (const bad of ["-1", "abc", "301", "1.5"]) {
      expect(() => parseConfig({ CONTEXT_CACHE_SECONDS: bad } as Env)).toThrow(ApiError);
    }
  });

  const enc = new TextEncoder();
  const input = (userId: string) => {
    const raw = enc.encode(JSON.stringify(transcription({ userId })));
    const record = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() });
    return { record, raw, receivedAt: nowSeconds() };
  };

  it("is off by default: every read sees the latest write", async () => {
    const userId = uid("nocache");
    await userMemory(env, userId).recordConversation(input(userId));
    expect((await dynamicVariablesFor(env, userId))["call_count"]).toBe(1);
    await userMemory(env, userId).recordConversation(input(userId));
    expect((await dynamicVariablesFor(env, userId))["call_count"]).toBe(2);
  });

  it("when on, may serve a snapshot up to the setting old, never older", async () => {
    const cached = { ...env, CONTEXT_CACHE_SECONDS: "30" } as Env;
    const userId = uid("cache");
    await userMemory(env, userId).recordConversation(input(userId));
    const t = Date.now();
    expect((await dynamicVariablesFor(cached, userId, t))["call_count"]).toBe(1);
    // A write that this isolate does not see (as if another isolate took the webhook).
    await userMemory(env, userId).recordConversation(input(userId));
    expect((await dynamicVariablesFor(cached, userId, t + 29_999))["call_count"]).toBe(1);
    expect((await dynamicVariablesFor(cached, userId, t + 30_000))["call_count"]).toBe(2);
  });

  it("when on, a webhook ingested by this isolate is visible to its next read at once", async () => {
    const cached = { ...env, CONTEXT_CACHE_SECONDS: "300" } as Env;
    const userId = uid("cachein");
    await userMemory(env, userId).recordConversation(input(userId));
    expect((await dynamicVariablesFor(cached, userId))["call_count"]).toBe(1);
    const body = JSON.stringify(transcription({ userId }));
    const res = await handlePostCall(
      new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", body, headers: { "ElevenLabs-Signature": await signatureHeader(body) } }),
      cached,
    );
    expect(res.status).toBe(200);
    expect((await dynamicVariablesFor(cached, userId))["call_count"]).toBe(2);
  });

  it("when on, a context read that runs during this isolate's DELETE is not served after the DELETE", async () => {
    const cached = { ...env, CONTEXT_CACHE_SECONDS: "300" } as Env;
    const userId = uid("cachedel");
    await userMemory(env, userId).recordConversation(input(userId));
    // A read racing the erasure: it is answered before the erasure begins (the memory, which it caches)
    // or after (nothing: an object serves nothing once its erasure has begun).
    const reading = dynamicVariablesFor(cached, userId);
    const erasing = deleteUser(cached, userId);
    const during = await reading;
    expect((await erasing).status).toBe(200);
    expect([0, 1]).toContain(during["call_count"]);
    expect((await dynamicVariablesFor(cached, userId))["call_count"]).toBe(0);
  });
});
