/**
 * Query expansion (src/records/expansion.ts, the WordNet table of scripts/wordnet-table.mjs) and how
 * recall ranks what it finds through it: below the caller's own words, under every rule a plain
 * query obeys (the other user's history, the current call, erasure).
 */
import { describe, expect, it } from "vitest";
import { expandWords, MAX_EXPANSIONS } from "../src/records/expansion";
import { recallQuery } from "../src/objects/user-memory/recall";
import { flush, uid } from "./helpers";
import { api } from "./api-helpers";
import { conversationWith, recallFor, record, type TurnSpec } from "./recall-helpers";

const none = () => false;

describe("expandWords", () => {
  it("finds multi-word lemmas and base forms", () => {
    expect(expandWords(["tooth", "doctor"], none)).toContain("dentist");
    expect(expandWords(["bookings"], none)).toContain("reservation");
    expect(expandWords(["puppy"], none)).toContain("dog");
    expect(expandWords(["misplaced"], none)).toContain("lose");
    expect(expandWords(["checkup"], none)).toContain("medical examination");
  });

  it("expands adjectives, and through similar-to the head of their cluster", () => {
    expect(expandWords(["missing"], none)).toContain("lost");
    expect(expandWords(["elderly"], none)).toContain("old");
  });

  it("never returns a query word, is bounded, and skips function words", () => {
    const words = ["car", "automobile", "doctor", "dentist", "house", "order", "flight", "refund", "insurance", "puppy"];
    const out = expandWords(words, none);
    expect(out.length).toBeLessThanOrEqual(MAX_EXPANSIONS);
    for (const w of words) expect(out).not.toContain(w);
    // Each word gets a turn: the last one's expansions are not crowded out by the first ones.
    expect(out).toContain(expandWords(["puppy"], none)[0]);
    expect(expandWords(["the", "of"], (w) => w === "the" || w === "of")).toEqual([]);
    expect(expandWords(["zxqv", "1234"], none)).toEqual([]);
  });

  it("becomes quoted FTS5 phrases: nothing a caller types reaches the query unquoted", () => {
    const q = recallQuery('tooth doctor" OR NEAR(x) *')!;
    expect(q.expanded).toContain('"dentist"');
    expect(q.expanded).toContain('"dental practitioner"');
    for (const part of q.expanded!.split(" OR ")) expect(part).toMatch(/^"[a-z ]+"$/);
  });
});

const DENTIST: TurnSpec[] = [
  ["agent", "Hello again, how can I help?"],
  ["user", "My dentist moved my cleaning to Thursday."],
];
const DOCTOR: TurnSpec[] = [
  ["agent", "Welcome back."],
  ["user", "The tooth doctor joke my nephew told was great."],
];

describe("POST /tools/recall with expansion", () => {
  it("finds a call through a synonym the caller did not say", async () => {
    const user = uid("user");
    const e = conversationWith(DENTIST, { userId: user, title: null, summary: null, facts: {} });
    await record(e);
    const r = await recallFor(user, "tooth doctor appointment");
    expect(r.results[0]?.conversation_id).toBe(e["data"].conversation_id);
    expect(r.results[0]?.text).toContain("dentist");
  });

  it("ranks the caller's own words above an expansion", async () => {
    const user = uid("user");
    const own = conversationWith(DOCTOR, { userId: user, title: null, summary: null, facts: {}, startedAt: Math.floor(Date.now() / 1000) - 40 * 86_400 });
    // The synonym's call is today's: recency favours it, and it is still below the caller's own words.
    // (Today's, too, so that in this three-call history it clears the abstention floor: see the next test.)
    const syn = conversationWith(DENTIST, { userId: user, title: null, summary: null, facts: {}, startedAt: Math.floor(Date.now() / 1000) });
    await record(own);
    await record(syn);
    // A third call, so that bm25's idf of a word in one call of the user's is above zero.
    await record(conversationWith([["user", "Please renew the parking permit."]], { userId: user, title: null, summary: null, facts: {} }));
    const r = await recallFor(user, "tooth doctor");
    expect(r.results.map((h) => h.conversation_id)).toEqual([own["data"].conversation_id, syn["data"].conversation_id]);
    expect(r.results[0]!.score).toBeGreaterThan(r.results[1]!.score);
  });

  it("abstains when only common expansions match: a call found through 'home' for 'house' is not returned", async () => {
    const user = uid("user");
    // "home" is in six of the seven calls (its idf in this history is about 0), "dentist" in one.
    for (const [i, line] of ["I got home late.", "Home by six tonight.", "Working from home today.", "The home Wi-Fi is slow.", "Back home after the trip.", "Home insurance letter came."].entries()) {
      await record(conversationWith([["user", line]], { userId: user, title: null, summary: null, facts: {}, startedAt: Math.floor(Date.now() / 1000) - (10 + i) * 86_400 }));
    }
    const dentist = conversationWith([["user", "My dentist moved my cleaning."]], { userId: user, title: null, summary: null, facts: {} });
    await record(dentist);
    // house -> home, dwelling, ...: only "home" is in this history, and in almost every call.
    expect((await recallFor(user, "Saffron House")).results).toEqual([]);
    // A rare expansion is evidence enough: tooth doctor -> dentist, in one call.
    expect((await recallFor(user, "tooth doctor")).results.map((h) => h.conversation_id)).toEqual([dentist["data"].conversation_id]);
    // The caller's own word is returned however common it is.
    expect((await recallFor(user, "home")).results.length).toBe(5);
  });

  it("keeps every rule: no other user's call, not the current call, nothing after erasure", async () => {
    const [mine, theirs] = [uid("user"), uid("user")];
    const other = conversationWith(DENTIST, { userId: theirs, title: null, summary: null, facts: {} });
    await record(other);
    expect((await recallFor(mine, "tooth doctor")).results).toEqual([]);
    const current = conversationWith(DENTIST, { userId: mine, title: null, summary: null, facts: {} });
    await record(current);
    expect((await recallFor(mine, "tooth doctor", { conversation_id: current["data"].conversation_id })).results).toEqual([]);
    expect((await recallFor(mine, "tooth doctor")).results.length).toBe(1);
    await flush(mine, current["data"].conversation_id);
    expect((await api("DELETE", `/v1/users/${encodeURIComponent(mine)}`)).status).toBe(200);
    expect((await recallFor(mine, "tooth doctor")).results).toEqual([]);
  });
});
