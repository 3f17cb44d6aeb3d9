/**
 * Audio backfill (src/memory/audio-backfill.ts): a transcription that says `has_audio` queues a fetch
 * from ElevenLabs' API (the local stand-in) AUDIO_BACKFILL_AFTER_SECONDS later; if no audio webhook
 * came by then, the MP3 is streamed into R2 byte for byte and a later audio webhook is a duplicate.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { audioWebhookFailed, transcriptionArrived } from "../src/memory/arrival";
import { parseEnvelope } from "../src/records/payload";
import { api } from "./api-helpers";
import { audioEvent, audioObjectKeys, postChunked, sha256Hex } from "./audio-helpers";
import { audioOf } from "./fake-api/data";
import { outboxItems } from "./faults";
import { nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { conversationMemory, makeOutboxDue, userMemory } from "./objects";
import { expectLogs, outboxFailure } from "./logs";

function withAudio(conversationId: string, userId = uid("user")) {
  const event = transcription({ conversationId, userId });
  event["data"].has_audio = true;
  event["data"].has_user_audio = true;
  event["data"].has_response_audio = true;
  return event;
}

/** "The delay passes": every queued item is made due, then the object's alarm runs. */
async function timePasses(conversationId: string): Promise<void> {
  const stub = conversationMemory(env, conversationId);
  await runInDurableObject(stub, (_i, state) => makeOutboxDue(state.storage.sql));
  await runDurableObjectAlarm(stub);
}

async function audioOfPostcall(conversationId: string): Promise<Uint8Array | null> {
  const res = await api("GET", `/v1/conversations/${encodeURIComponent(conversationId)}/audio`);
  if (res.status !== 200) {
    await res.arrayBuffer();
    return null;
  }
  return new Uint8Array(await res.arrayBuffer());
}

