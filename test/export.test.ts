/**
 * GET /v1/users/:userId/export: every record a user has, as NDJSON, streamed page by page (a user of
 * 1,000 calls is read one D1 page at a time, only as fast as the client reads), audio as links or
 * inline base64 chunks that reassemble to the stored MP3.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { exportUser, EXPORT_PAGE_SIZE, AUDIO_CHUNK_BYTES } from "../src/api/export";
import { audioBytes, audioEvent, postChunked, sha256Hex } from "./audio-helpers";
import { api, phoneNumber, u } from "./api-helpers";
import { API_KEY, BASE, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import failureFixture from "./fixtures/call-initiation-failure-sip.json";
import { userDb, userShardName } from "./shards";

type Line = { type: string; [k: string]: any };

/** The body as text (not Response.text(), which workerd warns about for a non-text/* type). */
const body = async (res: Response) => new TextDecoder().decode(await res.arrayBuffer());

const parse = (text: string): Line[] =>
  text
    .split("\n")
    .filter((l, i, all) => l !== "" || i !== all.length - 1)
    .map((l) => JSON.parse(l) as Line);

/** A user with two calls (one linking a phone number), facts, audio on the second call and a failed call. */
async function seedUser(audio: Uint8Array) {
  const userId = uid("exp");
  const phone = phoneNumber();
  const first = transcription({ userId, title: "Billing question", startedAt: nowSeconds() - 7200, facts: { preferred_name: "Dana" } });
  const second = transcription({ userId, title: "Cracked screen", startedAt: nowSeconds() - 3600, externalNumber: phone, facts: { order_id: 4471 } });
  for (const e of [first, second]) expect((await postWebhook(e)).status).toBe(200);
  const event = audioEvent(audio, { conversationId: second.data.conversation_id });
  expect((await postChunked(event.body)).status).toBe(200);
  const audioConversation = event.conversationId;
  const failure = structuredClone(failureFixture) as any;
  failure.data.conversation_id = uid("conv_failed");
  failure.data.metadata.body.from_number = phone;
  expect((await postWebhook(failure)).status).toBe(200);
  await flush(userId, first.data.conversation_id);
  await flush(null, audioConversation);
  await flush(null, failure.data.conversation_id);
  await flush(userId, second.data.conversation_id);
  return { userId, phone, first: first.data.conversation_id, second: second.data.conversation_id, failure: failure.data.conversation_id };
}

