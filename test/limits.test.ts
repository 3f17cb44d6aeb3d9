/**
 * Limits: the body limit is enforced while reading (an oversized chunked body is refused without
 * being read to its end), and deep nesting, megabyte strings and huge numbers in a signed payload are
 * answered 400 or stored, never 5xx, and never leave an outbox item that can not be delivered.
 */
import { SELF, createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";

import worker from "../src/index";
import type { Env } from "../src/lib/env";
import { parseConfig } from "../src/lib/config";
import { userMemory, ownerOf } from "./objects";
import { readBody } from "../src/webhooks/body";
import { RECORD_LIMITS, jsonDepth } from "../src/records/payload";
import { MAX_TEXT_CHARS } from "../src/records/limits";
import { transcriptKey } from "../src/records/keys";
import { readConversation } from "../src/storage/conversations";
import { BASE, context, d1Count, flush, nowSeconds, postWebhook, signatureHeader, transcription, uid, userIdOf, tokenFor } from "./helpers";
import { homeDb, rowDb } from "./shards";

// Megabyte bodies, bursts and many outbox runs share 2 cores with other work: the default 5 s per test
// is a ceiling against hangs that such a machine can reach. This raises the ceiling; nothing here is timed.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const CHUNK = 64 * 1024;

/** A body of `chunks` chunks of CHUNK bytes that counts how many chunks were pulled from it. */
function countingStream(chunks: number) {
  const counter = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (counter.pulled >= chunks) return controller.close();
        counter.pulled++;
        controller.enqueue(new Uint8Array(CHUNK).fill(0x7b));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, counter };
}

const anyHeader = () => `t=${nowSeconds()},v0=${"0".repeat(64)}`;

