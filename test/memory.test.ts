/** White-box tests of the UserMemory Durable Object: bounds, exact counts, ordering, outbox. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../src/objects/shared/limits";
import { userMemory } from "./objects";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { context, nowSeconds, transcription, uid } from "./helpers";

const enc = new TextEncoder();

function record(event: object) {
  const raw = enc.encode(JSON.stringify(event));
  return { record: normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() }), raw, receivedAt: nowSeconds() };
}

describe("UserMemory", () => {
  it("stays bounded however many calls a user makes, with exact counters", async () => {
    const userId = uid("heavy");
    const stub = userMemory(env, userId);
    const calls = LIMITS.recentConversations + 70;
    const start = nowSeconds() - calls * 3600;
    for (let i = 0; i < calls; i++) {
      const facts = Object.fromEntries(Array.from({ length: 5 }, (_, j) => [`fact_${(i * 5 + j) % 260}`, i]));
      const r = await stub.recordConversation(record(transcription({ userId, title: `Topic ${i}`, startedAt: start + i * 3600, facts })));
      expect(r.duplicate).toBe(false);
    }
    // flush() waits for a delivery run already in progress; runDurableObjectAlarm returns at once
    // when the alarm has just fired by itself, leaving the counts below to race that run.
    await stub.flush();
    const memory = (await stub.describe())!;
    const counts = {
      calls: memory.profile.call_count,
      conversations: memory.conversations.length,
      facts: memory.facts.length,
      outbox: (await stub.outboxStatus()).pending,
      // A table check on purpose: no method reports payload parts, and none may outlive its delivered item.
      blobs: await runInDurableObject(stub, (_o, state) =>
        state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox_blobs").one().n,
      ),
    };
    expect(counts).toEqual({ calls, conversations: LIMITS.recentConversations, facts: LIMITS.facts, outbox: 0, blobs: 0 });
    const vars = await context(userId);
    expect(vars["call_count"]).toBe(calls);
    expect(String(vars["previous_topics"]).startsWith(`Topic ${calls - 1}; Topic ${calls - 2}`)).toBe(true);
    expect(String(vars["previous_topics"]).length).toBeLessThanOrEqual(500);
  });

  it("keeps the latest fact and summary by when the call happened, not when its webhook arrived", async () => {
    const userId = uid("order");
    const stub = userMemory(env, userId);
    const t = nowSeconds() - 1000;
    await stub.recordConversation(record(transcription({ userId, title: "Newer", summary: "Newer call.", startedAt: t, facts: { city: "Paris" } })));
    await stub.recordConversation(record(transcription({ userId, title: "Older", summary: "Older call.", startedAt: t - 500, facts: { city: "Lyon" } })));
    const vars = await context(userId);
    expect(vars).toMatchObject({
      city: "Paris",
      last_call_summary: "Newer call.",
      previous_topics: "Newer; Older",
      call_count: 2,
      last_call_at: new Date(t * 1000).toISOString(),
    });
  });

  it("splits a large raw payload into parts and reassembles it byte for byte", async () => {
    const userId = uid("big");
    const event = transcription({ userId, summary: "x".repeat(LIMITS.blobPartBytes * 2 + 123) });
    const input = record(event);
    const stub = userMemory(env, userId);
    await stub.recordConversation(input);
    await stub.flush();
    const stored = await env.AUDIO.get(`conversations/${encodeURIComponent(event["data"].conversation_id)}/transcript.json`);
    const digest = async (b: ArrayBuffer | Uint8Array) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))].join(",");
    const bytes = await stored!.arrayBuffer();
    expect(bytes.byteLength).toBe(input.raw.byteLength);
    expect(await digest(bytes)).toBe(await digest(input.raw));
  });
});
