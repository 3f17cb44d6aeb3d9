/** The API routes the operator console adds: the user directory and transcript search. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eraseConversations } from "../src/storage/erase";
import { ftsQuery } from "../src/storage/search";
import { apiGet, flush, nowSeconds, postWebhook, transcription, uid, userIdOf } from "./helpers";

async function ingest(event: ReturnType<typeof transcription>) {
  expect((await postWebhook(event)).status).toBe(200);
  await flush(userIdOf(event), event["data"].conversation_id);
}

describe("GET /v1/users", () => {
  it("lists users newest activity first, with exact conversation counts, and pages without gaps", async () => {
    const tag = uid("dir");
    const base = nowSeconds() - 100_000;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const userId = `${tag}-u${i}`;
      ids.push(userId);
      // Two users share a last-call time, to exercise the tie-break.
      const at = base + (i === 3 ? 2 : i) * 60;
      await ingest(transcription({ userId, startedAt: at - 30 }));
      await ingest(transcription({ userId, startedAt: at }));
    }
    // Redelivering and re-flushing must not change counts.
    const again = transcription({ userId: ids[0]!, startedAt: base - 500 });
    await ingest(again);
    await ingest(again);

    const seen: { user_id: string; conversation_count: number; last_call_at: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await apiGet(`/v1/users?q=${encodeURIComponent(tag.toUpperCase())}&limit=3${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const body = await res.json<{ users: typeof seen; next_cursor: string | null }>();
      expect(body.users.length).toBeLessThanOrEqual(3);
      seen.push(...body.users);
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen.map((u) => u.user_id)).toEqual([...ids].sort((a, b) => {
      const at = (id: string) => { const i = Number(id.slice(-1)); return i === 3 ? 2 : i; };
      return at(b) - at(a) || (a < b ? 1 : -1);
    }));
    expect(new Set(seen.map((u) => u.user_id)).size).toBe(7);
    expect(seen.find((u) => u.user_id === ids[0])?.conversation_count).toBe(3);
    expect(seen.find((u) => u.user_id === ids[5])?.conversation_count).toBe(2);
  });

  it.each([
    ["limit=0", "invalid_limit"],
    ["limit=101", "invalid_limit"],
    ["limit=abc", "invalid_limit"],
    ["cursor=%%%", "invalid_cursor"],
    ["cursor=bm90IGpzb24", "invalid_cursor"],
    [`cursor=${btoa(JSON.stringify(["x", 1]))}`, "invalid_cursor"],
    [`q=${"x".repeat(300)}`, "invalid_query"],
  ])("answers 400 for %s", async (query, code) => {
    const res = await apiGet(`/v1/users?${query}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code } });
  });

  it("finds an app user by a phone number linked to them, in any common format, by a call or through the API", async () => {
    const userId = uid("dir-phone");
    const byCall = `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
    await ingest(transcription({ userId, externalNumber: byCall }));
    const apiOnly = uid("dir-phone-api");
    const byApi = `+1628${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
    expect((await apiGet(`/v1/users/${apiOnly}/phones/${encodeURIComponent(byApi)}`, undefined, { method: "PUT" })).status).toBe(200);

    const find = async (q: string) =>
      (await (await apiGet(`/v1/users?q=${encodeURIComponent(q)}`)).json<{ users: { user_id: string; matched_phone_number?: string; conversation_count: number }[] }>()).users;
    const pretty = `+1 (${byCall.slice(2, 5)}) ${byCall.slice(5, 8)}-${byCall.slice(8)}`;
    for (const q of [byCall, pretty, byCall.slice(1)]) {
      expect(await find(q)).toEqual([expect.objectContaining({ user_id: userId, matched_phone_number: byCall, conversation_count: 1 })]);
    }
    // Linked through the API before any call: listed with no calls yet.
    expect(await find(byApi)).toEqual([{ user_id: apiOnly, first_call_at: null, last_call_at: null, conversation_count: 0, matched_phone_number: byApi }]);
    // After an unlink the number finds no one.
    expect((await apiGet(`/v1/users/${apiOnly}/phones/${encodeURIComponent(byApi)}`, undefined, { method: "DELETE" })).status).toBe(200);
    expect(await find(byApi)).toEqual([]);
    // Not a number: no Durable Object is asked, the id filter alone answers.
    expect((await find(userId)).map((u) => u.user_id)).toEqual([userId]);
  });

  it("finds a number's own memory and its linked user by the number typed as people type it, country code or not", async () => {
    const userId = uid("dir-formats");
    const area = String(200 + Math.floor(Math.random() * 700));
    const local = String(Math.floor(Math.random() * 1e7)).padStart(7, "0");
    const number = `+1${area}${local}`;
    // The number calls alone first (its own memory), then as the app user (the link).
    await ingest(transcription({ userId: null, externalNumber: number, title: "Before the link", startedAt: nowSeconds() - 7200 }));
    await ingest(transcription({ userId, externalNumber: number, title: "The linking call", startedAt: nowSeconds() - 3600 }));
    const find = async (q: string) =>
      (await (await apiGet(`/v1/users?q=${encodeURIComponent(q)}`)).json<{ users: { user_id: string; matched_phone_number?: string }[] }>()).users;
    const [a, b, c] = [area, local.slice(0, 3), local.slice(3)];
    for (const q of [`(${a}) ${b}-${c}`, `${a}-${b}-${c}`, `${a}.${b}.${c}`, `${a}${b}${c}`, `+1 ${a} ${b} ${c}`, `+1-${a}-${b}-${c}`, `001${a}${b}${c}`, number]) {
      const users = await find(q);
      expect(users.map((u) => [u.user_id, u.matched_phone_number]), q).toEqual([
        [userId, number],
        [number, number],
      ]);
    }
    // Too few digits to be a whole number: only the id filter answers (nothing here).
    expect(await find(`${b}-${c}`)).toEqual([]);
  });

  it("needs the API key", async () => {
    expect((await apiGet("/v1/users", null)).status).toBe(401);
    expect((await apiGet("/v1/search?q=x", "nope")).status).toBe(401);
  });
});

describe("GET /v1/search", () => {
  it("finds turns by words, with the conversation and turn to link to", async () => {
    const word = `zebra${Math.random().toString(36).slice(2, 8)}`;
    const event = transcription({ title: "Search me" });
    event["data"].transcript[1].message = `My ${word} arrived broken, can you help?`;
    await ingest(event);
    const res = await apiGet(`/v1/search?q=${encodeURIComponent(word.slice(0, -2))}`);
    expect(res.status).toBe(200);
    const body = await res.json<{ results: Record<string, unknown>[] }>();
    expect(body.results).toHaveLength(1);
    expect(body.results[0]).toMatchObject({
      conversation_id: event["data"].conversation_id,
      turn_index: 1,
      role: "user",
      user_id: userIdOf(event),
      title: "Search me",
    });
    expect(body.results[0]!["snippet"]).toContain(`\u0002${word}\u0003`);
  });

  it("treats FTS syntax in the query as plain words", async () => {
    for (const q of ['"', "AND", "a OR", "NEAR(", "col:x", "*", "-x", "^", "\u0301", "a \u0301\u0302", "\u200d", "body:x"]) {
      const res = await apiGet(`/v1/search?q=${encodeURIComponent(q)}`);
      expect([200, 400], q).toContain(res.status);
    }
    expect(ftsQuery('say "hi" OR bye')).toBe('"say" "hi" "OR" "bye"*');
    expect(ftsQuery('  " ')).toBeNull();
    // Marks with no letter are no token (the index drops them): they neither match nor require anything.
    expect(ftsQuery("a \u0301\u0302")).toBe('"a"*');
    expect(ftsQuery("\u0301")).toBeNull();
  });

  it("splits a word the index splits, since the index keeps no positions for phrases (detail = none)", async () => {
    expect(ftsQuery("e-mail")).toBe('"e" "mail"*');
    expect(ftsQuery("don't café")).toBe('"don" "t" "café"*');
    expect(ftsQuery("!!! ...")).toBeNull();
    // A combining mark belongs to its word, as in the index's tokenizer (q + U+0301 has no precomposed form).
    expect(ftsQuery("aq\u0301x")).toBe('"aq\u0301x"*');
    const tag = `zebu${Math.random().toString(36).slice(2, 8)}`;
    const event = transcription();
    event["data"].transcript[2].message = `Send it by e-mail to ${tag}-desk, please, at aq\u0301x${tag}.`;
    await ingest(event);
    for (const q of [`e-mail ${tag}-desk`, `${tag}-de`, `"${tag}" (e...mail)*`, `aq\u0301x${tag}`, `aqx${tag}`]) {
      const res = await apiGet(`/v1/search?q=${encodeURIComponent(q)}`);
      expect(res.status, q).toBe(200);
      const body = await res.json<{ results: { conversation_id: string; turn_index: number }[] }>();
      expect(body.results.map((r) => [r.conversation_id, r.turn_index]), q).toEqual([[event["data"].conversation_id, 2]]);
    }
  });

  it("forgets conversations that are erased", async () => {
    const word = `okapi${Math.random().toString(36).slice(2, 8)}`;
    const event = transcription();
    event["data"].transcript[1].message = `About the ${word}.`;
    await ingest(event);
    expect((await (await apiGet(`/v1/search?q=${word}`)).json<{ results: unknown[] }>()).results).toHaveLength(1);
    await eraseConversations(env, env.AUDIO, [event["data"].conversation_id], userIdOf(event));
    const body = await (await apiGet(`/v1/search?q=${word}`)).json<{ results: unknown[] }>();
    expect(body.results).toEqual([]);
  });

  it("answers newest call first, whole words before a prefix: a word in many calls never expands as a prefix", async () => {
    const word = `tapir${Math.random().toString(36).slice(2, 8)}`;
    const ids: string[] = [];
    // Stored oldest-first by start except the last, stored last but started first (an import's order).
    for (const [i, startedAt] of [nowSeconds() - 3000, nowSeconds() - 2000, nowSeconds() - 1000, nowSeconds() - 9000].entries()) {
      const event = transcription({ startedAt });
      event["data"].transcript[1].message = i === 2 ? `The ${word}s again.` : `About the ${word}.`;
      await ingest(event);
      ids.push(event["data"].conversation_id);
    }
    const found = async (q: string, limit: number) =>
      (await (await apiGet(`/v1/search?q=${encodeURIComponent(q)}&limit=${limit}`)).json<{ results: { conversation_id: string; started_at: string }[] }>()).results;
    // Three hold the whole word, a page of 3 is full: the newer call holding "<word>s" is not looked for.
    expect((await found(word, 3)).map((r) => r.conversation_id)).toEqual([ids[1], ids[0], ids[3]]);
    // A page of 10 is not: the word is then a prefix too, and the answer is still newest first.
    expect((await found(word, 10)).map((r) => r.conversation_id)).toEqual([ids[2], ids[1], ids[0], ids[3]]);
    expect((await found(word.slice(0, -1), 10)).map((r) => r.conversation_id)).toEqual([ids[2], ids[1], ids[0], ids[3]]);
    expect(ftsQuery(`${word} x`, { prefix: false })).toBe(`"${word}" "x"`);
  });

  it("answers 400 without words", async () => {
    const res = await apiGet("/v1/search?q=%20");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_query" } });
  });
});

describe("static console", () => {
  // The files themselves are served by the assets layer in front of the Worker (checked by the
  // browser tests against wrangler dev); the Worker only sends visitors of / there.
  it("/ leads to /console/", async () => {
    const { SELF } = await import("cloudflare:test");
    const root = await SELF.fetch("https://postcall.test/", { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("Location")).toBe("https://postcall.test/console/");
  });
});
