import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { userMemory } from "./objects";
import { describe, expect, it } from "vitest";
import { RECALL_MAX_BODY_BYTES } from "../src/api/recall";
import { apiGet, context, flush, nowSeconds, uid } from "./helpers";
import { api } from "./api-helpers";
import { AGENT_KEY, conversationWith, recall, recallFor, recallRequest, record, tokenFor } from "./recall-helpers";

const DENTIST: [ "user" | "agent", string][] = [
  ["agent", "Hello again, how can I help?"],
  ["user", "Can you remind me which dentist you recommended?"],
  ["agent", "I recommended Dr. Patel at the Riverside clinic, she is very good with nervous patients."],
  ["user", "Thanks."],
];

describe("POST /tools/recall: auth", () => {
  it("takes API_KEY and AGENT_API_KEY; no key or a wrong key is a 401", async () => {
    const body = { query: "dentist", user_token: await tokenFor(uid("user")) };
    for (const key of ["test-api-key", "test-api-key-2", AGENT_KEY, "test-agent-key-2"]) {
      expect((await SELF.fetch(recallRequest(body, key))).status, key).toBe(200);
    }
    for (const key of [null, "wrong-key", ""]) {
      const res = await SELF.fetch(recallRequest(body, key));
      expect(res.status, String(key)).toBe(401);
    }
  });

  it("answers 405 to another method (a known path)", async () => {
    const res = await api("GET", "/tools/recall");
    expect(res.status).toBe(405);
  });
});

describe("POST /tools/recall: what it finds", () => {
  it("finds a past turn, best first, with date, title, speaker and a little context", async () => {
    const user = uid("user");
    const startedAt = nowSeconds() - 30 * 86_400;
    const event = conversationWith(DENTIST, { userId: user, title: "Dentist recommendation", startedAt });
    await record(event);
    const answer = await recallFor(user, "What was the name of the dentist you recommended?");
    expect(answer.reason).toBeUndefined();
    expect(answer.results.length).toBeGreaterThan(0);
    const best = answer.results[0]!;
    expect(best.conversation_id).toBe(event["data"].conversation_id);
    expect(best.date).toBe(new Date(startedAt * 1000).toISOString());
    expect(best.title).toBe("Dentist recommendation");
    // The agent's answer, alone or after the question it answers (an exchange: each turn prefixed with its speaker).
    const said = (r: { speaker: string; text: string }) => (r.speaker === "agent" ? r.text : r.speaker === "exchange" ? (r.text.split(" | agent: ")[1] ?? "") : "");
    expect(answer.results.some((r) => said(r).includes("Dr. Patel"))).toBe(true);
    expect(best.score).toBeGreaterThan(0);
    expect(best.score).toBeLessThan(1);
    expect(answer.summary).toMatch(/^Found \d+ earlier mention/);
  });

  it("matches other word forms (stemming) and ignores diacritics", async () => {
    const user = uid("user");
    await record(conversationWith([["user", "We were hiking near the café in Zürich last weekend."]], { userId: user }));
    const forms = await recallFor(user, "hikes");
    expect(forms.results.map((r) => r.speaker)).toContain("user");
    const plain = await recallFor(user, "cafe zurich");
    expect(plain.results[0]?.text).toContain("café");
  });

  it("a query is words, never FTS5 syntax: a caller steering the LLM cannot widen or break the search", async () => {
    // The LLM writes `query`, and a caller can make it write anything: operators, quotes, column filters,
    // prefix stars, NEAR groups. Each must be taken as plain words (or nothing), answer 200, match only
    // what the words match, and never error.
    const user = uid("user");
    await record(conversationWith(DENTIST, { userId: user, title: "Dentist recommendation" }));
    const hostile = [
      'dentist" OR "a',
      "* OR dentist",
      "body:dentist",
      "NEAR(dentist patel, 1)",
      "dentist AND NOT patel",
      '"""',
      "^dentist",
      "d*",
      "(dentist",
      "recall_index MATCH 'x'",
      "- + : ; ' \" ( ) { } [ ]",
    ];
    for (const query of hostile) {
      const answer = await recallFor(user, query);
      expect(answer.reason, query).toBeUndefined();
      // Only turns that hold one of the query's plain words come back, whatever the syntax around them.
      const words = query.toLowerCase().match(/[a-z]+/g) ?? [];
      for (const r of answer.results) expect(words.some((w) => r.text.toLowerCase().includes(w)), `${query} -> ${r.text}`).toBe(true);
    }
    // "d*" is the word "d", not a prefix: it finds nothing here.
    expect((await recallFor(user, "d*")).results).toEqual([]);
    expect((await recallFor(user, "* OR dentist")).results.length).toBeGreaterThan(0);
  });

  it("a short turn comes with the turn before it", async () => {
    const user = uid("user");
    await record(conversationWith([["agent", "Which colour would you like for the new kettle?"], ["user", "Turquoise please"]], { userId: user }));
    const answer = await recallFor(user, "turquoise");
    expect(answer.results[0]!.text).toBe("agent: Which colour would you like for the new kettle? | user: Turquoise please");
  });

  it("nothing matched: no results and a line to speak", async () => {
    const user = uid("user");
    await record(conversationWith(DENTIST, { userId: user }));
    const answer = await recallFor(user, "submarine");
    expect(answer).toEqual({ results: [], summary: "No earlier conversation mentions that." });
  });

  it("limit defaults to 5 and is clamped to 1..20", async () => {
    const user = uid("user");
    const turns = Array.from({ length: 30 }, (_, i) => ["user", `pancake recipe number ${i}`] as ["user", string]);
    await record(conversationWith(turns, { userId: user }));
    expect((await recallFor(user, "pancake")).results).toHaveLength(5);
    expect((await recallFor(user, "pancake", { limit: 100 })).results).toHaveLength(20);
    expect((await recallFor(user, "pancake", { limit: 0 })).results).toHaveLength(1);
    expect((await recallFor(user, "pancake", { limit: "3" })).results).toHaveLength(3);
  });

  it("the current call is never returned", async () => {
    const user = uid("user");
    const older = conversationWith([["user", "My parrot is called Captain Biscuit."]], { userId: user, startedAt: nowSeconds() - 86_400 });
    const current = conversationWith([["user", "Captain Biscuit learned a new word."]], { userId: user });
    await record(older);
    await record(current);
    const all = await recallFor(user, "Captain Biscuit", { limit: 20 });
    expect(new Set(all.results.map((r) => r.conversation_id))).toEqual(new Set([older["data"].conversation_id, current["data"].conversation_id]));
    const excluded = await recallFor(user, "Captain Biscuit", { limit: 20, conversation_id: current["data"].conversation_id });
    expect(excluded.results.length).toBeGreaterThan(0);
    expect(excluded.results.every((r) => r.conversation_id === older["data"].conversation_id)).toBe(true);
  });
});