async function fetchWithEnv(patch: Partial<Env>, req: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, { ...env, ...patch }, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

describe("body limit, enforced while reading", () => {
  it("readBody stops pulling a chunked body as soon as it passes the limit", async () => {
    const { stream, counter } = countingStream(1000);
    const req = new Request(`${BASE}/x`, { method: "POST", body: stream, duplex: "half" } as RequestInit);
    await expect(readBody(req, 10 * CHUNK)).rejects.toMatchObject({ status: 413, code: "payload_too_large" });
    // The 11th chunk is the one that passes the limit; nothing after it is read.
    expect(counter.pulled).toBe(11);
  });

  it("readBody refuses a declared Content-Length over the limit without reading", async () => {
    const { stream, counter } = countingStream(1000);
    const req = new Request(`${BASE}/x`, {
      method: "POST",
      body: stream,
      duplex: "half",
      headers: { "Content-Length": String(1000 * CHUNK) },
    } as RequestInit);
    await expect(readBody(req, 10 * CHUNK)).rejects.toMatchObject({ status: 413 });
    expect(counter.pulled).toBe(0);
  });

  it("readBody accepts a body of exactly the limit", async () => {
    const { stream } = countingStream(10);
    const req = new Request(`${BASE}/x`, { method: "POST", body: stream, duplex: "half" } as RequestInit);
    expect((await readBody(req, 10 * CHUNK)).byteLength).toBe(10 * CHUNK);
  });

  it("answers 413 over HTTP for a chunked body past MAX_BODY_BYTES, having read little more than the limit", async () => {
    const limit = parseConfig(env).maxBodyBytes;
    const total = 4 * limit;
    const { stream, counter } = countingStream(total / CHUNK);
    const res = await SELF.fetch(`${BASE}/webhooks/elevenlabs`, {
      method: "POST",
      body: stream,
      duplex: "half",
      headers: { "ElevenLabs-Signature": anyHeader() },
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large" } });
    // Whatever the transport buffers on the way, the Worker stopped reading near the limit.
    expect(counter.pulled * CHUNK).toBeLessThan(limit + 4 * 1024 * 1024);
    expect(counter.pulled * CHUNK).toBeLessThan(total);
  });

  it("is configurable with MAX_BODY_BYTES, and a malformed setting is named", async () => {
    const small = { MAX_BODY_BYTES: "4096" };
    const event = transcription();
    const big = JSON.stringify({ ...event, padding: "p".repeat(5000) });
    const res = await fetchWithEnv(
      small,
      new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", body: big, headers: { "ElevenLabs-Signature": await signatureHeader(big) } }),
    );
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large", message: expect.stringContaining("4096") } });

    const fits = JSON.stringify(transcription());
    expect(fits.length).toBeLessThan(4096);
    const ok = await fetchWithEnv(
      small,
      new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", body: fits, headers: { "ElevenLabs-Signature": await signatureHeader(fits) } }),
    );
    expect(ok.status).toBe(200);

    const bad = await fetchWithEnv({ MAX_BODY_BYTES: "16MB" }, new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", body: "{}" }));
    expect(bad.status).toBe(500);
    expect(await bad.json()).toMatchObject({ error: { code: "misconfigured", message: expect.stringContaining("MAX_BODY_BYTES") } });
  });
});

/** The event's JSON text with the placeholder string replaced by raw JSON text. */
function withRaw(event: object, placeholder: string, rawJson: string): string {
  const text = JSON.stringify(event);
  const quoted = JSON.stringify(placeholder);
  expect(text).toContain(quoted);
  return text.replace(quoted, rawJson);
}

const deepArray = (n: number) => "[".repeat(n) + "]".repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);

async function storedAndDelivered(text: string, userId: string | null, conversationId: string) {
  const res = await postWebhook(text);
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ status: "stored" });
  const report = await flush(userId, conversationId);
  expect(report).toMatchObject({ failed: 0, pending: 0 });
  expect(await d1Count("conversations", "conversation_id = ?", conversationId)).toBe(1);
  const raw = await env.AUDIO.get(transcriptKey(conversationId));
  expect(await raw!.text()).toBe(text);
}

describe("deep nesting", () => {
  it("JSON.parse in this workerd handles 10,000 and 1,000,000 levels (it does not recurse)", () => {
    expect(jsonDepth(JSON.parse(deepArray(10_000)), 1e9)).toBe(10_000);
    expect(jsonDepth(JSON.parse(deepObject(1_000_000)), 1e9)).toBe(1_000_000);
  });

  it.each([
    ["an unknown key", (e: any) => (e.data.whatever = "__DEEP__")],
    ["a data-collection value", (e: any) => (e.data.analysis.data_collection_results = { deep: { data_collection_id: "deep", value: "__DEEP__" } })],
    ["a tool call", (e: any) => (e.data.transcript[2].tool_calls = ["__DEEP__"])],
    ["a tool result", (e: any) => (e.data.transcript[2].tool_results = ["__DEEP__"])],
    ["the metadata", (e: any) => (e.data.metadata.deep = "__DEEP__")],
    ["the dynamic variables", (e: any) => (e.data.conversation_initiation_client_data.dynamic_variables.deep = "__DEEP__")],
  ])("stores a transcription with 10,000-deep arrays and objects in %s", async (_where, put) => {
    for (const deep of [deepArray(10_000), deepObject(10_000)]) {
      const event = transcription();
      put(event);
      await storedAndDelivered(withRaw(event, "__DEEP__", deep), userIdOf(event), event["data"].conversation_id);
    }
  });

  it("keeps a marker where a value was too deep, in D1 and memory alike", async () => {
    const event = transcription({ facts: { deep: "__DEEP__", city: "Oslo" } });
    event["data"].transcript[2].tool_calls = ["__DEEP__"];
    const text = JSON.stringify(event).replaceAll('"__DEEP__"', deepArray(10_000));
    const id = event["data"].conversation_id;
    await storedAndDelivered(text, userIdOf(event), id);
    const row = await (await rowDb(id)).prepare("SELECT analysis FROM conversations WHERE conversation_id = ?").bind(id).first<{ analysis: string }>();
    expect(JSON.parse(row!.analysis).data_collection.deep).toEqual({ truncated: expect.stringContaining(`${RECORD_LIMITS.jsonDepth} levels`) });
    const turn = (await readConversation(env, id))!.transcript[2];
    expect(JSON.parse(turn!.tools!).calls[0]).toEqual({ truncated: expect.stringContaining("nested deeper") });
    expect((await context(userIdOf(event)!))["city"]).toBe("Oslo");
  });

  it("stores a call failure whose metadata is 10,000 deep", async () => {
    const id = uid("deepfail");
    const text = withRaw(
      { type: "call_initiation_failure", event_timestamp: nowSeconds(), data: { agent_id: "a", conversation_id: id, failure_reason: "busy", metadata: "__DEEP__" } },
      "__DEEP__",
      deepObject(10_000),
    );
    expect((await postWebhook(text)).status).toBe(200);
    expect(await flush(null, id)).toMatchObject({ failed: 0, pending: 0 });
    expect(await d1Count("call_failures", "conversation_id = ?", id)).toBe(1);
  });

  it.each([
    ["a 10,000-deep array", deepArray(10_000), "invalid_payload"],
    ["a 10,000-deep object", deepObject(10_000), "invalid_payload"],
    ["10,000 levels of data", withRaw({ type: "post_call_transcription", data: "__D__" }, "__D__", deepObject(10_000)), "invalid_payload"],
    ["an unclosed 100,000-deep array", "[".repeat(100_000), "invalid_json"],
  ])("answers 400 for a signed body that is %s", async (_what, text, code) => {
    const res = await postWebhook(text);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code } });
  });
});

