/**
 * The labelled recall set (bench/recall-set/set.json, docs/recall.md) is what it claims to be: the
 * seeded generator's exact output, large enough (issue 13: at least 30 users' multi-call histories,
 * at least 100 questions), and labelled so that a score means something: every answer points at a
 * turn of the asking user's own history that holds the answer, every trap is a real trap (a
 * cross-user question's words are in another user's history and not in the asker's; an
 * exclude_current question's words are in the current call too), and synonym questions share no
 * word with their answer.
 */
import { describe, expect, inject, it } from "vitest";
import set from "../bench/recall-set/set.json";

declare module "vitest" {
  export interface ProvidedContext {
    /** test/global/recall-set-check.mjs: set.json === what generate.mjs produces. */
    recallSetReproducible: boolean;
  }
}

type Call = { conversation_id: string; started_at: string; title: string; summary: string; facts: Record<string, unknown>; turns: { role: string; message: string }[] };
type Question = { id: string; user_id: string; category: string; query: string; conversation_id: string | null; answers: { conversation_id: string; turn: number; needle: string }[]; other_user_id?: string };

const users = set.users as { user_id: string; calls: Call[] }[];
const questions = set.questions as Question[];
const callById = new Map(users.flatMap((u) => u.calls.map((c) => [c.conversation_id, { ...c, user_id: u.user_id }] as const)));
const STOP = new Set("a an the my me i is was for to of on at in and or with what who which when where how did do our your it its by from".split(" "));
const words = (s: string) => (s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => !STOP.has(w));
const textOf = (c: Call) => [c.title, c.summary, ...c.turns.map((t) => t.message), ...Object.values(c.facts).map(String)].join("\n");
const userWords = (id: string) => new Set(users.find((u) => u.user_id === id)!.calls.flatMap((c) => words(textOf(c))));

describe("bench/recall-set/set.json", () => {
  it("is exactly what bench/recall-set/generate.mjs produces from its seed", () => {
    expect(inject("recallSetReproducible")).toBe(true);
  });

  it("has at least 30 users with multi-call histories spread over months, and unique conversation ids", () => {
    expect(users.length).toBeGreaterThanOrEqual(30);
    const ids = users.flatMap((u) => u.calls.map((c) => c.conversation_id));
    expect(new Set(ids).size).toBe(ids.length);
    for (const u of users) {
      expect(u.calls.length).toBeGreaterThanOrEqual(3);
      const times = u.calls.map((c) => Date.parse(c.started_at));
      expect(times.every(Number.isFinite)).toBe(true);
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(times.at(-1)! - times[0]!).toBeGreaterThan(30 * 86_400_000);
      for (const c of u.calls) {
        expect(c.title.length).toBeGreaterThan(0);
        expect(c.summary.length).toBeGreaterThan(0);
        expect(new Set(c.turns.map((t) => t.role))).toEqual(new Set(["agent", "user"]));
      }
    }
  });

  it("has at least 100 questions, every category represented", () => {
    expect(questions.length).toBeGreaterThanOrEqual(100);
    const count = (c: string) => questions.filter((q) => q.category === c).length;
    for (const c of [...set.categories.answerable, ...set.categories.empty]) expect(count(c), c).toBeGreaterThanOrEqual(5);
    expect(new Set(questions.map((q) => q.id)).size).toBe(questions.length);
  });

  it("every answer is a turn of the asking user's own history that holds the answer's words", () => {
    for (const q of questions) {
      expect(set.categories.empty.includes(q.category)).toBe(q.answers.length === 0);
      for (const a of q.answers) {
        const call = callById.get(a.conversation_id);
        expect(call?.user_id, q.id).toBe(q.user_id);
        expect(call!.turns[a.turn]?.message, q.id).toContain(a.needle);
      }
    }
  });

  it("a cross-user question's words are in another user's history and none in the asker's", () => {
    for (const q of questions.filter((x) => x.category === "cross_user")) {
      expect(q.other_user_id).toBeDefined();
      expect(q.other_user_id).not.toBe(q.user_id);
      const mine = userWords(q.user_id);
      const theirs = userWords(q.other_user_id!);
      expect(words(q.query).length, q.id).toBeGreaterThan(0);
      for (const w of words(q.query)) {
        expect(mine.has(w), `${q.id}: ${w}`).toBe(false);
        expect(theirs.has(w), `${q.id}: ${w}`).toBe(true);
      }
    }
  });

  it("a no-answer question has a word nobody ever said", () => {
    const all = new Set(users.flatMap((u) => [...userWords(u.user_id)]));
    for (const q of questions.filter((x) => x.category === "no_answer")) expect(words(q.query).some((w) => !all.has(w)), q.id).toBe(true);
  });

  it("an exclude_current question is asked during a call of the user's that holds its words, and answered by another", () => {
    for (const q of questions.filter((x) => x.category === "exclude_current")) {
      const current = callById.get(q.conversation_id!);
      expect(current?.user_id).toBe(q.user_id);
      expect(q.answers.map((a) => a.conversation_id)).not.toContain(q.conversation_id);
      const here = new Set(words(textOf(current!)));
      expect(words(q.query).some((w) => here.has(w)), q.id).toBe(true);
    }
    for (const q of questions.filter((x) => x.category !== "exclude_current")) expect(q.conversation_id).toBeNull();
  });

  it("a synonym question shares no word (nor a word's first five letters) with the turn that answers it", () => {
    const stem = (w: string) => w.slice(0, 5);
    for (const q of questions.filter((x) => x.category === "synonym")) {
      for (const a of q.answers) {
        const turn = new Set(words(callById.get(a.conversation_id)!.turns[a.turn]!.message).map(stem));
        for (const w of words(q.query)) expect(turn.has(stem(w)), `${q.id}: ${w}`).toBe(false);
      }
    }
  });

  it("a changed fact's new value is the answering call's fact, and its old value an earlier call's", () => {
    for (const q of questions.filter((x) => x.category === "fact_new" || x.category === "fact_old")) {
      const setters = q.answers.filter((a) => Object.values(callById.get(a.conversation_id)!.facts).includes(a.needle));
      expect(setters.length, q.id).toBeGreaterThan(0);
    }
  });
});