describe("POST /tools/recall: only the token's user", () => {
  it("two users with the same words: a token for X never returns Y's turns", async () => {
    const x = uid("user");
    const y = uid("user");
    const ex = conversationWith([["user", "The spare key is under the blue flowerpot."]], { userId: x });
    const ey = conversationWith([["user", "The spare key is under the blue flowerpot, says Y."]], { userId: y });
    await record(ex);
    await record(ey);
    const forX = await recallFor(x, "spare key flowerpot", { limit: 20 });
    const forY = await recallFor(y, "spare key flowerpot", { limit: 20 });
    expect(forX.results.length).toBeGreaterThan(0);
    expect(forY.results.length).toBeGreaterThan(0);
    expect(forX.results.every((r) => r.conversation_id === ex["data"].conversation_id)).toBe(true);
    expect(forY.results.every((r) => r.conversation_id === ey["data"].conversation_id)).toBe(true);
    // Naming Y anywhere in the body changes nothing: only the token says whose memory is read.
    const sneaky = await recall({ query: "flowerpot", user_token: await tokenFor(x), user_id: y, conversation_id: null });
    expect(sneaky.results.length).toBeGreaterThan(0);
    expect(sneaky.results.every((r) => r.conversation_id === ex["data"].conversation_id)).toBe(true);
  });

  it("bad, missing, forged or expired token: 200, no results, a reason", async () => {
    const user = uid("user");
    await record(conversationWith(DENTIST, { userId: user }));
    const good = await tokenFor(user);
    const forged = good.slice(0, -2) + (good.endsWith("AA") ? "BB" : "AA");
    expect(await recall({ query: "dentist" })).toMatchObject({ results: [], reason: "token_missing" });
    expect(await recall({ query: "dentist", user_token: "" })).toMatchObject({ results: [], reason: "token_missing" });
    expect(await recall({ query: "dentist", user_token: "nonsense" })).toMatchObject({ results: [], reason: "token_invalid" });
    expect(await recall({ query: "dentist", user_token: forged })).toMatchObject({ results: [], reason: "token_invalid" });
    expect(await recall({ query: "dentist", user_token: 42 })).toMatchObject({ results: [], reason: "token_invalid" });
    // USER_TOKEN_LIFETIME_SECONDS defaults to a day.
    const stale = await tokenFor(user, nowSeconds() - 86_400 - 60);
    expect(await recall({ query: "dentist", user_token: stale })).toMatchObject({ results: [], reason: "token_expired" });
    const future = await tokenFor(user, nowSeconds() + 3600);
    expect(await recall({ query: "dentist", user_token: future })).toMatchObject({ results: [], reason: "token_invalid" });
    const answer = await recall({ query: "dentist", user_token: "nonsense" });
    expect(typeof answer.summary).toBe("string");
    expect(answer.summary.length).toBeGreaterThan(0);
  });

  it("a bad body is a 200 with reason bad_request", async () => {
    const token = await tokenFor(uid("user"));
    const bad = [
      "not json",
      "[1,2]",
      { user_token: token },
      { user_token: token, query: "   " },
      { user_token: token, query: "x".repeat(501) },
      { user_token: token, query: "dentist", limit: "many" },
      { user_token: token, query: "dentist", conversation_id: 7 },
      JSON.stringify({ user_token: token, query: "dentist", pad: "x".repeat(RECALL_MAX_BODY_BYTES) }),
    ];
    for (const body of bad) {
      expect(await recall(body), JSON.stringify(body).slice(0, 60)).toMatchObject({ results: [], reason: "bad_request" });
    }
  });
});

