/** The core loop through the Worker's fetch, with real local D1, R2 and Durable Objects. */
import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { transcriptKey } from "../src/records/keys";
import { readConversation } from "../src/storage/conversations";
import sipFailure from "./fixtures/call-initiation-failure-sip.json";
import twilioFailure from "./fixtures/call-initiation-failure-twilio.json";
import {
  BASE,
  FIRST_TIME_CONTEXT,
  expectTokenFor,
  apiGet,
  context,
  d1Count,
  flush,
  nowSeconds,
  postWebhook,
  r2Keys,
  signatureHeader,
  storedTurns,
  transcription,
  uid,
  userIdOf,
  withToken,
} from "./helpers";
import { rowDb, rowsEverywhere } from "./shards";

describe("post_call_transcription", () => {
  it("stores the conversation and serves it back as dynamic variables", async () => {
    const event = transcription({ title: "Cracked screen replacement" });
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;

    const res = await postWebhook(event);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "stored",
      type: "post_call_transcription",
      conversation_id: conversationId,
      user_id: userId,
    });

    const vars = await context(userId);
    expect(vars).toMatchObject({
      call_count: 1,
      is_returning_user: true,
      previous_topics: "Cracked screen replacement",
      last_call_summary: event["data"].analysis.transcript_summary,
      last_call_at: new Date(event["data"].metadata.start_time_unix_secs * 1000).toISOString(),
      preferred_name: "Dana",
      order_id: 4471,
      wants_sms_updates: true,
      plan: "free",
    });
    expect(vars).not.toHaveProperty("mentioned_products");
    expect(vars).not.toHaveProperty("callback_time");
    expect(typeof vars["days_since_last_call"]).toBe("number");

    // The alarm may already have delivered it; either way nothing is left pending.
    expect(await flush(userId, conversationId)).toMatchObject({ failed: 0, pending: 0 });
    const row = await (await rowDb(conversationId)).prepare("SELECT * FROM conversations WHERE conversation_id = ?").bind(conversationId).first();
    expect(row).toMatchObject({
      user_id: userId,
      user_id_source: "dynamic_variable",
      agent_id: event["data"].agent_id,
      title: "Cracked screen replacement",
      duration_secs: 212,
      turn_count: 5,
      call_successful: "success",
      transcript_key: transcriptKey(conversationId),
    });
    const stored = await readConversation(env, conversationId);
    expect(stored!.transcript).toHaveLength(5);
    const tools = stored!.transcript[2];
    expect(JSON.parse(tools!.tools!).calls[0].tool_name).toBe("lookup_order");
    expect(tools!.feedback).toBe("like");

    // The raw payload is kept byte for byte in R2.
    const raw = await env.AUDIO.get(transcriptKey(conversationId));
    expect(await raw!.text()).toBe(JSON.stringify(event));
  });

  it("raises the count and puts the newest topic first on a second call", async () => {
    const first = transcription({ title: "Billing question", startedAt: nowSeconds() - 86400 * 3 });
    const userId = userIdOf(first)!;
    const second = transcription({ userId, title: "Delivery delay", startedAt: nowSeconds() - 60, facts: { preferred_name: "Dee" } });
    expect((await postWebhook(first)).status).toBe(200);
    expect((await postWebhook(second)).status).toBe(200);
    const vars = await context(userId);
    expect(vars["call_count"]).toBe(2);
    expect(vars["previous_topics"]).toBe("Delivery delay; Billing question");
    expect(vars["preferred_name"]).toBe("Dee");
    expect(vars["days_since_last_call"]).toBe(0);
  });

  it("treats a redelivery as a duplicate and changes nothing", async () => {
    const event = transcription();
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;
    const body = JSON.stringify(event);
    expect(await (await postWebhook(body)).json()).toMatchObject({ status: "stored" });
    await flush(userId, conversationId);
    const before = await context(userId);

    for (let i = 0; i < 3; i++) {
      const res = await postWebhook(body);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "duplicate", conversation_id: conversationId });
    }
    expect(await flush(userId, conversationId)).toEqual({ delivered: 0, failed: 0, pending: 0 });
    expect(await context(userId)).toEqual(before);
    expect(await d1Count("conversations", "conversation_id = ?", conversationId)).toBe(1);
    expect(await storedTurns("conversation_id = ?", conversationId)).toBe(5);
  });

  it("reads the user id from data.user_id first, then client data, then the dynamic variable", async () => {
    const event = transcription({ userIdIn: "dynamic_variable" });
    const fromVariable = userIdOf(event)!;
    const fromClientData = uid("client");
    const fromData = uid("data");
    event["data"].conversation_initiation_client_data.user_id = fromClientData;
    event["data"].user_id = fromData;
    withToken(event);
    expect(await (await postWebhook(event)).json()).toMatchObject({ user_id: fromData });
    expect((await context(fromData))["call_count"]).toBe(1);
    expect((await context(fromClientData))["call_count"]).toBe(0);
    expect((await context(fromVariable))["call_count"]).toBe(0);

    const second = transcription({ userId: uid("client2"), userIdIn: "client_data" });
    expect(await (await postWebhook(second)).json()).toMatchObject({ user_id: second["data"].conversation_initiation_client_data.user_id });
  });

  it("falls back to the caller's number in E.164 for phone calls", async () => {
    const number = `+1415555${String(Math.floor(Math.random() * 10000)).padStart(4, "0")}`;
    const event = transcription({ userId: null, externalNumber: number.replace("+1", "+1 (").replace("555", "555) ") });
    const body = await (await postWebhook(event)).json<{ user_id: string }>();
    expect(body.user_id).toBe(number);
    expect((await context(number))["call_count"]).toBe(1);
  });

  it("never takes system__caller_id for the caller when there is no phone_call metadata (a client sets it)", async () => {
    const event = transcription({ userId: null });
    const number = `+4420794${String(Math.floor(Math.random() * 100000)).padStart(5, "0")}`;
    event["data"].conversation_initiation_client_data.dynamic_variables.system__caller_id = number;
    expect(await (await postWebhook(event)).json()).toMatchObject({ user_id: null });
    expect((await context(number))["call_count"]).toBe(0);
  });

  it("stores a conversation with no user at all, without touching any memory", async () => {
    const event = transcription({ userId: null });
    const conversationId = event["data"].conversation_id;
    const res = await postWebhook(event);
    expect(await res.json()).toMatchObject({ status: "stored", user_id: null });
    await flush(null, conversationId);
    const row = await (await rowDb(conversationId)).prepare("SELECT user_id FROM conversations WHERE conversation_id = ?").bind(conversationId).first();
    expect(row).toEqual({ user_id: null });
    // A redelivery of an unattributed conversation is still recognised.
    expect(await (await postWebhook(event)).json()).toMatchObject({ status: "duplicate" });
  });

  it("accepts the documentation's shapes: null analysis, null transcript, flat metrics, string timestamp", async () => {
    const event = transcription();
    event["data"].analysis = null;
    event["data"].transcript = null;
    event["event_timestamp"] = String(nowSeconds());
    const userId = userIdOf(event)!;
    expect((await postWebhook(event)).status).toBe(200);
    const vars = await context(userId);
    expect(vars).toMatchObject({ call_count: 1, previous_topics: "", last_call_summary: "" });
    await flush(userId, event["data"].conversation_id);
    expect(await d1Count("conversations", "conversation_id = ? AND turn_count = 0", event["data"].conversation_id)).toBe(1);
  });

  it("answers 400 for a signed body that is not a usable event, and stores nothing", async () => {
    const cases: [string, string][] = [
      ["not json", "invalid_json"],
      ["[1,2]", "invalid_payload"],
      ['{"data":{}}', "invalid_payload"],
      ['{"type":"post_call_transcription","data":{"agent_id":"a"}}', "invalid_payload"],
      ['{"type":"post_call_transcription","data":{"conversation_id":"c"}}', "invalid_payload"],
      ['{"type":"post_call_transcription","data":{"conversation_id":"c\\u0000x","agent_id":"a"}}', "invalid_payload"],
    ];
    const before = await d1Count("conversations");
    for (const [body, code] of cases) {
      const res = await postWebhook(body);
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code } });
    }
    expect(await d1Count("conversations")).toBe(before);
  });
});

