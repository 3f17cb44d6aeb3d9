/**
 * The ElevenLabs API client (src/storage/elevenlabs-api.ts) against the local stand-in server
 * (test/global/elevenlabs-api.ts): real HTTP on 127.0.0.1, no mocked fetch.
 */
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { ElevenLabsApi, ElevenLabsApiError, apiKeyOf, retryAfterMs } from "../src/elevenlabs/api";
import { FAKE_API_KEY, audioOf, conversationOf } from "./fake-api/data";

const base = inject("elevenLabsApiBase");

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("ElevenLabs API client", () => {
  it("uses the first key of ELEVENLABS_API_KEY and the configured base", async () => {
    expect(apiKeyOf(env)).toBe(FAKE_API_KEY);
    expect(apiKeyOf({ ...env, ELEVENLABS_API_KEY: " , " })).toBeNull();
    expect(ElevenLabsApi.of({ ...env, ELEVENLABS_API_KEY: undefined })).toBeNull();
    const api = ElevenLabsApi.of(env)!;
    const page = await api.listConversations({ agentId: "agent_small", cursor: null, since: null, pageSize: 5 });
    expect(page.conversations.map((c) => c.conversation_id)).toEqual(["small-c0", "small-c1", "small-c2", "small-c3", "small-c4"]);
    expect(page).toMatchObject({ hasMore: true, nextCursor: "5" });
    const last = await api.listConversations({ agentId: "agent_small", cursor: "10", since: null, pageSize: 5 });
    expect(last).toMatchObject({ hasMore: false, nextCursor: null });
    expect(last.conversations).toHaveLength(2);
  });

  it("returns a conversation's body byte for byte, and its audio as a stream", async () => {
    const api = ElevenLabsApi.of(env)!;
    const got = await api.getConversation("small-c3");
    expect(JSON.parse(new TextDecoder().decode(got.raw))).toEqual(conversationOf("small-c3"));
    const audio = await api.audio("aud-70000-client");
    expect(await readAll(audio!)).toEqual(audioOf("aud-70000-client"));
    expect(await api.audio("no-audio-here")).toBeNull();
  });

  it("honours retry-after on a 429 and retries a 5xx with backoff", async () => {
    const waits: number[] = [];
    const api = new ElevenLabsApi(base, FAKE_API_KEY, { backoffBaseMs: 1, sleep: async (ms) => void waits.push(ms) });
    // The stand-in answers `agent_small~429` with one 429 (retry-after: 1), `small-c2~500` with one 500.
    const page = await api.listConversations({ agentId: "agent_small~429", cursor: "3", since: null, pageSize: 2 });
    expect(page.conversations.map((c) => c.conversation_id)).toEqual(["small-c3", "small-c4"]);
    expect(waits).toEqual([1000]);
    const c = await api.getConversation("small-c2~500");
    expect(c.data["conversation_id"]).toBe("small-c2");
    expect(waits).toEqual([1000, 1]);
  });

  it("never repeats the key: not in errors, even when the API's error body quotes it", async () => {
    const wrong = "wrong-key-7f3a9c";
    const api = new ElevenLabsApi(base, wrong, { backoffBaseMs: 1, sleep: async () => {} });
    const err = await api.listConversations({ agentId: "agent_small", cursor: null, since: null, pageSize: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ElevenLabsApiError);
    expect((err as ElevenLabsApiError).status).toBe(401);
    expect((err as Error).message).toContain("[redacted]");
    expect((err as Error).message).not.toContain(wrong);
  });

  it("gives up on a 4xx at once, and after a few attempts on 5xx or an unreachable server", async () => {
    let sleeps = 0;
    const api = new ElevenLabsApi("http://127.0.0.1:9", FAKE_API_KEY, { backoffBaseMs: 1, sleep: async () => void sleeps++ });
    const err = await api.getConversation("x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ElevenLabsApiError);
    expect((err as ElevenLabsApiError).status).toBe(502);
    expect(sleeps).toBe(4);
  });

  it("reads retry-after as seconds or an HTTP date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs("0.5")).toBe(500);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfterMs("soon")).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
  });
});