describe("audio backfill", () => {
  it("fetches a missing audio webhook's MP3 after the delay, byte for byte; a later audio webhook is a duplicate", async () => {
    const conversationId = uid("aud-300000");
    const userId = uid("user");
    const before = Date.now();
    expect((await postWebhook(withAudio(conversationId, userId))).status).toBe(200);

    const queued = await outboxItems(conversationMemory(env, conversationId));
    expect(queued.map((q) => q.kind)).toEqual(["audio_backfill"]);
    expect(queued[0]!.nextAttemptAt).toBeGreaterThanOrEqual(before + 900_000);
    expect(await audioOfPostcall(conversationId)).toBeNull();

    await timePasses(conversationId);
    expect(audioOf(conversationId)?.byteLength).toBe(300_000);
    expect(await audioOfPostcall(conversationId)).toEqual(audioOf(conversationId));
    await conversationMemory(env, conversationId).flush();
    await userMemory(env, userId).flush();
    const memory = await userMemory(env, userId).describe();
    expect(memory?.conversations.find((c) => c.conversation_id === conversationId)?.has_audio).toBe(true);

    const keys = await audioObjectKeys();
    const late = audioEvent(audioOf(conversationId)!, { conversationId });
    const res = await postChunked(late.body);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "duplicate" });
    await conversationMemory(env, conversationId).flush(); // its extra copy is deleted
    expect((await audioObjectKeys()).sort()).toEqual(keys.sort());
  });

  it("does nothing when the audio webhook came first", async () => {
    const conversationId = uid("aud-4000");
    const audio = new Uint8Array(4000).fill(7);
    expect((await postChunked(audioEvent(audio, { conversationId }).body)).status).toBe(200);
    expect((await postWebhook(withAudio(conversationId))).status).toBe(200);
    const queued = await outboxItems(conversationMemory(env, conversationId));
    expect(queued.map((q) => q.kind)).not.toContain("audio_backfill");
    await timePasses(conversationId);
    expect(await audioOfPostcall(conversationId)).toEqual(audio);
  });

  it("retries a stream that dies midway, through R2 multipart parts, and stores it whole", async () => {
    expectLogs(outboxFailure(/The audio stream from ElevenLabs broke off after \d+ bytes/));
    // 12 MB: more than two 5 MiB parts. The stand-in's first answer for a `die-` id ends halfway.
    const conversationId = uid("die-12000000");
    expect((await postWebhook(withAudio(conversationId))).status).toBe(200);
    await timePasses(conversationId);
    const [afterFailure] = await outboxItems(conversationMemory(env, conversationId));
    expect(afterFailure).toMatchObject({ kind: "audio_backfill", attempts: 1 });
    expect(await audioOfPostcall(conversationId)).toBeNull();
    await timePasses(conversationId);
    const stored = await audioOfPostcall(conversationId);
    expect(stored?.byteLength).toBe(12_000_000);
    expect(await sha256Hex(stored!)).toBe(await sha256Hex(audioOf(conversationId)!));
  });

  it("POST /v1/conversations/:id/audio/backfill does it on demand", async () => {
    expectLogs(/^audio backfill of \S+: ElevenLabs has no audio for it$/);
    const conversationId = uid("aud-120000");
    expect(audioOf(conversationId)?.byteLength).toBe(120_000);
    const first = await api("POST", `/v1/conversations/${conversationId}/audio/backfill`);
    expect(first.status).toBe(201);
    const body = await first.json<{ status: string; bytes: number; sha256: string }>();
    expect(body).toMatchObject({ status: "stored", bytes: 120000, sha256: await sha256Hex(audioOf(conversationId)!) });
    const again = await api("POST", `/v1/conversations/${conversationId}/audio/backfill`);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ status: "already_stored", sha256: body.sha256 });
    expect(await audioOfPostcall(conversationId)).toEqual(audioOf(conversationId));

    const missing = await api("POST", `/v1/conversations/${uid("nothing")}/audio/backfill`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "audio_not_available" } });
    const died = await api("POST", `/v1/conversations/${uid("die-70000")}/audio/backfill`);
    expect(died.status).toBe(502);
    expect(await died.json()).toMatchObject({ error: { code: "elevenlabs_unavailable" } });
  });

  it("a failed audio webhook brings the backfill forward to now", async () => {
    const conversationId = uid("aud-5000");
    expect((await postWebhook(withAudio(conversationId))).status).toBe(200);
    const [later] = await outboxItems(conversationMemory(env, conversationId));
    expect(later!.nextAttemptAt).toBeGreaterThan(Date.now() + 800_000);
    await audioWebhookFailed(env, conversationId, "agent_x");
    const [now] = await outboxItems(conversationMemory(env, conversationId));
    expect(now!.nextAttemptAt).toBeLessThanOrEqual(Date.now());
  });

  it("queues nothing without has_audio, with AUDIO_BACKFILL=off, or without ELEVENLABS_API_KEY", async () => {
    const plain = uid("aud-5000");
    expect((await postWebhook(transcription({ conversationId: plain }))).status).toBe(200);
    expect(await outboxItems(conversationMemory(env, plain))).toEqual([]);

    for (const patch of [{ ELEVENLABS_API_KEY: "" }, { AUDIO_BACKFILL: "off" }]) {
      const conversationId = uid("aud-5000");
      const raw = new TextEncoder().encode(JSON.stringify(withAudio(conversationId)));
      await transcriptionArrived({ ...env, ...patch }, parseEnvelope(raw), raw, { origin: "webhook", receivedAt: nowSeconds() });
      expect(await outboxItems(conversationMemory(env, conversationId))).toEqual([]);
    }
    const always = uid("aud-5000");
    const raw = new TextEncoder().encode(JSON.stringify(transcription({ conversationId: always })));
    await transcriptionArrived({ ...env, AUDIO_BACKFILL: "always" }, parseEnvelope(raw), raw, { origin: "webhook", receivedAt: nowSeconds() });
    expect((await outboxItems(conversationMemory(env, always))).map((q) => q.kind)).toEqual(["audio_backfill"]);
  });
});