describe("rejected deliveries store nothing anywhere", () => {
  const variants: [string, string, (body: string) => Promise<{ body: string; header: string | null }>][] = [
    ["a tampered body", "signature_mismatch", async (b) => ({ body: b.replace("Cracked", "Kracked"), header: await signatureHeader(b) })],
    ["a wrong secret", "signature_mismatch", async (b) => ({ body: b, header: await signatureHeader(b, { secret: "whsec_wrong" }) })],
    ["a stale timestamp", "signature_expired", async (b) => ({ body: b, header: await signatureHeader(b, { t: nowSeconds() - 1801 }) })],
    ["a future timestamp", "signature_in_future", async (b) => ({ body: b, header: await signatureHeader(b, { t: nowSeconds() + 301 }) })],
    ["no header", "signature_missing", async (b) => ({ body: b, header: null })],
    ["a garbled header", "signature_malformed", async (b) => ({ body: b, header: "t=soon;v0=yes" })],
  ];

  it.each(variants)("%s: 401 %s", async (_name, code, make) => {
    const event = transcription({ title: "Cracked screen replacement" });
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;
    const { body, header } = await make(JSON.stringify(event));
    const res = await postWebhook(body, { header });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code } });
    expect(await d1Count("conversations", "conversation_id = ?", conversationId)).toBe(0);
    expect(await r2Keys(`conversations/${conversationId}`)).toEqual([]);
    const ids = await listDurableObjectIds(env.USER_MEMORY);
    const owner = env.USER_MEMORY.idFromName(`user:${userId}`);
    expect(ids.some((id) => id.equals(owner))).toBe(false);
  });
});