describe("POST /tools/recall: forgotten conversations", () => {
  it("an erased user's turns are never returned", async () => {
    const user = uid("user");
    const event = conversationWith(DENTIST, { userId: user });
    await record(event);
    await flush(user, event["data"].conversation_id);
    expect((await recallFor(user, "dentist")).results.length).toBeGreaterThan(0);
    const del = await api("DELETE", `/v1/users/${encodeURIComponent(user)}`);
    expect(del.status).toBe(200);
    expect(await recallFor(user, "dentist Patel")).toEqual({ results: [], summary: "No earlier conversation mentions that." });
  });

  it("a conversation past retention is never returned, before and after retention runs", async () => {
    const user = uid("user");
    // RETENTION_DAYS is 3650 in the test configuration.
    const ancient = conversationWith([["user", "I once owned a penny-farthing bicycle."]], { userId: user, startedAt: nowSeconds() - 3651 * 86_400 });
    const recent = conversationWith([["user", "I sold my bicycle yesterday."]], { userId: user });
    await record(ancient);
    await record(recent);
    const before = await recallFor(user, "bicycle", { limit: 20 });
    expect(before.results.map((r) => r.conversation_id)).toEqual([recent["data"].conversation_id]);
    await flush(user, ancient["data"].conversation_id);
    await userMemory(env, user).applyRetention();
    const after = await recallFor(user, "penny farthing bicycle", { limit: 20 });
    expect(after.results.map((r) => r.conversation_id)).toEqual([recent["data"].conversation_id]);
  });
});

describe("fact history", () => {
  it("survives a change of value: the context serves the new one, memory shows the old, recall finds both", async () => {
    const user = uid("user");
    const t0 = nowSeconds() - 10 * 86_400;
    const t1 = nowSeconds() - 2 * 86_400;
    const first = conversationWith([["user", "hello"]], { userId: user, startedAt: t0, facts: { dentist: "Dr. Patel" } });
    const second = conversationWith([["user", "hello again"]], { userId: user, startedAt: t1, facts: { dentist: "Dr. Jones" } });
    await record(first);
    await record(second);
    expect((await context(user))["dentist"]).toBe("Dr. Jones");
    const mem = await (await apiGet(`/v1/users/${encodeURIComponent(user)}/memory`)).json<any>();
    const dentist = mem.facts.find((f: any) => f.id === "dentist");
    expect(dentist.value).toBe("Dr. Jones");
    expect(dentist.history).toEqual([
      { value: "Dr. Patel", conversation_id: first["data"].conversation_id, valid_from: new Date(t0 * 1000).toISOString(), valid_to: new Date(t1 * 1000).toISOString() },
    ]);
    const old = await recallFor(user, "Patel");
    expect(old.results[0]).toMatchObject({ speaker: "fact", conversation_id: first["data"].conversation_id });
    expect(old.results[0]!.text).toBe(`dentist: Dr. Patel (until ${new Date(t1 * 1000).toISOString().slice(0, 10)})`);
    const now = await recallFor(user, "Jones");
    expect(now.results[0]).toMatchObject({ speaker: "fact", text: "dentist: Dr. Jones", conversation_id: second["data"].conversation_id });
  });

  it("a late webhook of an older call with another value becomes history, not the current value", async () => {
    const user = uid("user");
    const t0 = nowSeconds() - 10 * 86_400;
    const t1 = nowSeconds() - 2 * 86_400;
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: t1, facts: { city: "Lyon" } }));
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: t0, facts: { city: "Paris" } }));
    const mem = await (await apiGet(`/v1/users/${encodeURIComponent(user)}/memory`)).json<any>();
    const city = mem.facts.find((f: any) => f.id === "city");
    expect(city.value).toBe("Lyon");
    expect(city.history.map((h: any) => h.value)).toEqual(["Paris"]);
  });

  it("the same value again is no history", async () => {
    const user = uid("user");
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 5000, facts: { plan_tier: "gold" } }));
    await record(conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 100, facts: { plan_tier: "gold" } }));
    const mem = await (await apiGet(`/v1/users/${encodeURIComponent(user)}/memory`)).json<any>();
    expect(mem.facts.find((f: any) => f.id === "plan_tier").history).toEqual([]);
  });

  it("vanishes with erasure", async () => {
    const user = uid("user");
    const a = conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 5000, facts: { pet: "hamster" } });
    const b = conversationWith([["user", "hi"]], { userId: user, startedAt: nowSeconds() - 100, facts: { pet: "gecko" } });
    await record(a);
    await record(b);
    expect((await recallFor(user, "hamster")).results.length).toBe(1);
    expect((await api("DELETE", `/v1/users/${encodeURIComponent(user)}`)).status).toBe(200);
    expect((await apiGet(`/v1/users/${encodeURIComponent(user)}/memory`)).status).toBe(404);
    expect((await recallFor(user, "hamster gecko")).results).toEqual([]);
  });
});
