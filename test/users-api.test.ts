/** GET memory, the conversation list (pagination), one conversation, and hostile ids on every /v1 route. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { userMemory } from "./objects";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { conversationPrefix } from "../src/records/keys";
import audioFixture from "./fixtures/audio.json";
import { d1Count, flush, nowSeconds, postWebhook, r2Keys, storedTurns, transcription, uid } from "./helpers";
import { api, apiJson, phoneNumber, u } from "./api-helpers";
import { homeDb } from "./shards";

const enc = new TextEncoder();

/** Records a conversation straight into the user's object (as the webhook would) and returns its id. */
async function record(userId: string, startedAt: number, conversationId = uid("c")) {
  const event = transcription({ userId, conversationId, startedAt, title: `T ${conversationId}` });
  const raw = enc.encode(JSON.stringify(event));
  const r = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() });
  await userMemory(env, userId).recordConversation({ record: r, raw, receivedAt: nowSeconds() });
  return conversationId;
}

async function walk(userId: string, limit?: number) {
  const ids: string[] = [];
  const pages: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 500; i++) {
    const q = new URLSearchParams();
    if (limit !== undefined) q.set("limit", String(limit));
    if (cursor !== null) q.set("cursor", cursor);
    const page: any = await apiJson("GET", `/v1/users/${u(userId)}/conversations?${q}`);
    ids.push(...page.conversations.map((c: any) => c.conversation_id));
    pages.push(page.conversations.length);
    cursor = page.next_cursor;
    if (cursor === null) break;
  }
  return { ids, pages };
}

