/** POST /webhooks/elevenlabs/initiation: a phone caller's dynamic variables while the phone rings (docs/elevenlabs.md#initiation). */
import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { parseInitiation } from "../src/webhooks/initiation";
import { BASE, expectTokenFor, FIRST_TIME_CONTEXT, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { doTables, initiation, phoneNumber } from "./api-helpers";

const enc = new TextEncoder();

/** What a first-time caller gets: every default and every built-in, with the user id variable empty. */
const FIRST_TIME = {
  ...FIRST_TIME_CONTEXT,
  user_id: "",
  postcall_user_token: "",
};

async function callerOf(body: string | object, o: Parameters<typeof initiation>[1] = {}) {
  const res = await initiation(body, o);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toContain("application/json");
  return res.json<{ type: string; dynamic_variables: Record<string, unknown>; user_id?: string }>();
}

describe("parseInitiation", () => {
  const p = (body: string, ct: string | null = null) => parseInitiation(enc.encode(body), ct);
  it("reads JSON, ignoring unknown fields", () => {
    expect(p('{"caller_id":"+14155550100","agent_id":"a","called_number":"+1","call_sid":"CA1","extra":{"x":1}}', "application/json")).toEqual({
      callerId: "+14155550100",
      agentId: "a",
      calledNumber: "+1",
      callSid: "CA1",
      conversationId: null,
    });
  });
  it("reads a form, and sniffs the encoding when the header is missing or wrong", () => {
    const form = "caller_id=%2B14155550100&agent_id=a&call_sid=CA9&unknown=1";
    for (const ct of ["application/x-www-form-urlencoded", null, "text/plain", "application/json"]) {
      expect(p(form, ct)).toMatchObject({ callerId: "+14155550100", agentId: "a", callSid: "CA9" });
    }
    for (const ct of [null, "text/plain", "application/x-www-form-urlencoded; charset=utf-8"]) {
      expect(p('{"caller_id":"+14155550100"}', ct).callerId).toBe("+14155550100");
    }
  });
  it("keeps an unquoted JSON number's digits and drops values of other types", () => {
    expect(p('{"caller_id":14155550100,"agent_id":{"a":1},"call_sid":null}')).toMatchObject({ callerId: "14155550100", agentId: null, callSid: null });
  });
  it.each(["", "   ", "{", "[1,2]", "null", "\u0000\u0001", "%%%"])("yields no caller for %j", (body) => {
    expect(p(body, "application/json").callerId).toBeNull();
  });
});

describe("POST /webhooks/elevenlabs/initiation", () => {
  it("returns a phone caller's topics and facts after their first call (issue 4, done when)", async () => {
    const number = phoneNumber();
    const event = transcription({
      userId: null,
      externalNumber: number,
      title: "Router keeps rebooting",
      facts: { preferred_name: "Ari", plan: "pro" },
      startedAt: nowSeconds() - 600,
    });
    expect(await (await postWebhook(event)).json()).toMatchObject({ status: "stored", user_id: number });

    const body = await callerOf({ caller_id: number, agent_id: event["data"].agent_id, called_number: "+14155550000", call_sid: "CA123" });
    expect(body.type).toBe("conversation_initiation_client_data");
    expect(body.dynamic_variables).toMatchObject({
      previous_topics: "Router keeps rebooting",
      preferred_name: "Ari",
      plan: "pro",
      call_count: 1,
      is_returning_user: true,
      days_since_last_call: 0,
      user_id: "",
    });
    // A number with no app user: no user_id, so ElevenLabs does not label the call with our internal id.
    expect(body).not.toHaveProperty("user_id");
    await flush(number, event["data"].conversation_id);
  });

  it("normalises the caller's number the same way as the post-call webhook", async () => {
    const number = phoneNumber();
    await postWebhook(transcription({ userId: null, externalNumber: number, title: "Billing" }));
    const national = `+1 (${number.slice(2, 5)}) ${number.slice(5, 8)}-${number.slice(8)}`;
    for (const callerId of [national, `tel:${number}`, `00${number.slice(1)}`]) {
      expect((await callerOf({ caller_id: callerId })).dynamic_variables["previous_topics"]).toBe("Billing");
    }
  });

  it("answers an unknown number with every default, 200, and creates no storage", async () => {
    const number = phoneNumber();
    const body = await callerOf({ caller_id: number, agent_id: "agent_x" });
    const { postcall_user_token: token, ...rest } = body.dynamic_variables;
    expect({ ...rest, postcall_user_token: "" }).toEqual(FIRST_TIME);
    // The number is whose memory this call reads: the token vouches for it (for a server tool).
    await expectTokenFor(token, number);
    expect(await doTables(number)).toEqual({});
  });

  it.each([
    ["withheld", { caller_id: "anonymous" }],
    ["empty", { caller_id: "" }],
    ["missing", { agent_id: "a" }],
    ["not a number", { caller_id: "hello" }],
    ["too short", { caller_id: "+123" }],
    ["null", { caller_id: null }],
    ["an object", { caller_id: { n: 1 } }],
  ])("answers a %s caller id with the defaults", async (_name, body) => {
    expect(await callerOf(body)).toEqual({ type: "conversation_initiation_client_data", dynamic_variables: FIRST_TIME });
  });

  it.each([
    ["an empty body", "", null],
    ["invalid JSON", "{not json", "application/json"],
    ["a JSON array", "[1]", "application/json"],
    ["binary", "\u0000\u00ff\u0001", "application/octet-stream"],
  ])("answers %s with the defaults rather than failing the call", async (_name, body, ct) => {
    expect((await callerOf(body, { contentType: ct })).dynamic_variables).toEqual(FIRST_TIME);
  });

  it("reads form-encoded requests, and JSON without a content type", async () => {
    const number = phoneNumber();
    await postWebhook(transcription({ userId: null, externalNumber: number, title: "Form topic" }));
    const encoded = `caller_id=${encodeURIComponent(number)}&agent_id=a&called_number=%2B14155550000&call_sid=CA1`;
    expect((await callerOf(encoded, { contentType: "application/x-www-form-urlencoded" })).dynamic_variables["previous_topics"]).toBe("Form topic");
    // An unescaped "+" in a form is a space; the number is still recognised.
    expect((await callerOf(`caller_id=${number}`, { contentType: "application/x-www-form-urlencoded" })).dynamic_variables["call_count"]).toBe(1);
    expect((await callerOf(JSON.stringify({ caller_id: number }), { contentType: null })).dynamic_variables["call_count"]).toBe(1);
  });

  it.each([
    [null, "api_key_missing"],
    ["wrong", "api_key_invalid"],
  ])("refuses key %j with 401 before reading anything", async (key, code) => {
    const res = await initiation({ caller_id: phoneNumber() }, { key });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code } });
  });

  it("accepts every configured API key (rotation)", async () => {
    expect((await initiation({ caller_id: phoneNumber() }, { key: "test-api-key-2" })).status).toBe(200);
  });

  it("refuses an oversized body with 413", async () => {
    const res = await initiation({ caller_id: phoneNumber(), padding: "x".repeat(20_000) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large" } });
  });

  it("answers only POST", async () => {
    const res = await direct(env, undefined, "GET");
    expect(res.status).toBe(405);
    expect(await res.json()).toMatchObject({ error: { code: "method_not_allowed" } });
  });

  it("completes national numbers with DEFAULT_COUNTRY_CODE", async () => {
    const number = `+44${String(Math.floor(Math.random() * 1e9)).padStart(9, "7")}`.slice(0, 13);
    await postWebhook(transcription({ userId: null, externalNumber: number, title: "UK caller" }));
    const custom = { ...env, DEFAULT_COUNTRY_CODE: "44" };
    const res = await direct(custom, { caller_id: `0${number.slice(3)}` });
    expect(((await res.json()) as any).dynamic_variables.previous_topics).toBe("UK caller");
  });
});