describe("megabyte strings and huge numbers", () => {
  const MB3 = 3 * 1024 * 1024;

  it("stores a 3 MB summary, title and message, clipped where they are indexed and whole in R2", async () => {
    const event = transcription({ summary: "s".repeat(MB3), title: "t".repeat(MB3) });
    event["data"].transcript[0].message = "m".repeat(MB3);
    const id = event["data"].conversation_id;
    await storedAndDelivered(JSON.stringify(event), userIdOf(event), id);
    const row = await (await rowDb(id)).prepare("SELECT length(summary) AS s, length(title) AS t FROM conversations WHERE conversation_id = ?")
      .bind(id)
      .first<{ s: number; t: number }>();
    expect(row).toEqual({ s: MAX_TEXT_CHARS, t: RECORD_LIMITS.labelChars });
    const turn = (await readConversation(env, id))!.transcript[0];
    expect(turn!.message!.length).toBe(MAX_TEXT_CHARS);
    const vars = await context(userIdOf(event)!);
    expect(String(vars["last_call_summary"]).length).toBe(MAX_TEXT_CHARS);
    expect(vars["call_count"]).toBe(1);
  });

  it("stores 3 MB strings as a fact value, a fact id and a dynamic variable", async () => {
    const event = transcription({ facts: { ["k".repeat(MB3)]: "v", long: "v".repeat(MB3) } });
    event["data"].conversation_initiation_client_data.dynamic_variables.note = "n".repeat(MB3);
    await storedAndDelivered(JSON.stringify(event), userIdOf(event), event["data"].conversation_id);
  });

  it("stores a call failure with a 3 MB reason and metadata", async () => {
    const id = uid("bigfail");
    const text = JSON.stringify({
      type: "call_initiation_failure",
      data: { agent_id: "a", conversation_id: id, failure_reason: "r".repeat(MB3), metadata: { type: "sip", body: { error_reason: "e".repeat(MB3) } } },
    });
    expect((await postWebhook(text)).status).toBe(200);
    expect(await flush(null, id)).toMatchObject({ failed: 0, pending: 0 });
    const row = await homeDb(id).prepare("SELECT length(failure_reason) AS r, metadata FROM call_failures WHERE conversation_id = ?").bind(id).first<{ r: number; metadata: string }>();
    expect(row!.r).toBe(256);
    expect(JSON.parse(row!.metadata)).toEqual({ truncated: expect.stringContaining("larger than") });
  });

  it("treats timestamps a date cannot hold as absent, and huge durations as zero", async () => {
    const event = transcription();
    event["event_timestamp"] = 1e300;
    event["data"].metadata.start_time_unix_secs = 9e15;
    event["data"].metadata.call_duration_secs = 1e300;
    event["data"].transcript[0].time_in_call_secs = -1e300;
    const userId = userIdOf(event)!;
    // Its start falls back to the time of receipt, which the token must cover.
    event["data"].conversation_initiation_client_data.dynamic_variables.postcall_user_token = tokenFor(userId, nowSeconds());
    await storedAndDelivered(JSON.stringify(event), userId, event["data"].conversation_id);
    const vars = await context(userId);
    expect(vars["call_count"]).toBe(1);
    // Fell back to the time of receipt.
    expect(Math.abs(Date.parse(String(vars["last_call_at"])) / 1000 - nowSeconds())).toBeLessThan(3600);
    const row = await (await rowDb(event["data"].conversation_id)).prepare("SELECT duration_secs, event_timestamp FROM conversations WHERE conversation_id = ?")
      .bind(event["data"].conversation_id)
      .first();
    expect(row).toEqual({ duration_secs: 0, event_timestamp: null });
  });
});

describe("ids that storage could not hold", () => {
  it("refuses a conversation id whose R2 key would pass 1,024 bytes, and delivers the longest that fits", async () => {
    const tooLong = transcription({ conversationId: "€".repeat(256) });
    const res = await postWebhook(tooLong);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_payload" } });

    const fits = transcription({ conversationId: `${"€".repeat(100)}${uid("k")}` });
    await storedAndDelivered(JSON.stringify(fits), userIdOf(fits), fits["data"].conversation_id);
  });

  it("refuses lone surrogates in conversation and user ids", async () => {
    const conv = withRaw(transcription({ conversationId: "__C__" }), "__C__", '"conv\\ud800x"');
    expect((await postWebhook(conv)).status).toBe(400);
    const user = withRaw(transcription({ userId: "__U__" }), "__U__", '"user\\udfffx"');
    const res = await postWebhook(user);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_user_id" } });
  });

  it("delivers a 256-character multi-byte user id all the way", async () => {
    const userId = "ü".repeat(250) + uid("").slice(-6);
    const event = transcription({ userId });
    await storedAndDelivered(JSON.stringify(event), userId, event["data"].conversation_id);
    expect(await userMemory(env, userId).outboxStatus()).toMatchObject({ pending: 0 });
    expect(await ownerOf(env, userId, "x").outboxStatus()).toMatchObject({ pending: 0 });
  });
});