describe("GET /v1/users/:userId/conversations", () => {
  it("walks 120 conversations newest first, without gaps or repeats, equal start times included", async () => {
    const userId = uid("walker");
    const base = nowSeconds() - 86_400;
    const made: { id: string; startedAt: number }[] = [];
    for (let i = 0; i < 120; i++) {
      // Groups of three conversations share a start time: the id breaks the tie.
      const startedAt = base + Math.floor(i / 3) * 60;
      made.push({ id: await record(userId, startedAt), startedAt });
    }
    await userMemory(env, userId).flush();
    expect(await d1Count("conversations", "user_id = ?", userId)).toBe(120);
    const expected = [...made]
      .sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .map((m) => m.id);

    for (const limit of [7, 1, 100, undefined]) {
      const { ids, pages } = await walk(userId, limit);
      expect(ids).toEqual(expected);
      expect(new Set(ids).size).toBe(120);
      const size = limit ?? 20;
      expect(pages.slice(0, -1).every((n) => n === size)).toBe(true);
      expect(pages.length).toBe(Math.ceil(120 / size));
    }
  });

  it("keeps its place when newer conversations arrive during the walk", async () => {
    const userId = uid("moving");
    const base = nowSeconds() - 10_000;
    for (let i = 0; i < 10; i++) await record(userId, base + i);
    await userMemory(env, userId).flush();
    const first: any = await apiJson("GET", `/v1/users/${u(userId)}/conversations?limit=4`);
    await record(userId, base + 100);
    await userMemory(env, userId).flush();
    const rest = [];
    let cursor = first.next_cursor;
    while (cursor) {
      const page: any = await apiJson("GET", `/v1/users/${u(userId)}/conversations?limit=4&cursor=${cursor}`);
      rest.push(...page.conversations);
      cursor = page.next_cursor;
    }
    const seen = [...first.conversations, ...rest].map((c: any) => c.started_at);
    expect(seen).toHaveLength(10);
    expect(seen).toEqual([...seen].sort().reverse());
  });

  it("lists the summary of each conversation, with has_audio", async () => {
    const startedAt = nowSeconds() - 50;
    const event = transcription({ startedAt, title: "Listed" });
    const userId = event["data"].conversation_initiation_client_data.dynamic_variables.user_id;
    const conversationId = event["data"].conversation_id;
    await postWebhook(event);
    await flush(userId, conversationId);
    await postWebhook({ ...audioFixture, data: { ...audioFixture.data, conversation_id: conversationId } });
    // The audio's D1 row is written by its conversation object's outbox.
    await flush(null, conversationId);
    const page: any = await apiJson("GET", `/v1/users/${u(userId)}/conversations`);
    expect(page).toEqual({
      user_id: userId,
      next_cursor: null,
      conversations: [
        {
          conversation_id: conversationId,
          agent_id: event["data"].agent_id,
          agent_name: "Acme Support",
          status: "done",
          started_at: new Date(startedAt * 1000).toISOString(),
          duration_secs: 212,
          title: "Listed",
          summary: event["data"].analysis.transcript_summary,
          call_successful: "success",
          user_id_source: "dynamic_variable",
          phone_number: null,
          phone_direction: null,
          turn_count: 5,
          has_audio: true,
        },
      ],
    });
  });

  it("answers an empty list (200) for a user with no conversations", async () => {
    expect(await apiJson("GET", `/v1/users/${uid("nobody")}/conversations`)).toEqual({ user_id: expect.any(String), conversations: [], next_cursor: null });
  });

  it.each([
    ["limit=0", "invalid_limit"],
    ["limit=101", "invalid_limit"],
    ["limit=abc", "invalid_limit"],
    ["cursor=", "invalid_cursor"],
    ["cursor=bm9wZQ", "invalid_cursor"],
    ["cursor=%25%25", "invalid_cursor"],
  ])("answers 400 for %s", async (query, code) => {
    const res = await api("GET", `/v1/users/u1/conversations?${query}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code } });
  });
});

describe("GET /v1/conversations/:conversationId", () => {
  it("returns the conversation with its transcript, analysis and audio", async () => {
    const number = phoneNumber();
    const startedAt = nowSeconds() - 500;
    const event = transcription({ startedAt, externalNumber: number });
    const userId = event["data"].conversation_initiation_client_data.dynamic_variables.user_id;
    const conversationId = event["data"].conversation_id;
    await postWebhook(event);
    await flush(userId, conversationId);

    const body: any = await apiJson("GET", `/v1/conversations/${u(conversationId)}`);
    expect(body).toMatchObject({
      conversation_id: conversationId,
      user_id: userId,
      user_id_source: "dynamic_variable",
      agent_name: "Acme Support",
      started_at: new Date(startedAt * 1000).toISOString(),
      duration_secs: 212,
      title: "Cracked screen replacement",
      termination_reason: "end_call tool was called.",
      main_language: "en",
      phone: { number, direction: "inbound", provider: "twilio" },
      turn_count: 5,
      has_audio: false,
      audio: null,
    });
    expect(body.analysis).toEqual({
      evaluation: { resolved: { result: "success", rationale: "A replacement was arranged." } },
      data_collection: { preferred_name: "Dana", order_id: 4471, wants_sms_updates: true, mentioned_products: ["Phone X"] },
    });
    expect(body.transcript).toHaveLength(5);
    expect(body.transcript[0]).toEqual({
      index: 0,
      role: "agent",
      message: "Hi, this is Acme support. How can I help you today?",
      time_in_call_secs: 0,
      tools: null,
      feedback: null,
    });
    expect(body.transcript[2].tools.calls[0].tool_name).toBe("lookup_order");
    expect(body.transcript[2].feedback).toBe("like");
    expect(body.transcript[3]).toMatchObject({ role: "user", message: null });

    await postWebhook({ ...audioFixture, data: { ...audioFixture.data, conversation_id: conversationId } });
    // The audio's D1 row is written by its conversation object's outbox.
    await flush(null, conversationId);
    const withAudio: any = await apiJson("GET", `/v1/conversations/${u(conversationId)}`);
    expect(withAudio.has_audio).toBe(true);
    expect(withAudio.audio).toMatchObject({ bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it("reports audio recorded under any R2 key (the audio writer records its own)", async () => {
    const event = transcription({ startedAt: nowSeconds() - 5 });
    const userId = event["data"].conversation_initiation_client_data.dynamic_variables.user_id;
    const conversationId = event["data"].conversation_id;
    await postWebhook(event);
    await flush(userId, conversationId);
    await homeDb(conversationId).prepare("INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at) VALUES (?, 'a', ?, 3, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', ?)")
      .bind(conversationId, `audio/elsewhere/${uid("k")}.mp3`, nowSeconds())
      .run();
    expect(((await apiJson("GET", `/v1/conversations/${u(conversationId)}`)) as any).has_audio).toBe(true);
  });

  it("answers 404 conversation_not_found for an unknown id", async () => {
    const res = await api("GET", `/v1/conversations/${uid("missing")}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "conversation_not_found" } });
  });
});