/** Calls the Worker's fetch with a given env (to try settings the test pool does not set). */
async function direct(e: typeof env, body?: object, method = "POST", headers: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`${BASE}/webhooks/elevenlabs/initiation`, {
      method,
      headers: { Authorization: "Bearer test-api-key", "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
    e,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

describe("ALLOWED_SOURCE_IPS on both webhooks", () => {
  const allowlisted = () => ({ ...env, ALLOWED_SOURCE_IPS: "elevenlabs, 2001:db8::/32" });

  it("lets ElevenLabs' egress addresses (and listed blocks) through and refuses others with 403", async () => {
    const e = allowlisted();
    expect((await direct(e, { caller_id: "anonymous" }, "POST", { "CF-Connecting-IP": "34.67.146.145" })).status).toBe(200);
    expect((await direct(e, { caller_id: "anonymous" }, "POST", { "CF-Connecting-IP": "2001:db8:1::9" })).status).toBe(200);
    const refused = await direct(e, { caller_id: "anonymous" }, "POST", { "CF-Connecting-IP": "203.0.113.7" });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "ip_not_allowed" } });
    // No address at all: refused while the allowlist is on.
    expect((await direct(e, { caller_id: "anonymous" })).status).toBe(403);
  });

  it("is checked before the API key and before the post-call signature", async () => {
    const e = allowlisted();
    const ctx = createExecutionContext();
    const event = transcription();
    const res = await worker.fetch(
      new Request(`${BASE}/webhooks/elevenlabs`, {
        method: "POST",
        headers: { "CF-Connecting-IP": "198.51.100.1", "Content-Type": "application/json" },
        body: JSON.stringify(event),
      }),
      e,
      ctx,
    );
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "ip_not_allowed" } });
    const noKey = await direct(e, { caller_id: "anonymous" }, "POST", { "CF-Connecting-IP": "198.51.100.1", Authorization: "" });
    expect(noKey.status).toBe(403);
  });

  it("is off by default: no CF-Connecting-IP needed", async () => {
    expect((await initiation({ caller_id: "anonymous" })).status).toBe(200);
    expect((await initiation({ caller_id: "anonymous" }, { headers: { "CF-Connecting-IP": "203.0.113.7" } })).status).toBe(200);
  });

  it("does not apply to the /v1 API", async () => {
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request(`${BASE}/v1/users/${uid("ip")}/context`, { headers: { Authorization: "Bearer test-api-key", "CF-Connecting-IP": "203.0.113.7" } }),
      allowlisted(),
      ctx,
    );
    expect(res.status).toBe(200);
  });
});
