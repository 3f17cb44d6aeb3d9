/**
 * The sample calls `npm run send-sample` sends (scripts/lib/sample-calls.mjs), stored through the real
 * webhook and read back as the console reads them: each call's title, summary, transcript and facts
 * tell one story, no call carries another's details, and a caller's name is theirs alone.
 */
import { describe, expect, it } from "vitest";
import { applySampleCall, callerName, sampleCall, SAMPLE_CALLS } from "../scripts/lib/sample-calls.mjs";
import { api, apiJson, u } from "./api-helpers";
import { flush, postWebhook, transcription, uid, withToken } from "./helpers";

type Call = (typeof SAMPLE_CALLS)[number];

/** The details a call is about: its facts' values that are words or numbers (not yes/no). */
const details = (call: Call) =>
  Object.values(call.facts)
    .map((f) => f.value)
    .flatMap((v) => (Array.isArray(v) ? v : [v]))
    .filter((v): v is string | number => typeof v === "string" || typeof v === "number")
    .map(String);

async function send(call: Call, userId: string | null) {
  const event = transcription({ userId });
  applySampleCall(event, call, callerName(userId));
  withToken(event);
  const conversationId = event["data"].conversation_id;
  expect((await postWebhook(event)).status).toBe(200);
  await flush(userId, conversationId);
  return (await apiJson("GET", `/v1/conversations/${u(conversationId)}`)) as any;
}

describe("sample calls", () => {
  const others = (call: Call) => SAMPLE_CALLS.filter((c) => c !== call).flatMap(details).filter((d) => !details(call).includes(d));

  for (const call of [...SAMPLE_CALLS, sampleCall("Returning a gift")]) {
    it(`"${call.title}": the summary, transcript and facts agree, and hold no other call's details`, async () => {
      const stored = await send(call, `${uid("sample")}-alice`);
      const words = stored.transcript.map((t: { message: string | null }) => t.message ?? "").join("\n").toLowerCase();
      const summary = String(stored.summary ?? "").toLowerCase();
      expect(stored.title).toBe(call.title);
      expect(summary).toBe(call.summary.toLowerCase());
      expect(stored.duration_secs).toBe(call.duration);
      // The last turn is inside the call.
      expect(Math.max(...stored.transcript.map((t: { time_in_call_secs: number }) => t.time_in_call_secs))).toBeLessThan(call.duration);
      for (const d of details(call)) {
        expect(words, `transcript names ${d}`).toContain(d.toLowerCase());
        expect(summary, `summary names ${d}`).toContain(d.toLowerCase());
      }
      for (const d of others(call)) expect(`${words}\n${summary}`).not.toContain(d.toLowerCase());
      const { preferred_name, ...facts } = stored.analysis.data_collection;
      expect(facts).toEqual(Object.fromEntries(Object.entries(call.facts).map(([k, f]) => [k, f.value])));
      expect(preferred_name).toBe(callerName(stored.user_id));
    });
  }

  it("a title of its own makes a call about that title, not the cracked screen", () => {
    const call = sampleCall("Returning a gift");
    expect(call.summary).toMatch(/returning a gift/);
    expect(JSON.stringify(call)).not.toMatch(/crack|4471|Phone X/);
    expect(sampleCall("upgrading to the PRO plan")).toBe(SAMPLE_CALLS[1]);
    expect(sampleCall(undefined)).toBe(SAMPLE_CALLS[0]);
  });

  it("each caller keeps a name of their own: alice is Alice, mallory Mallory, a caller known by number gave none", async () => {
    expect(callerName("alice")).toBe("Alice");
    expect(callerName("mallory")).toBe("Mallory");
    expect(callerName("e2e-dana")).toBe("Dana");
    expect(callerName("demo-user")).toBe("Dana");
    expect(callerName("e2e-other-user")).toBe(callerName("e2e-other-user"));
    expect(callerName(null)).toBeNull();
    const alice = `${uid("sample")}-alice`;
    const byNumber = await send(sampleCall("Delivery address change"), null);
    expect(byNumber.analysis.data_collection.preferred_name ?? null).toBeNull();
    const first = await send(sampleCall("Billing question"), alice);
    const second = await send(sampleCall("Upgrading to the Pro plan"), alice);
    expect(first.analysis.data_collection.preferred_name).toBe(second.analysis.data_collection.preferred_name);
    const memory: any = await (await api("GET", `/v1/users/${u(alice)}/memory`)).json();
    expect(JSON.stringify(memory)).not.toMatch(/Dana/);
  });
});
