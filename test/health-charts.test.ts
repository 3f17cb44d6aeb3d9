/**
 * The health page's call charts: every duration bin has a label and a call lands in the bin its
 * length says (the pure binning, src/records/health-charts.ts, and D1's, which is written from the
 * same bounds), and a call that never connected counts as not connected in calls per day.
 */
import { describe, expect, it } from "vitest";
import { callsPerDaySeries, DURATION_BOUNDS, durationBin, durationLabels, OUTCOMES } from "../src/records/health-charts";
import sipFailure from "./fixtures/call-initiation-failure-sip.json";
import { health, sum } from "./health-helpers";
import { flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";

describe("call duration bins", () => {
  it("label every bin, in order, with both ends", () => {
    expect(durationLabels()).toEqual(["< 30 s", "30–60 s", "1–2 min", "2–5 min", "5–10 min", "10–20 min", "≥ 20 min"]);
    expect(durationLabels()).toHaveLength(DURATION_BOUNDS.length + 1);
  });

  it("put a call in the bin its length says: lower bound in, upper bound out", () => {
    const label = (secs: number) => durationLabels()[durationBin(secs)];
    expect(label(0)).toBe("< 30 s");
    expect(label(29)).toBe("< 30 s");
    expect(label(30)).toBe("30–60 s");
    expect(label(59.9)).toBe("30–60 s");
    expect(label(60)).toBe("1–2 min");
    expect(label(212)).toBe("2–5 min"); // 3:32
    expect(label(299)).toBe("2–5 min");
    expect(label(300)).toBe("5–10 min");
    expect(label(1199)).toBe("10–20 min");
    expect(label(1200)).toBe("≥ 20 min");
    expect(label(36_000)).toBe("≥ 20 min");
  });

  it("D1's counts agree with the pure binning", async () => {
    const lengths = [29, 30, 212, 299, 300, 1199, 1200];
    for (const duration of lengths) {
      const userId = uid("bins");
      const event = transcription({ userId, startedAt: nowSeconds() - 600 });
      event["data"].metadata.call_duration_secs = duration;
      expect((await postWebhook(event)).status).toBe(200);
      await flush(userId, event["data"].conversation_id);
    }
    const expected = durationLabels().map(() => 0);
    for (const d of lengths) expected[durationBin(d)]!++;
    const d = (await health()).charts.call_durations;
    expect(d.buckets).toEqual(durationLabels());
    expect(d.counts).toEqual(expected);
  });
});

describe("calls per day", () => {
  it("has a series per outcome, not connected included, each day's count in its place", () => {
    const days = [100, 101, 102];
    const out = callsPerDaySeries(days, [
      { day: 100, outcome: "success", n: 2 },
      { day: 102, outcome: "not_connected", n: 1 },
      { day: 102, outcome: "failure", n: 3 },
      { day: 99, outcome: "success", n: 7 }, // before the window
      { day: 101, outcome: "something_new", n: 1 },
    ]);
    expect(Object.keys(out)).toEqual([...OUTCOMES, "something_new"]);
    expect(out).toMatchObject({ success: [2, 0, 0], failure: [0, 0, 3], unknown: [0, 0, 0], not_connected: [0, 0, 1], something_new: [0, 1, 0] });
  });

  it("counts a call that never connected (call_initiation_failure) today, as not connected", async () => {
    const before = (await health()).charts.calls_per_day.outcomes;
    const event = structuredClone(sipFailure) as any;
    event.data.conversation_id = uid("never_connected");
    event.event_timestamp = nowSeconds();
    expect((await postWebhook(event)).status).toBe(200);
    await flush(null, event.data.conversation_id);
    const after = (await health()).charts.calls_per_day.outcomes;
    expect(after["not_connected"]!.at(-1)).toBe((before["not_connected"]!.at(-1) ?? 0) + 1);
    expect(sum(after["failure"]) + sum(after["success"]) + sum(after["unknown"])).toBe(sum(before["failure"]) + sum(before["success"]) + sum(before["unknown"]));
  });
});