describe("GET /v1/users/:userId/export", () => {
  it("streams the memory, facts, phone links, conversations with transcripts, audio links and call failures as NDJSON", async () => {
    const audio = audioBytes(5000);
    const s = await seedUser(audio);
    const res = await api("GET", `/v1/users/${u(s.userId)}/export`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/x-ndjson; charset=utf-8");
    expect(res.headers.get("Content-Disposition")).toMatch(/^attachment; filename="postcall-export-[A-Za-z0-9._+-]+\.ndjson"/);
    const text = await body(res);
    expect(text.endsWith("\n")).toBe(true);
    const lines = parse(text);
    expect(lines.map((l) => l.type)).toEqual(["export", "memory", "fact", "fact", "phone_link", "conversation", "conversation", "audio", "call_failure", "end"]);
    const [header, memory] = lines;
    expect(header).toMatchObject({ format: "postcall.export.v1", user_id: s.userId, audio: "link" });
    expect(memory).toMatchObject({ user_id: s.userId, profile: { call_count: 2 } });
    expect(memory!["facts"]).toBeUndefined(); // facts are their own records
    const facts = lines.filter((l) => l.type === "fact");
    expect(facts.map((f) => [f["id"], f["value"], f["history"]])).toEqual([
      ["order_id", 4471, []],
      ["preferred_name", "Dana", []],
    ]);
    expect(lines.find((l) => l.type === "phone_link")).toMatchObject({ phone_number: s.phone, via: "conversation", conversation_id: s.second });
    const conversations = lines.filter((l) => l.type === "conversation");
    expect(conversations.map((c) => c["conversation_id"])).toEqual([s.first, s.second]); // oldest first
    expect(conversations[0]!["transcript"]).toHaveLength(5);
    expect(conversations[0]!["transcript"][1].message).toMatch(/cracked screen/);
    expect(conversations[1]).toMatchObject({ has_audio: true, audio: { bytes: 5000, sha256: await sha256Hex(audio) } });
    const link = lines.find((l) => l.type === "audio")!;
    expect(link).toMatchObject({ conversation_id: s.second, bytes: 5000, content_type: "audio/mpeg" });
    expect(link["url"]).toBe(`${BASE}/v1/conversations/${u(s.second)}/audio`);
    expect(link["data"]).toBeUndefined();
    const fetched = await api("GET", new URL(link["url"]).pathname);
    expect(await sha256Hex(await fetched.arrayBuffer())).toBe(link["sha256"]);
    expect(lines.find((l) => l.type === "call_failure")).toMatchObject({ conversation_id: s.failure, from_number: s.phone, failure_reason: "busy" });
    expect(lines.at(-1)).toEqual({
      type: "end",
      user_id: s.userId,
      counts: { fact: 2, phone_link: 1, conversation: 2, audio: 1, audio_chunk: 0, call_failure: 1 },
    });
  });

  it("?audio=inline carries the MP3 as base64 chunks of at most 768 KiB that reassemble to the stored bytes", async () => {
    const audio = audioBytes(2 * AUDIO_CHUNK_BYTES + 12345);
    const s = await seedUser(audio);
    const lines = parse(await body(await api("GET", `/v1/users/${u(s.userId)}/export?audio=inline`)));
    const meta = lines.find((l) => l.type === "audio")!;
    expect(meta).toMatchObject({ conversation_id: s.second, encoding: "base64", chunks: 3, bytes: audio.byteLength });
    const chunks = lines.filter((l) => l.type === "audio_chunk");
    expect(chunks.map((c) => [c["index"], c["offset"]])).toEqual([
      [0, 0],
      [1, AUDIO_CHUNK_BYTES],
      [2, 2 * AUDIO_CHUNK_BYTES],
    ]);
    const parts = chunks.map((c) => Uint8Array.from(atob(c["data"]), (ch) => ch.charCodeAt(0)));
    expect(parts.map((p) => p.byteLength)).toEqual([AUDIO_CHUNK_BYTES, AUDIO_CHUNK_BYTES, 12345]);
    const whole = new Uint8Array(audio.byteLength);
    parts.reduce((off, p) => (whole.set(p, off), off + p.byteLength), 0);
    expect(await sha256Hex(whole)).toBe(meta["sha256"]);
    // The chunks follow their audio record, which follows its conversation.
    const at = lines.findIndex((l) => l.type === "audio");
    expect(lines[at - 1]).toMatchObject({ type: "conversation", conversation_id: s.second });
    expect(lines.slice(at + 1, at + 4).every((l) => l.type === "audio_chunk")).toBe(true);
    expect(lines.at(-1)!["counts"]).toMatchObject({ audio: 1, audio_chunk: 3 });
  });

  it("streams a user of 1,000 calls one D1 page at a time, only as the client reads, in about 30 D1 calls", async () => {
    const userId = uid("thousand");
    // Seeded straight into D1 (format-0 transcripts, as migration 0004 writes them): 1,000 webhooks
    // would prove nothing more here and take minutes.
    const base = nowSeconds() - 10 * 86_400;
    // Into the user's shard (src/storage/shards.ts).
    await userDb(userId).prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
       INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, started_at, duration_secs, title, turn_count, transcript, transcript_key, received_at)
       SELECT printf('%s_c%04d', ?1, i), ?1, 'user_id', 'agent_x', ?2 + i * 60, 30, printf('Call %d', i), 2,
         CAST(printf('[[0,"agent","Hello, call %d",0,null,null],[1,"user","%s",3,null,null]]', i, hex(randomblob(500))) AS BLOB), 'unused', ?2
       FROM n`,
    )
      .bind(userId, base)
      .run();

    // A counting view of the real D1 binding: every statement prepared goes through it.
    const pageQueries: number[] = [];
    let prepared = 0;
    let batches = 0;
    const db = new Proxy(userDb(userId), {
      get(target, prop) {
        if (prop === "batch") batches++;
        if (prop === "prepare") {
          return (sql: string) => {
            prepared++;
            if (/ORDER BY c\.started_at ASC/.test(sql)) pageQueries.push(prepared);
            return target.prepare(sql);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const res = await exportUser(new Request(`${BASE}/v1/users/${u(userId)}/export`, { headers: { Authorization: `Bearer ${API_KEY}` } }), { ...env, [userShardName(userId)]: db }, userId);
    expect(res.status).toBe(200);

    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const lines: Line[] = [];
    /** Reads until `n` more complete lines have arrived. */
    async function take(n: number) {
      const want = lines.length + n;
      while (lines.length < want) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += value;
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buffered.slice(0, nl)));
          buffered = buffered.slice(nl + 1);
        }
      }
    }

    await take(3); // export, memory, the first conversation
    expect(lines.map((l) => l.type)).toEqual(["export", "memory", "conversation"]);
    // The response is already flowing while 19 of the 20 pages have not been asked for.
    expect(pageQueries.length).toBe(1);
    await take(EXPORT_PAGE_SIZE * 5);
    // Pages are fetched as the client reads them, not ahead of it.
    expect(pageQueries.length).toBeGreaterThanOrEqual(5);
    expect(pageQueries.length).toBeLessThanOrEqual(7);
    await take(Infinity);

    const conversations = lines.filter((l) => l.type === "conversation");
    expect(conversations).toHaveLength(1000);
    expect(new Set(conversations.map((c) => c["conversation_id"])).size).toBe(1000);
    expect(conversations[0]!["title"]).toBe("Call 0");
    expect(conversations[999]!["title"]).toBe("Call 999");
    expect(conversations[999]!["transcript"][0].message).toBe("Hello, call 999");
    // Every full page and the empty one that ends the walk; the transcripts in batches of 50: D1
    // calls are subrequests (1,000 per request on the paid plan), about 3 per 100 calls here.
    expect(pageQueries.length).toBe(1000 / EXPORT_PAGE_SIZE + 1);
    expect(batches).toBe(1000 / 50);
    expect(lines.at(-1)).toMatchObject({ type: "end", counts: { conversation: 1000 } });
  });

  it("answers 404 for a user postcall holds nothing about, 400 for an unknown audio mode, 401 without a key", async () => {
    const nobody = await api("GET", `/v1/users/${u(uid("nobody"))}/export`);
    expect(nobody.status).toBe(404);
    expect(((await nobody.json()) as any).error.code).toBe("user_not_found");
    const s = await seedUser(audioBytes(100));
    const bad = await api("GET", `/v1/users/${u(s.userId)}/export?audio=mp3`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe("invalid_audio_mode");
    expect((await api("GET", `/v1/users/${u(s.userId)}/export`, null)).status).toBe(401);
  });

  it("exports what a phone number's own memory holds (its calls before any link, and its failed calls)", async () => {
    const phone = phoneNumber();
    const call = transcription({ userId: null, externalNumber: phone, title: "Phone only" });
    expect((await postWebhook(call)).status).toBe(200);
    await flush(phone, call.data.conversation_id);
    const lines = parse(await body(await api("GET", `/v1/users/${u(phone)}/export`)));
    expect(lines.filter((l) => l.type === "conversation").map((c) => c["title"])).toEqual(["Phone only"]);
    expect(lines.at(-1)!["type"]).toBe("end");
  });
});
