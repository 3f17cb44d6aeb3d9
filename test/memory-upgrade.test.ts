/** An object written by schema version 1 (before phone links and retention) keeps working after the upgrade. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { restartObject, userMemory } from "./objects";
import { MEMORY_SCHEMA_VERSION } from "../src/objects/user-memory/schema";
import { context, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { api, apiJson, deliverParked, doTables, pendingConversation, phoneNumber, u } from "./api-helpers";

describe("UserMemory schema upgrade", () => {
  it("adds the version 2 tables to a version 1 object on first use, keeping its memory", async () => {
    const userId = uid("v1");
    await pendingConversation(userId, undefined, { title: "From version one", startedAt: nowSeconds() - 100 });
    await deliverParked(userId);
    // This test exists to check the tables themselves (the upgrade), so it reads and rewrites them.
    // Turn the object back into what version 1 wrote, then restart it, as the deploy of version 2 did:
    // the new instance has not checked the tables yet.
    await runInDurableObject(userMemory(env, userId), (_m, state) => {
      state.storage.sql.exec("DROP TABLE phones; DROP TABLE phone_owner; DROP TABLE upkeep; UPDATE profile SET schema_version = 1");
    });
    await restartObject(userMemory(env, userId));
    expect(Object.keys(await doTables(userId))).not.toContain("phones");

    const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
    expect(m.profile.call_count).toBe(1);
    expect(m.phone_numbers).toEqual([]);
    expect(await doTables(userId)).toMatchObject({ phones: 0, phone_owner: 0, upkeep: 1 });
    const version = await runInDurableObject(userMemory(env, userId), (_m, state) =>
      state.storage.sql.exec<{ v: number }>("SELECT schema_version AS v FROM profile").one().v,
    );
    expect(version).toBe(MEMORY_SCHEMA_VERSION);

    // And it takes links and conversations as any new object does.
    const number = phoneNumber();
    await apiJson("PUT", `/v1/users/${u(userId)}/phones/${u(number)}`);
    await postWebhook(transcription({ userId: null, externalNumber: number, title: "By phone", startedAt: nowSeconds() - 10 }));
    expect(await context(userId)).toMatchObject({ call_count: 2, previous_topics: "By phone; From version one" });
    expect(await userMemory(env, userId).flush()).toMatchObject({ failed: 0, pending: 0 });
  });
});

describe("UserMemory schema version 4 (Core v3)", () => {
  it("names, for a forward item a version 3 object queued, the item it waits for", async () => {
    const userId = uid("v3");
    const { id: conversationId } = await pendingConversation(userId, undefined, { title: "Queued by version three" });
    // What version 3 wrote: no after_seq column, and a forward item that waited by failing.
    const seqs = await runInDurableObject(userMemory(env, userId), (_m, state) => {
      const sql = state.storage.sql;
      sql.exec("ALTER TABLE outbox DROP COLUMN after_seq");
      const event = { type: "conversation.stored", conversationId, occurredAt: nowSeconds() };
      sql.exec(
        "INSERT INTO outbox (kind, conversation_id, body, attempts, next_attempt_at, last_error, created_at) VALUES ('forward', ?, ?, 3, ?, 'conversation.stored waits until its conversation item is stored', ?)",
        conversationId, JSON.stringify({ kind: "forward", event, destination: "crm" }), Date.now() + 365 * 86_400_000, nowSeconds(),
      );
      sql.exec("UPDATE profile SET schema_version = 3");
      return sql.exec<{ seq: number; kind: string }>("SELECT seq, kind FROM outbox ORDER BY seq").toArray();
    });
    expect(seqs.map((r) => r.kind)).toEqual(["conversation", "forward"]);
    await restartObject(userMemory(env, userId));
    // The first use upgrades it (this test is about the tables, so it reads them).
    expect((await userMemory(env, userId).outboxStatus()).pending).toBe(2);
    const after = await runInDurableObject(userMemory(env, userId), (_m, state) =>
      state.storage.sql.exec<{ kind: string; after_seq: number | null }>("SELECT kind, after_seq FROM outbox ORDER BY seq").toArray(),
    );
    expect(after).toEqual([
      { kind: "conversation", after_seq: null },
      { kind: "forward", after_seq: seqs[0]!.seq },
    ]);
  });
});

describe("routing of the new paths", () => {
  it.each([
    ["POST", "/v1/users/x/memory"],
    ["DELETE", "/v1/users/x/conversations"],
    ["GET", "/v1/users/x"],
    ["POST", "/v1/users/x"],
    ["PATCH", "/v1/users/x/phones/%2B14155550100"],
    ["DELETE", "/v1/conversations/x"],
    ["PUT", "/webhooks/elevenlabs/initiation"],
  ])("%s %s is 405", async (method, path) => {
    const res = await api(method, path);
    expect(res.status).toBe(405);
    expect(await res.json()).toMatchObject({ error: { code: "method_not_allowed" } });
  });
});