describe("GET /v1/users/:userId/memory", () => {
  it("shows everything the memory holds: counters, recent conversations, facts with provenance, links", async () => {
    const number = phoneNumber();
    const event = transcription({ startedAt: nowSeconds() - 120, externalNumber: number, title: "Memory view" });
    const userId = event["data"].conversation_initiation_client_data.dynamic_variables.user_id;
    const conversationId = event["data"].conversation_id;
    await postWebhook(event);
    await flush(userId, conversationId);
    const m: any = await apiJson("GET", `/v1/users/${u(userId)}/memory`);
    const at = new Date((nowSeconds() - 120) * 1000);
    expect(m.user_id).toBe(userId);
    expect(m.profile).toMatchObject({
      call_count: 1,
      total_duration_secs: 212,
      last_conversation_id: conversationId,
      last_call_summary: event["data"].analysis.transcript_summary,
    });
    expect(Math.abs(Date.parse(m.profile.last_call_at) - at.getTime())).toBeLessThan(5000);
    expect(m.recent_conversations).toEqual([
      {
        conversation_id: conversationId,
        started_at: m.profile.last_call_at,
        duration_secs: 212,
        title: "Memory view",
        summary: event["data"].analysis.transcript_summary,
        call_successful: "success",
        received_at: expect.any(String),
      },
    ]);
    expect(m.facts.map((f: any) => [f.id, f.value, f.conversation_id])).toEqual([
      ["mentioned_products", ["Phone X"], conversationId],
      ["order_id", 4471, conversationId],
      ["preferred_name", "Dana", conversationId],
      ["wants_sms_updates", true, conversationId],
    ]);
    expect(m.facts[0].collected_at).toBe(m.profile.last_call_at);
    expect(m.phone_numbers).toEqual([{ phone_number: number, linked_at: m.profile.last_call_at, via: "conversation", conversation_id: conversationId }]);
    expect(m.linked_to).toBeNull();
    expect(m.pending_deliveries).toBe(0);
    expect(m.erasing_since).toBeNull();
  });

  it("answers 404 user_not_found when nothing was ever stored, and creates nothing", async () => {
    const userId = uid("never");
    const res = await api("GET", `/v1/users/${userId}/memory`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "user_not_found" } });
    expect((await api("GET", `/v1/users/${userId}/memory`)).status).toBe(404);
  });
});

