/**
 * The bounds of a user's Durable Object are enforced on every event, so enforcing them must not
 * cost in proportion to what the object holds: rows read are billed, and scanning a full table per
 * event is the difference between microseconds and milliseconds.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { metered } from "./metered";
import { markSeen } from "../src/objects/shared/dedupe";
import { LIMITS } from "../src/objects/shared/limits";
import { userMemory } from "./objects";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { nowSeconds, transcription, uid } from "./helpers";

const enc = new TextEncoder();

function record(event: object) {
  const raw = enc.encode(JSON.stringify(event));
  const r = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() });
  return { record: r, raw, receivedAt: nowSeconds() };
}

describe("compaction", () => {
  it("keeps the last LIMITS.seenEvents deliveries, still recognises recent ones, and reads only what it deletes", async () => {
    const userId = uid("seen");
    const stub = userMemory(env, userId);
    const first = transcription({ userId });
    await stub.recordConversation(record(first));
    const t = nowSeconds();
    // Fill `seen` past its bound directly, with the dedupe module's own writer: 10,000 real deliveries
    // would make a slow test.
    await runInDurableObject(stub, (_o, state) => {
      state.storage.transactionSync(() => {
        for (let i = 0; i < LIMITS.seenEvents + 5; i++) markSeen(state.storage.sql, "post_call_transcription", `filler_${i}`, t);
      });
    });
    const last = transcription({ userId });
    const rows = await runInDurableObject(stub, (instance, state) =>
      metered(instance, state, (memory) => memory.recordConversation(record(last))),
    );
    // The old statement sorted and scanned the whole table: over 20,000 rows read here.
    expect(rows.read).toBeLessThan(200);
    // A table check on purpose: the bound itself is a row count that no method reports.
    const seen = await runInDurableObject(stub, (_o, state) => ({
      n: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM seen").one().n,
      oldest: state.storage.sql.exec("SELECT 1 FROM seen WHERE conversation_id = ?", first["data"].conversation_id).toArray().length,
      newest: state.storage.sql.exec("SELECT 1 FROM seen WHERE conversation_id = ?", last["data"].conversation_id).toArray().length,
    }));
    expect(seen).toEqual({ n: LIMITS.seenEvents, oldest: 0, newest: 1 });
    expect(await stub.recordConversation(record(last))).toEqual({ duplicate: true });
  });

  it("does not scan the recent conversations or facts of a user who is under their bounds", async () => {
    const userId = uid("light");
    const stub = userMemory(env, userId);
    for (let i = 0; i < 10; i++) await stub.recordConversation(record(transcription({ userId, facts: { [`f_${i}`]: i } })));
    const withFacts = await runInDurableObject(stub, (instance, state) =>
      metered(instance, state, (memory) => memory.recordConversation(record(transcription({ userId, facts: { f_new: 1 } })))),
    );
    const withoutFacts = await runInDurableObject(stub, (instance, state) =>
      metered(instance, state, (memory) => memory.recordConversation(record(transcription({ userId, facts: {} })))),
    );
    // Facts are trimmed only when the event wrote some (reading them all to do so).
    expect(withFacts.read - withoutFacts.read).toBeGreaterThanOrEqual(11);
    // Without facts: a handful of single-row statements plus the recall index's work on this call's
    // own documents (src/memory/recall-index.ts), whatever the user holds: a user with four times as
    // many conversations reads the same.
    expect(withoutFacts.read).toBeLessThan(40);
    const heavyId = uid("heavy");
    const heavy = userMemory(env, heavyId);
    for (let i = 0; i < 40; i++) await heavy.recordConversation(record(transcription({ userId: heavyId, facts: { [`f_${i}`]: i } })));
    const heavyWithout = await runInDurableObject(heavy, (instance, state) =>
      metered(instance, state, (memory) => memory.recordConversation(record(transcription({ userId: heavyId, facts: {} })))),
    );
    expect(heavyWithout.read).toBeLessThanOrEqual(withoutFacts.read + 4);
  });
});
