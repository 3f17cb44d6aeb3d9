/** post_call_audio end to end: streamed ingest into R2, the link to its conversation, and the read endpoint. */
import { createExecutionContext, listDurableObjectIds, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/lib/errors";
import { userMemory } from "./objects";
import { AUDIO_PART_BYTES } from "../src/storage/audio-upload";
import { handlePostCall } from "../src/webhooks/handler";
import audioFixture from "./fixtures/audio.json";
import {
  audioBytes,
  audioEvent,
  audioObjectKeys,
  base64Of,
  chunkedStream,
  d1AudioRow,
  postChunked,
  sha256Hex,
} from "./audio-helpers";
import { BASE, apiGet, d1Count, flush, postWebhook, signatureHeader, transcription, uid, userIdOf } from "./helpers";
import { homeDb, rowDb } from "./shards";

const MiB = 1024 * 1024;

async function conversationObjectExists(conversationId: string): Promise<boolean> {
  const id = env.CONVERSATION_LEDGER.idFromName(`conversation:${conversationId}`);
  return (await listDurableObjectIds(env.CONVERSATION_LEDGER)).some((x) => x.equals(id));
}

/** Stores `audio` through the Worker and checks every copy of it: R2, D1, and the read endpoint. */
async function storeAndCheck(audio: Uint8Array, body: Uint8Array, conversationId: string) {
  const res = await postChunked(body);
  expect(res.status, await res.clone().text()).toBe(200);
  expect(await res.json()).toEqual({ status: "stored", type: "post_call_audio", conversation_id: conversationId, bytes: audio.length });
  const expectedSha = await sha256Hex(audio);

  expect(await flush(null, conversationId)).toMatchObject({ failed: 0, pending: 0 });
  const row = await d1AudioRow(conversationId);
  expect(row).toMatchObject({ bytes: audio.length, sha256: expectedSha, agent_id: "agent_01jx3kq2p9fz8b7c6d5e4a3b2c" });
  expect(row!.r2_key).toMatch(/^audio\/[0-9a-f-]{36}\.mp3$/);

  const object = await env.AUDIO.get(row!.r2_key);
  expect(object!.httpMetadata?.contentType).toBe("audio/mpeg");
  expect(object!.size).toBe(audio.length);
  expect(await sha256Hex(await object!.arrayBuffer())).toBe(expectedSha);

  const served = await apiGet(`/v1/conversations/${encodeURIComponent(conversationId)}/audio`);
  expect(served.status).toBe(200);
  expect(served.headers.get("Content-Length")).toBe(String(audio.length));
  expect(await sha256Hex(await served.arrayBuffer())).toBe(expectedSha);
  return row!;
}

describe("post_call_audio ingest", () => {
  it("streams a chunked body of more than 10 MB into a multipart object, byte-exact", async () => {
    const audio = audioBytes(2 * AUDIO_PART_BYTES + 1_234_567, 1);
    const { body, conversationId } = audioEvent(audio);
    expect(body.length).toBeGreaterThan(10 * 1000 * 1000);
    await storeAndCheck(audio, body, conversationId);
  });

  it.each([
    ["empty", 0],
    ["1-byte", 1],
    ["2-byte", 2],
    ["odd-length", 1001],
    ["exactly one part", AUDIO_PART_BYTES],
    ["one part and a byte", AUDIO_PART_BYTES + 1],
  ])("stores %s audio byte-exact", async (_name, n) => {
    const audio = audioBytes(n, n + 7);
    const { body, conversationId } = audioEvent(audio);
    await storeAndCheck(audio, body, conversationId);
  });

  it.each([
    ["full_audio first, conversation_id and type last", { order: ["data", "event_timestamp", "type"], dataOrder: ["full_audio", "conversation_id", "agent_id"] }],
    ["every / escaped as \\/", { escapeSlashes: true }],
    ["whitespace around every token", { pretty: true, dataOrder: ["conversation_id", "full_audio", "agent_id"] }],
  ] as const)("accepts %s", async (_name, options) => {
    const audio = audioBytes(300_001, 3);
    const { body, conversationId } = audioEvent(audio, { ...options } as never);
    if ("escapeSlashes" in options) expect(new TextDecoder().decode(body)).toContain("\\/");
    await storeAndCheck(audio, body, conversationId);
  });

  it("accepts the realistic fixture, sent in one piece", async () => {
    const event = structuredClone(audioFixture);
    event.data.conversation_id = uid("conv_fixture");
    const res = await postWebhook(event);
    expect(await res.json()).toMatchObject({ status: "stored", conversation_id: event.data.conversation_id, bytes: atob(audioFixture.data.full_audio).length });
    const served = await apiGet(`/v1/conversations/${event.data.conversation_id}/audio`);
    const bytes = new Uint8Array(await served.arrayBuffer());
    expect(base64Of(bytes)).toBe(audioFixture.data.full_audio);
  });

  it("keeps one object when the same audio is delivered twice", async () => {
    const audio = audioBytes(50_000, 11);
    const { body, conversationId } = audioEvent(audio);
    const before = (await audioObjectKeys()).length;
    expect(await (await postChunked(body)).json()).toMatchObject({ status: "stored" });
    expect(await (await postChunked(body)).json()).toMatchObject({ status: "duplicate", conversation_id: conversationId });
    expect(await flush(null, conversationId)).toMatchObject({ failed: 0, pending: 0 });
    const keys = await audioObjectKeys();
    expect(keys.length).toBe(before + 1);
    const row = await d1AudioRow(conversationId);
    expect(keys).toContain(row!.r2_key);
    expect(await d1Count("audio", "conversation_id = ?", conversationId)).toBe(1);
  });
});

describe("audio and transcription meet whichever comes first", () => {
  /** Whether the memory's recent conversation says it has audio (undefined: not in this memory). */
  async function hasAudioInMemory(userId: string, conversationId: string): Promise<boolean | undefined> {
    return (await userMemory(env, userId).describe())?.conversations.find((c) => c.conversation_id === conversationId)?.has_audio;
  }

  async function joined(conversationId: string) {
    // The row is in its owner's shard, the audio row in the conversation's home (src/storage/shards.ts).
    const row = await (await rowDb(conversationId)).prepare("SELECT user_id FROM conversations WHERE conversation_id = ?").bind(conversationId).first<{ user_id: string | null }>();
    const audio = await homeDb(conversationId).prepare("SELECT bytes FROM audio WHERE conversation_id = ?").bind(conversationId).first<{ bytes: number }>();
    return row && audio ? { user_id: row.user_id, bytes: audio.bytes } : null;
  }

  it("audio before its transcription", async () => {
    const event = transcription();
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;
    const audio = audioBytes(1000, 5);
    expect((await postChunked(audioEvent(audio, { conversationId }).body)).status).toBe(200);
    await flush(null, conversationId);
    expect((await postWebhook(event)).status).toBe(200);
    await flush(userId, conversationId);
    expect(await joined(conversationId)).toEqual({ user_id: userId, bytes: 1000 });
    expect(await hasAudioInMemory(userId, conversationId)).toBe(true);
  });

  it("audio after its transcription", async () => {
    const event = transcription();
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;
    expect((await postWebhook(event)).status).toBe(200);
    await flush(userId, conversationId);
    expect(await hasAudioInMemory(userId, conversationId)).toBe(false);
    expect((await postChunked(audioEvent(audioBytes(2000, 6), { conversationId }).body)).status).toBe(200);
    await flush(null, conversationId);
    expect(await joined(conversationId)).toEqual({ user_id: userId, bytes: 2000 });
    expect(await hasAudioInMemory(userId, conversationId)).toBe(true);
  });

  it("audio and transcription at the same moment", async () => {
    const event = transcription();
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id;
    const [a, t] = await Promise.all([postChunked(audioEvent(audioBytes(3000, 8), { conversationId }).body), postWebhook(event)]);
    expect([a.status, t.status]).toEqual([200, 200]);
    await Promise.all([flush(null, conversationId), flush(userId, conversationId)]);
    expect(await joined(conversationId)).toEqual({ user_id: userId, bytes: 3000 });
    expect(await hasAudioInMemory(userId, conversationId)).toBe(true);
  });
});

describe("a bad audio request leaves nothing behind", () => {
  const big = audioBytes(AUDIO_PART_BYTES + 500_000, 21); // at least one part is uploaded before the end

  const cases: [string, number, string, () => { body: Uint8Array; conversationId: string; header?: Promise<string> }][] = [
    ["a tampered body", 401, "signature_mismatch", () => {
      const e = audioEvent(big);
      const signed = e.body.slice();
      e.body[e.body.length - 200] = e.body[e.body.length - 200] === 0x41 ? 0x42 : 0x41;
      return { ...e, header: signatureHeader(signed) };
    }],
    ["a wrong secret", 401, "signature_mismatch", () => {
      const e = audioEvent(big);
      return { ...e, header: signatureHeader(e.body, { secret: "whsec_wrong" }) };
    }],
    ["malformed JSON after the audio", 400, "invalid_json", () => {
      const e = audioEvent(big);
      const text = new TextDecoder().decode(e.body).replace(/}}$/, "]}");
      return { body: new TextEncoder().encode(text), conversationId: e.conversationId };
    }],
    ["a body cut off inside the audio", 400, "invalid_json", () => {
      const e = audioEvent(big);
      return { body: e.body.slice(0, e.body.length - 1000), conversationId: e.conversationId };
    }],
    ["bad base64 in the middle", 400, "invalid_audio", () =>
      audioEvent(big, { mapBase64: (b) => b.slice(0, 7_000_000) + "*" + b.slice(7_000_001) })],
    ["base64 of the wrong length", 400, "invalid_audio", () => audioEvent(big, { mapBase64: (b) => b.replace(/=*$/, "") + "AAA" })],
    ["two full_audio values", 400, "invalid_payload", () => {
      const e = audioEvent(big);
      const text = new TextDecoder().decode(e.body).replace(/}}$/, ',"full_audio":"QUJD"}}');
      return { body: new TextEncoder().encode(text), conversationId: e.conversationId };
    }],
    ["no conversation id", 400, "invalid_payload", () => {
      const e = audioEvent(big);
      const text = new TextDecoder().decode(e.body).replace(`"conversation_id":"${e.conversationId}"`, '"conversation":"x"');
      return { body: new TextEncoder().encode(text), conversationId: e.conversationId };
    }],
  ];

  it.each(cases)("%s: %i %s", async (_name, status, code, make) => {
    const { body, conversationId, header } = make();
    const before = await audioObjectKeys();
    const res = await postChunked(body, { header: header ? await header : undefined });
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error: { code } });
    expect(await audioObjectKeys()).toEqual(before);
    expect(await d1Count("audio", "conversation_id = ?", conversationId)).toBe(0);
    expect(await conversationObjectExists(conversationId)).toBe(false);
  });
});

