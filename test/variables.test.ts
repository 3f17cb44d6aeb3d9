import { describe, expect, it } from "vitest";
import { EMPTY_SNAPSHOT, previousTopics, renderVariables, type MemorySnapshot } from "../src/memory/variables";

const NOW = 1_800_000_000;
const opts = { defaults: {}, previousTopicsMaxChars: 500, nowSeconds: NOW };

describe("renderVariables", () => {
  it("always has the built-ins, with their types, for a first-time user", () => {
    expect(renderVariables(EMPTY_SNAPSHOT, opts)).toEqual({
      previous_topics: "",
      last_call_summary: "",
      last_call_at: "",
      call_count: 0,
      days_since_last_call: -1,
      is_returning_user: false,
    });
  });

  it("renders a returning user", () => {
    const snap: MemorySnapshot = {
      callCount: 3,
      lastCallAt: NOW - 86400 * 2 - 5,
      lastCallSummary: "Talked about invoices.",
      recent: [{ title: "Invoices", summary: null }],
      facts: [{ id: "tier", value: "gold" }],
    };
    expect(renderVariables(snap, opts)).toEqual({
      tier: "gold",
      previous_topics: "Invoices",
      last_call_summary: "Talked about invoices.",
      last_call_at: new Date((NOW - 86400 * 2 - 5) * 1000).toISOString(),
      call_count: 3,
      days_since_last_call: 2,
      is_returning_user: true,
    });
  });

  it("layers defaults < facts < built-ins, and never emits system__ names", () => {
    const snap: MemorySnapshot = {
      ...EMPTY_SNAPSHOT,
      facts: [
        { id: "plan", value: "pro" },
        { id: "call_count", value: 99 },
        { id: "system__caller_id", value: "+1" },
        { id: "x".repeat(200), value: 1 },
      ],
    };
    const vars = renderVariables(snap, { ...opts, defaults: { plan: "free", greeting: "Hi", system__x: "no" } });
    expect(vars).toMatchObject({ plan: "pro", greeting: "Hi", call_count: 0 });
    expect(Object.keys(vars).some((k) => k.startsWith("system__"))).toBe(false);
    expect(vars).not.toHaveProperty("x".repeat(200));
    for (const v of Object.values(vars)) expect(["string", "number", "boolean"]).toContain(typeof v);
  });

  it("clamps days_since_last_call at 0 for a call that starts in the future (clock skew)", () => {
    expect(renderVariables({ ...EMPTY_SNAPSHOT, callCount: 1, lastCallAt: NOW + 100 }, opts)["days_since_last_call"]).toBe(0);
  });
});

describe("previousTopics", () => {
  it("is the most recent distinct titles, newest first, falling back to the summary's first sentence", () => {
    const recent = [
      { title: "Refund", summary: null },
      { title: null, summary: "Asked for a callback. It was arranged." },
      { title: "refund", summary: null },
      { title: "  Password   reset ", summary: null },
      { title: null, summary: null },
    ];
    expect(previousTopics(recent, 500)).toBe("Refund; Asked for a callback.; Password reset");
  });

  it("keeps whole topics within the budget", () => {
    const recent = [{ title: "aaaa", summary: null }, { title: "bbbb", summary: null }, { title: "cccc", summary: null }];
    expect(previousTopics(recent, 10)).toBe("aaaa; bbbb");
    expect(previousTopics(recent, 9)).toBe("aaaa");
    expect(previousTopics(recent, 0)).toBe("");
    expect(previousTopics([{ title: "a very long title", summary: null }], 8)).toBe("a very…");
    for (let budget = 0; budget < 40; budget++) expect(previousTopics(recent, budget).length).toBeLessThanOrEqual(budget);
  });
});
