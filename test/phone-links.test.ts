/** Phone numbers and app users: links learnt from conversations, set and removed through the API. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { userMemory } from "./objects";
import { expectTokenFor, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { api, apiJson, initiation, phoneNumber, u } from "./api-helpers";
import { rowDb } from "./shards";

async function variablesFor(number: string) {
  const res = await initiation({ caller_id: number });
  expect(res.status).toBe(200);
  return res.json<{ dynamic_variables: Record<string, unknown>; user_id?: string }>();
}

/** An app conversation (user id as dynamic variable) that also carries the caller's number. */
async function appCall(userId: string, number: string, o: { title?: string; startedAt?: number } = {}) {
  const event = transcription({ userId, externalNumber: number, title: o.title ?? "App call", startedAt: o.startedAt ?? nowSeconds() - 300 });
  expect(await (await postWebhook(event)).json()).toMatchObject({ status: "stored", user_id: userId });
  await flush(userId, event["data"].conversation_id);
  return event["data"].conversation_id as string;
}

async function phoneOnlyCall(number: string, title: string) {
  const event = transcription({ userId: null, externalNumber: number, title, startedAt: nowSeconds() - 60 });
  const res = await postWebhook(event);
  expect(res.status).toBe(200);
  return { body: await res.json<{ user_id: string; status: string }>(), conversationId: event["data"].conversation_id as string };
}

const memory = (id: string) => apiJson(`GET`, `/v1/users/${u(id)}/memory`);

describe("links learnt from conversations", () => {
  it("recognises the app user when they later call by phone (one conversation with both ids links them)", async () => {
    const userId = uid("app");
    const number = phoneNumber();
    const first = await appCall(userId, number, { title: "Set up the app" });

    // Both directions are recorded.
    expect((await memory(userId)).phone_numbers).toEqual([
      { phone_number: number, linked_at: expect.any(String), via: "conversation", conversation_id: first },
    ]);
    expect((await memory(number)).linked_to).toMatchObject({ user_id: userId, via: "conversation", conversation_id: first });

    // The ringing phone gets the app user's memory and id.
    const ring = await variablesFor(number);
    expect(ring.user_id).toBe(userId);
    expect(ring.dynamic_variables).toMatchObject({ previous_topics: "Set up the app", call_count: 1, user_id: userId });
    // Its token vouches for the app user, whose memory the call reads, not for the number.
    await expectTokenFor(ring.dynamic_variables["postcall_user_token"], userId);

    // A phone-only conversation from that number is remembered for the app user.
    const { body, conversationId } = await phoneOnlyCall(number, "Phone follow-up");
    expect(body).toMatchObject({ status: "stored", user_id: userId });
    await flush(userId, conversationId);
    const row = await (await rowDb(conversationId)).prepare("SELECT user_id, user_id_source, phone_number FROM conversations WHERE conversation_id = ?")
      .bind(conversationId)
      .first();
    expect(row).toEqual({ user_id: userId, user_id_source: "phone_link", phone_number: number });
    expect((await variablesFor(number)).dynamic_variables).toMatchObject({ previous_topics: "Phone follow-up; Set up the app", call_count: 2 });

    // A redelivery of it is still a duplicate.
    expect((await postWebhook(transcription({ conversationId, userId: null, externalNumber: number }))).status).toBe(200);
    expect((await memory(userId)).profile.call_count).toBe(2);
  });

  it("leaves memory gathered under the bare number with the number (the documented rule)", async () => {
    const userId = uid("later");
    const number = phoneNumber();
    const before = await phoneOnlyCall(number, "Before the link");
    expect(before.body.user_id).toBe(number);
    await flush(number, before.conversationId);

    await appCall(userId, number, { title: "In the app" });
    const after = await phoneOnlyCall(number, "After the link");
    expect(after.body.user_id).toBe(userId);

    const numberMemory = await memory(number);
    expect(numberMemory.profile.call_count).toBe(1);
    expect(numberMemory.recent_conversations.map((c: any) => c.title)).toEqual(["Before the link"]);
    expect(numberMemory.linked_to.user_id).toBe(userId);
    const userMemoryView = await memory(userId);
    expect(userMemoryView.profile.call_count).toBe(2);
    expect(userMemoryView.recent_conversations.map((c: any) => c.title).sort()).toEqual(["After the link", "In the app"]);
  });

  it("moves a number to the latest app user, and tells the previous one", async () => {
    const [a, b] = [uid("first"), uid("second")];
    const number = phoneNumber();
    await appCall(a, number, { startedAt: nowSeconds() - 3000 });
    await appCall(b, number, { startedAt: nowSeconds() - 2000 });
    await userMemory(env, number).flush(); // delivers the notice to `a`
    expect((await memory(number)).linked_to.user_id).toBe(b);
    expect((await memory(b)).phone_numbers.map((p: any) => p.phone_number)).toEqual([number]);
    expect((await memory(a)).phone_numbers).toEqual([]);
    expect((await variablesFor(number)).user_id).toBe(b);
  });

  it("settles on the newest link whatever order the webhooks arrive in", async () => {
    const [older, newer] = [uid("older"), uid("newer")];
    const number = phoneNumber();
    await appCall(newer, number, { startedAt: nowSeconds() - 100 });
    await appCall(older, number, { startedAt: nowSeconds() - 5000 }); // arrives later, happened earlier
    expect((await memory(number)).linked_to.user_id).toBe(newer);
    // The loser's own list is corrected once the number's object refused it.
    expect((await memory(older)).phone_numbers).toEqual([]);
    expect((await memory(newer)).phone_numbers).toHaveLength(1);
  });

  it("does not link a user id that is the number itself, nor conversations identified by number only", async () => {
    const number = phoneNumber();
    const event = transcription({ userId: number, externalNumber: number, startedAt: nowSeconds() - 10 });
    await postWebhook(event);
    await flush(number, event["data"].conversation_id);
    const m = await memory(number);
    expect(m.phone_numbers).toEqual([]);
    expect(m.linked_to).toBeNull();
  });
});

