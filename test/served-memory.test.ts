/**
 * A user's object keeps what reads serve in memory between writes (src/memory/user-memory.ts
 * `served`). Each test reads first, so the memory is filled, then changes the object through each
 * kind of write, and checks that the next read sees the change at once.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, apiJson, deliverParked, initiation, pendingConversation, phoneNumber, u } from "./api-helpers";
import { context, flush, FIRST_TIME_CONTEXT, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { userMemory } from "./objects";

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