describe("every /v1 route", () => {
  const routes: [string, (id: string) => string][] = [
    ["GET", (id) => `/v1/users/${id}/context`],
    ["GET", (id) => `/v1/users/${id}/memory`],
    ["GET", (id) => `/v1/users/${id}/conversations`],
    ["GET", (id) => `/v1/users/${id}/export`],
    ["DELETE", (id) => `/v1/users/${id}`],
    ["PUT", (id) => `/v1/users/${id}/phones/%2B14155550100`],
    ["DELETE", (id) => `/v1/users/${id}/phones/%2B14155550100`],
    ["GET", (id) => `/v1/conversations/${id}`],
  ];

  it.each(routes)("%s %s needs a valid API key (401)", async (method, path) => {
    for (const key of [null, "wrong-key", ""]) {
      const res = await api(method, path("u1"), key);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: expect.stringMatching(/^api_key_(missing|invalid)$/) } });
    }
  });

  it.each(routes)("%s %s answers 400 for malformed ids", async (method, path) => {
    for (const bad of ["%E0%A4%A", "a%00b", "%0A", "x".repeat(257), encodeURIComponent("é".repeat(257))]) {
      const res = await api(method, path(bad));
      expect(res.status, bad).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: expect.stringMatching(/^invalid_(user|conversation)_id$/) } });
    }
  });

  it("never lets a hostile id reach another user's data or R2 objects", async () => {
    const victim = uid("victim");
    const event = transcription({ userId: victim, startedAt: nowSeconds() - 30, title: "Private" });
    const victimConversation = event["data"].conversation_id;
    await postWebhook(event);
    await flush(victim, victimConversation);
    const victimKeys = await r2Keys(conversationPrefix(victimConversation));
    expect(victimKeys.length).toBeGreaterThan(0);
    const snapshot = async () => ({
      rows: await d1Count("conversations", "user_id = ?", victim),
      turns: await storedTurns("conversation_id = ?", victimConversation),
      keys: await r2Keys(conversationPrefix(victimConversation)),
      memory: ((await apiJson("GET", `/v1/users/${u(victim)}/memory`)) as any).profile.call_count,
    });
    const before = await snapshot();

    const hostile = [
      `../${victim}`,
      `${victim}/..`,
      `${victim}/../${victim}`,
      `./${victim}`,
      `${victim} `,
      ` ${victim}`,
      victim.toUpperCase(),
      `${victim}'--`,
      `' OR user_id IS NOT NULL --`,
      `" OR 1=1; DROP TABLE conversations; --`,
      "%",
      "_",
      "*",
      `${victim}%`,
      `${victim}\u200b`,
      `ü${victim}`,
      "𝕧𝕚𝕔𝕥𝕚𝕞",
      "...",
      "x".repeat(256),
    ];
    for (const [i, id] of hostile.entries()) {
      const enc = encodeURIComponent(id);
      // Some double-encoded too: one decode leaves "%2F" literal, never a path separator.
      for (const path of i % 4 === 0 ? [enc, enc.replace(/%/g, "%25")] : [enc]) {
        const mem = await api("GET", `/v1/users/${path}/memory`);
        expect(mem.status, id).toBe(404);
        const list: any = await apiJson("GET", `/v1/users/${path}/conversations`);
        expect(list.conversations, id).toEqual([]);
        const ctx: any = await apiJson("GET", `/v1/users/${path}/context`);
        expect(ctx.dynamic_variables.call_count, id).toBe(0);
        expect((await api("GET", `/v1/users/${path}/export`)).status, id).toBe(404);
        const del: any = await apiJson("DELETE", `/v1/users/${path}`);
        expect(del.deleted, id).toMatchObject({ conversations: 0, turns: 0, audio: 0, r2_objects: 0, memory_rows: 0 });
        const conv = await api("GET", `/v1/conversations/${path}`);
        expect(conv.status, id).toBe(404);
      }
    }
    // "." and ".." (even as %2E%2E) are dot segments to every URL parser: the path is resolved before
    // routing, so such ids cannot be named in a URL at all (double-encode them). They land on no user.
    for (const raw of ["..", ".", "%2E%2E", "%2e"]) {
      const res = await api("GET", `/v1/users/${raw}/memory`);
      expect([400, 404, 405]).toContain(res.status);
      expect(JSON.stringify(await res.json())).not.toContain(victim);
      expect((await api("DELETE", `/v1/users/${raw}`)).status).not.toBe(200);
    }
    // An encoded slash stays inside the one path segment: a different id, never the victim.
    for (const raw of [`..%2F${u(victim)}`, `${u(victim)}%2F..`, `${u(victim)}%2F`]) {
      expect((await api("GET", `/v1/users/${raw}/memory`)).status).toBe(404);
      expect(((await apiJson("DELETE", `/v1/users/${raw}`)) as any).deleted.conversations).toBe(0);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("keeps hostile conversation ids inside their own R2 prefix", async () => {
    const userId = uid("prefix");
    const plain = uid("conv");
    const tricky = [`${plain}/x`, `${plain}/../${plain}`, `../${plain}`, `${plain}%2F`];
    for (const id of [plain, ...tricky]) {
      const event = transcription({ userId, conversationId: id, startedAt: nowSeconds() - 1 });
      expect((await postWebhook(event)).status).toBe(200);
    }
    await userMemory(env, userId).flush();
    // Each conversation has exactly one object under its own prefix; no prefix contains another's.
    for (const id of [plain, ...tricky]) {
      expect(await r2Keys(conversationPrefix(id))).toEqual([`${conversationPrefix(id)}transcript.json`]);
      const body: any = await apiJson("GET", `/v1/conversations/${u(id)}`);
      expect(body.conversation_id).toBe(id);
    }
    for (const key of await r2Keys("conversations/")) expect(key.includes("/../")).toBe(false);
  });
});