describe("PUT and DELETE /v1/users/:userId/phones/:phoneNumber", () => {
  it("links a number (given in any common format), resolves it, and unlinks it", async () => {
    const userId = uid("crm");
    const number = phoneNumber();
    await postWebhook(transcription({ userId, title: "Web chat", startedAt: nowSeconds() - 100 }));
    const formatted = `+1 (${number.slice(2, 5)}) ${number.slice(5, 8)}-${number.slice(8)}`;
    const put = await apiJson("PUT", `/v1/users/${u(userId)}/phones/${u(formatted)}`);
    expect(put).toMatchObject({ user_id: userId, phone_number: number, linked: true });
    // Idempotent.
    expect((await api("PUT", `/v1/users/${u(userId)}/phones/${u(number)}`)).status).toBe(200);

    expect((await memory(userId)).phone_numbers).toMatchObject([{ phone_number: number, via: "api" }]);
    const ring = await variablesFor(number);
    expect(ring.user_id).toBe(userId);
    expect(ring.dynamic_variables["previous_topics"]).toBe("Web chat");

    expect(await apiJson("DELETE", `/v1/users/${u(userId)}/phones/${u(number)}`)).toEqual({ user_id: userId, phone_number: number, removed: true });
    expect(await apiJson("DELETE", `/v1/users/${u(userId)}/phones/${u(number)}`)).toMatchObject({ removed: false });
    expect((await memory(userId)).phone_numbers).toEqual([]);
    const after = await variablesFor(number);
    expect(after).not.toHaveProperty("user_id");
    expect(after.dynamic_variables).toMatchObject({ call_count: 0, user_id: "" });
  });

  it("moves a number between users through the API", async () => {
    const [a, b] = [uid("a"), uid("b")];
    const number = phoneNumber();
    await apiJson("PUT", `/v1/users/${u(a)}/phones/${u(number)}`);
    await apiJson("PUT", `/v1/users/${u(b)}/phones/${u(number)}`);
    expect((await memory(a)).phone_numbers).toEqual([]);
    expect((await memory(b)).phone_numbers.map((p: any) => p.phone_number)).toEqual([number]);
    expect((await variablesFor(number)).user_id).toBe(b);
    // Unlinking from the user who no longer owns it changes nothing.
    expect(await apiJson("DELETE", `/v1/users/${u(a)}/phones/${u(number)}`)).toMatchObject({ removed: false });
    expect((await variablesFor(number)).user_id).toBe(b);
  });

  it("keeps an API unlink when an older conversation's link arrives afterwards", async () => {
    const userId = uid("unlinked");
    const number = phoneNumber();
    await apiJson("PUT", `/v1/users/${u(userId)}/phones/${u(number)}`);
    await apiJson("DELETE", `/v1/users/${u(userId)}/phones/${u(number)}`);
    await appCall(userId, number, { startedAt: nowSeconds() - 3600 }); // happened before the unlink
    expect((await memory(number)).linked_to).toBeNull();
    expect((await memory(userId)).phone_numbers).toEqual([]);
    // A new conversation after the unlink links them again: it is new evidence.
    await appCall(userId, number, { startedAt: nowSeconds() + 5 });
    expect((await memory(number)).linked_to.user_id).toBe(userId);
  });

  it.each([
    ["not a number", "hello", "invalid_phone_number"],
    ["too short", "%2B123", "invalid_phone_number"],
    ["bad encoding", "%E0%A4%A", "invalid_phone_number"],
  ])("answers 400 for a phone number that is %s", async (_name, raw, code) => {
    const res = await api("PUT", `/v1/users/${uid("v")}/phones/${raw}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code } });
  });

  it("refuses to link a number to itself", async () => {
    const number = phoneNumber();
    const res = await api("PUT", `/v1/users/${u(number)}/phones/${u(number)}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_phone_link" } });
  });

  it("needs the API key, and answers 405 for other methods", async () => {
    expect((await api("PUT", `/v1/users/x/phones/${u(phoneNumber())}`, null)).status).toBe(401);
    expect((await api("DELETE", `/v1/users/x/phones/${u(phoneNumber())}`, "nope")).status).toBe(401);
    expect((await api("GET", `/v1/users/x/phones/${u(phoneNumber())}`)).status).toBe(405);
  });
});