describe("other event types", () => {
  it("stores call_initiation_failure (SIP and Twilio shapes) in D1", async () => {
    for (const fixture of [sipFailure, twilioFailure]) {
      const event = structuredClone(fixture) as any;
      event.data.conversation_id = uid("fail");
      const res = await postWebhook(event);
      expect(await res.json()).toMatchObject({ status: "stored", type: "call_initiation_failure" });
      await flush(null, event.data.conversation_id);
    }
    const rows = await rowsEverywhere<{ provider: string }>("SELECT failure_reason, provider, from_number, to_number, sip_status_code, call_sid FROM call_failures");
    expect(rows.sort((a, b) => a.provider.localeCompare(b.provider))).toEqual([
      { failure_reason: "busy", provider: "sip", from_number: "+14155550100", to_number: "+14155550199", sip_status_code: 486, call_sid: "sip_call_7b1c0e" },
      { failure_reason: "no-answer", provider: "twilio", from_number: "+14155550100", to_number: "+447700900123", sip_status_code: null, call_sid: "CA11111111111111111111111111111111" },
    ]);
  });

  it.each(["something_new_in_2027", "answering_machine_detection"])("acknowledges %s with 200, ignored", async (type) => {
    const res = await postWebhook({ type, event_timestamp: nowSeconds(), data: { conversation_id: uid("c"), otlp_traces: {} } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ignored", type });
  });

  // Kept raw, never memory: test/other-events.test.ts.
  it.each(["post_call_transcription_otel", "unredacted_post_call_transcription"])("acknowledges %s with 200, stored", async (type) => {
    const conversationId = uid("c");
    const res = await postWebhook({ type, event_timestamp: nowSeconds(), data: { conversation_id: conversationId, agent_id: "a", otlp_traces: {} } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "stored", type, conversation_id: conversationId });
  });

  it("verifies unknown types too", async () => {
    // A fresh timestamp and a MAC of the right shape, so the refusal can only be the MAC itself (a
    // stale `t` would be refused as expired before the MAC is looked at).
    const event = { type: "something_new", event_timestamp: nowSeconds(), data: { conversation_id: uid("c") } };
    const res = await postWebhook(event, { secret: "whsec_wrong" });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: "signature_mismatch" } });
  });
});