/**
 * The handler called directly, with a bucket that records every multipart upload it starts, so the
 * test can prove each one was aborted (R2 has no "list uploads" in the binding): an aborted upload
 * cannot be completed, whereas a live one can (checked first, so the check itself can fail).
 */
describe("aborted uploads", () => {
  interface Started {
    key: string;
    uploadId: string;
    parts: R2UploadedPart[];
  }

  function recordingBucket(started: Started[]): R2Bucket {
    return {
      put: (...a: Parameters<R2Bucket["put"]>) => env.AUDIO.put(...a),
      delete: (...a: Parameters<R2Bucket["delete"]>) => env.AUDIO.delete(...a),
      createMultipartUpload: async (key: string, options?: R2MultipartOptions) => {
        const upload = await env.AUDIO.createMultipartUpload(key, options);
        const record: Started = { key, uploadId: upload.uploadId, parts: [] };
        started.push(record);
        return {
          key: upload.key,
          uploadId: upload.uploadId,
          uploadPart: async (n: number, value: Parameters<R2MultipartUpload["uploadPart"]>[1]) => {
            const part = await upload.uploadPart(n, value);
            record.parts.push(part);
            return part;
          },
          abort: () => upload.abort(),
          complete: (parts: R2UploadedPart[]) => upload.complete(parts),
        } as R2MultipartUpload;
      },
    } as unknown as R2Bucket;
  }

  async function canComplete(s: Started): Promise<boolean> {
    try {
      await env.AUDIO.resumeMultipartUpload(s.key, s.uploadId).complete(s.parts);
      return true;
    } catch {
      return false;
    }
  }

  async function run(body: ReadableStream<Uint8Array>, header: string, over: Record<string, string> = {}) {
    const started: Started[] = [];
    const ctx = createExecutionContext();
    const request = new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "ElevenLabs-Signature": header }, body });
    let outcome: string;
    try {
      const res = await handlePostCall(request, { ...env, ...over, AUDIO: recordingBucket(started) }, ctx);
      outcome = String(res.status);
    } catch (err) {
      outcome = err instanceof ApiError ? `${err.status} ${err.code}` : `threw ${(err as Error).message}`;
    }
    await waitOnExecutionContext(ctx);
    return { outcome, started };
  }

  it("a live upload can be completed (the check below can fail)", async () => {
    const upload = await env.AUDIO.createMultipartUpload(`audio/control-${uid("c")}.mp3`);
    const part = await upload.uploadPart(1, new Uint8Array(10));
    expect(await canComplete({ key: upload.key, uploadId: upload.uploadId, parts: [part] })).toBe(true);
  });

  it.each([
    ["a bad signature", "401 signature_mismatch", async (body: Uint8Array) => ({ stream: chunkedStream(body), header: await signatureHeader("other") })],
    ["a client that goes away", "threw client went away", async (body: Uint8Array) => ({ stream: chunkedStream(body, 2 * AUDIO_PART_BYTES), header: await signatureHeader(body) })],
  ])("%s aborts the multipart upload it started", async (_name, expected, make) => {
    const audio = audioBytes(3 * AUDIO_PART_BYTES, 31);
    const { body, conversationId } = audioEvent(audio);
    const before = await audioObjectKeys();
    const { stream, header } = await make(body);
    const { outcome, started } = await run(stream, header);
    expect(outcome).toBe(expected);
    expect(started.length).toBe(1);
    expect(started[0]!.parts.length).toBeGreaterThan(0);
    expect(await canComplete(started[0]!)).toBe(false);
    expect(await audioObjectKeys()).toEqual(before);
    expect(await conversationObjectExists(conversationId)).toBe(false);
  });

  it("a body over MAX_BODY_BYTES outside the audio is refused with 413 while reading, and aborted", async () => {
    const audio = audioBytes(2 * AUDIO_PART_BYTES, 41);
    const e = audioEvent(audio);
    const text = new TextDecoder().decode(e.body).replace(/}}$/, `,"note":"${"n".repeat(4096)}"}}`);
    const body = new TextEncoder().encode(text);
    const { outcome, started } = await run(chunkedStream(body), await signatureHeader(body), { MAX_BODY_BYTES: "2048" });
    expect(outcome).toBe("413 payload_too_large");
    expect(started.length).toBe(1);
    expect(await canComplete(started[0]!)).toBe(false);
  });

  it("audio itself is not limited by MAX_BODY_BYTES", async () => {
    const audio = audioBytes(AUDIO_PART_BYTES + 10, 42);
    const { body } = audioEvent(audio);
    const { outcome, started } = await run(chunkedStream(body), await signatureHeader(body), { MAX_BODY_BYTES: "2048" });
    expect(outcome).toBe("200");
    expect(started.length).toBe(1);
  });
});