describe("GET /v1/users/:userId/context", () => {
  it("gives a first-time user the defaults, not 404", async () => {
    const userId = uid("new");
    const res = await apiGet(`/v1/users/${userId}/context`);
    expect(res.status).toBe(200);
    const body = await res.json<{ dynamic_variables: Record<string, unknown> }>();
    const { postcall_user_token: token, ...rest } = body.dynamic_variables;
    expect(rest).toEqual(FIRST_TIME_CONTEXT);
    await expectTokenFor(token, userId);
  });

  it("does not create storage for a user who never called", async () => {
    const userId = uid("ghost");
    await apiGet(`/v1/users/${userId}/context`);
    // A table check on purpose: the point is that the read leaves no table behind.
    const { runInDurableObject } = await import("cloudflare:test");
    const stub = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:${userId}`));
    const tables = await runInDurableObject(stub, (_o, state) =>
      state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'").toArray(),
    );
    expect(tables).toEqual([]);
  });

  it.each([
    [null, "api_key_missing"],
    ["wrong-key", "api_key_invalid"],
    ["test-api-key-but-longer", "api_key_invalid"],
  ])("answers 401 for key %j", async (key, code) => {
    const res = await apiGet(`/v1/users/u1/context`, key);
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toContain("Bearer");
    expect(await res.json()).toMatchObject({ error: { code } });
  });

  it("accepts every configured key (rotation) and a lowercase scheme", async () => {
    expect((await apiGet(`/v1/users/u1/context`, "test-api-key-2")).status).toBe(200);
    expect((await apiGet(`/v1/users/u1/context`, null, { headers: { Authorization: "bearer test-api-key" } })).status).toBe(200);
  });

  it("decodes the user id from the path and rejects ids that cannot be", async () => {
    const userId = `user with spaces/and/slashes ${uid("x")}`;
    const event = transcription({ userId });
    await postWebhook(event);
    expect((await context(userId))["call_count"]).toBe(1);
    const bad = await apiGet(`/v1/users/%E0%A4%A/context`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_user_id" } });
    expect((await apiGet(`/v1/users/a%00b/context`)).status).toBe(400);
  });
});

describe("routing", () => {
  it("answers /health", async () => {
    const res = await fetchPath("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });
  it("answers unknown paths with a JSON 404 and wrong methods with 405", async () => {
    const missing = await fetchPath("/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
    const wrong = await fetchPath("/webhooks/elevenlabs");
    expect(wrong.status).toBe(405);
    expect(await wrong.json()).toMatchObject({ error: { code: "method_not_allowed" } });
  });
});

async function fetchPath(path: string, init?: RequestInit) {
  const { SELF } = await import("cloudflare:test");
  return SELF.fetch(`${BASE}${path}`, init);
}

describe("two ways to read a body", () => {
  // A body that declares its length (up to 1 MiB) is read whole and parsed once; a chunked one streams
  // through the scanner (audio from ElevenLabs always does). Both must store and refuse the same way.
  it("stores a chunked transcription like one with a length, and dedupes across the two", async () => {
    const { postChunked } = await import("./audio-helpers");
    const event = transcription({ title: "Sent in pieces" });
    const userId = userIdOf(event)!;
    const bytes = new TextEncoder().encode(JSON.stringify(event));
    const res = await postChunked(bytes);
    expect(await res.json()).toMatchObject({ status: "stored", user_id: userId });
    expect(await (await postWebhook(JSON.stringify(event))).json()).toMatchObject({ status: "duplicate" });
    expect((await context(userId))["previous_topics"]).toBe("Sent in pieces");
    await flush(userId, event["data"].conversation_id);
    expect(new Uint8Array(await (await env.AUDIO.get(transcriptKey(event["data"].conversation_id)))!.arrayBuffer())).toEqual(bytes);
  });

  it("refuses a tampered or malformed body the same way on both paths", async () => {
    const { postChunked } = await import("./audio-helpers");
    const body = JSON.stringify(transcription());
    const signed = new TextEncoder().encode(body);
    const tampered = new TextEncoder().encode(body.replace("Cracked", "Kracked"));
    const header = await signatureHeader(signed);
    for (const res of [await postChunked(tampered, { header }), await postWebhook(new TextDecoder().decode(tampered), { header })]) {
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: "signature_mismatch" } });
    }
    for (const bad of ["{not json", "[1,2]"]) {
      const chunked = await postChunked(new TextEncoder().encode(bad));
      const whole = await postWebhook(bad);
      expect(chunked.status).toBe(400);
      expect(whole.status).toBe(400);
      expect((await chunked.json<any>()).error.code).toBe((await whole.json<any>()).error.code);
    }
  });
});