describe("GET /v1/conversations/:conversationId/audio", () => {
  const audio = audioBytes(1000, 77);
  let conversationId = "";
  let etag = "";

  async function stored(): Promise<string> {
    if (!conversationId) {
      const e = audioEvent(audio);
      expect((await postChunked(e.body)).status).toBe(200);
      conversationId = e.conversationId;
      etag = `"${await sha256Hex(audio)}"`;
    }
    return `/v1/conversations/${conversationId}/audio`;
  }

  const get = async (headers: Record<string, string> = {}) => apiGet(await stored(), undefined, { headers });

  it("serves the whole MP3 with its headers", async () => {
    const res = await get();
    expect(res.status).toBe(200);
    expect(Object.fromEntries(res.headers)).toMatchObject({
      "content-type": "audio/mpeg",
      "content-length": "1000",
      "accept-ranges": "bytes",
      etag,
    });
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(audio);
  });

  it.each([
    ["bytes=0-99", 0, 99],
    ["bytes=900-", 900, 999],
    ["bytes=-10", 990, 999],
    ["bytes=0-0", 0, 0],
    ["bytes=995-2000", 995, 999],
    ["bytes=-5000", 0, 999],
  ])("answers %s with 206 and the exact bytes", async (range, start, end) => {
    const res = await get({ Range: range });
    expect(res.status).toBe(206);
    expect(res.headers.get("Content-Range")).toBe(`bytes ${start}-${end}/1000`);
    expect(res.headers.get("Content-Length")).toBe(String(end - start + 1));
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(audio.slice(start, end + 1));
  });

  it.each(["bytes=1000-", "bytes=5000-6000", "bytes=-0"])("answers %s with 416", async (range) => {
    const res = await get({ Range: range });
    expect(res.status).toBe(416);
    expect(res.headers.get("Content-Range")).toBe("bytes */1000");
    expect(await res.json()).toMatchObject({ error: { code: "range_not_satisfiable" } });
  });

  it.each(["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=abc"])("ignores %s and serves everything", async (range) => {
    const res = await get({ Range: range });
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(1000);
  });

  it("answers If-None-Match with 304, and honours If-Range", async () => {
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const res = await get({ "If-None-Match": inm });
      expect(res.status, inm).toBe(304);
      expect(res.headers.get("ETag")).toBe(etag);
      expect(await res.text()).toBe("");
    }
    expect((await get({ "If-None-Match": '"other"' })).status).toBe(200);
    expect((await get({ Range: "bytes=0-9", "If-Range": etag })).status).toBe(206);
    expect((await get({ Range: "bytes=0-9", "If-Range": '"stale"' })).status).toBe(200);
  });

  it("serves audio whose D1 row is not there (yet), from the conversation's Durable Object", async () => {
    const path = await stored();
    await flush(null, conversationId);
    await homeDb(conversationId).prepare("DELETE FROM audio WHERE conversation_id = ?").bind(conversationId).run();
    const res = await apiGet(path);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(audio);
  });

  it("serves empty audio, and refuses any range of it", async () => {
    const e = audioEvent(new Uint8Array(0));
    expect((await postChunked(e.body)).status).toBe(200);
    const res = await apiGet(`/v1/conversations/${e.conversationId}/audio`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Length")).toBe("0");
    expect((await apiGet(`/v1/conversations/${e.conversationId}/audio`, undefined, { headers: { Range: "bytes=0-" } })).status).toBe(416);
  });

  it("answers 404 for a conversation without audio, 401 without a key, 405 for POST, 400 for a bad id", async () => {
    const missing = await apiGet(`/v1/conversations/${uid("nope")}/audio`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "audio_not_found" } });
    expect((await apiGet(await stored(), null)).status).toBe(401);
    expect((await apiGet(await stored(), undefined, { method: "POST" })).status).toBe(405);
    const bad = await apiGet(`/v1/conversations/%E0%A4%A/audio`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_conversation_id" } });
  });
});
