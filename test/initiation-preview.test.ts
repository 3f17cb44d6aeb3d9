/**
 * GET /v1/phones/:phoneNumber/initiation: what the initiation webhook would answer for a caller from
 * this number, read without ringing a phone. The console's page of a number shows it, so the card
 * that says "exactly what ElevenLabs receives" shows the linked app user's memory when the number is
 * linked (the webhook's answer), not the number's own (issue 24, item 1).
 */
import { describe, expect, it } from "vitest";
import { API_KEY, apiGet, expectTokenFor, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { initiation, phoneNumber } from "./api-helpers";

type Answer = { type: string; dynamic_variables: Record<string, unknown>; user_id?: string };

async function ingest(event: ReturnType<typeof transcription>, owner: string) {
  expect((await postWebhook(event)).status).toBe(200);
  await flush(owner, event["data"].conversation_id);
}

async function preview(number: string, key: string | null = API_KEY): Promise<Response> {
  return apiGet(`/v1/phones/${encodeURIComponent(number)}/initiation`, key);
}

/** Both answers, tokens checked apart: each is minted for the minute it is asked in. */
async function bothAnswers(number: string): Promise<[Answer, Answer]> {
  const rung = await initiation({ caller_id: number, agent_id: "agent_x", called_number: "+14155550000", call_sid: "CA1" });
  expect(rung.status).toBe(200);
  const shown = await preview(number);
  expect(shown.status).toBe(200);
  return [await rung.json<Answer>(), await shown.json<Answer>()];
}

const withoutToken = (a: Answer) => {
  const { postcall_user_token: _t, ...rest } = a.dynamic_variables;
  return { ...a, dynamic_variables: rest };
};

describe("GET /v1/phones/:phoneNumber/initiation", () => {
  it("equals the initiation webhook's answer for a linked number: the app user's memory, not the number's own", async () => {
    const number = phoneNumber();
    const userId = uid("linked");
    const start = nowSeconds() - 3_600;
    // One call under the bare number, then three calls of the app user, the last one from the number (the link).
    await ingest(transcription({ userId: null, externalNumber: number, title: "Before the link", facts: { preferred_name: "Sam" }, startedAt: start }), number);
    await ingest(transcription({ userId, title: "First app call", facts: { preferred_name: "Alice" }, startedAt: start + 60 }), userId);
    await ingest(transcription({ userId, title: "Second app call", facts: { plan: "pro" }, startedAt: start + 120 }), userId);
    await ingest(transcription({ userId, externalNumber: number, title: "Linking call", facts: { seats: 5 }, startedAt: start + 180 }), userId);

    const [rung, shown] = await bothAnswers(number);
    expect(withoutToken(shown)).toEqual(withoutToken(rung));
    expect(shown.user_id).toBe(userId);
    expect(shown.dynamic_variables).toMatchObject({ call_count: 3, preferred_name: "Alice", plan: "pro", seats: 5, user_id: userId });
    await expectTokenFor(shown.dynamic_variables["postcall_user_token"], userId);

    // The number's own memory still holds its one call: the context route shows that, not this.
    const own = await (await apiGet(`/v1/users/${encodeURIComponent(number)}/context`)).json<{ dynamic_variables: Record<string, unknown> }>();
    expect(own.dynamic_variables).toMatchObject({ call_count: 1, preferred_name: "Sam" });
  });

  it("equals the webhook's answer for an unlinked number and for one never heard of", async () => {
    const known = phoneNumber();
    await ingest(transcription({ userId: null, externalNumber: known, title: "Only the number" }), known);
    for (const number of [known, phoneNumber()]) {
      const [rung, shown] = await bothAnswers(number);
      expect(withoutToken(shown)).toEqual(withoutToken(rung));
      expect(shown).not.toHaveProperty("user_id");
      await expectTokenFor(shown.dynamic_variables["postcall_user_token"], number);
    }
  });

  it("takes the number in any common format, and refuses what is not a number", async () => {
    const number = phoneNumber();
    await ingest(transcription({ userId: null, externalNumber: number, title: "Formats" }), number);
    const pretty = `+1 (${number.slice(2, 5)}) ${number.slice(5, 8)}-${number.slice(8)}`;
    const body = await (await preview(pretty)).json<Answer>();
    expect(body.dynamic_variables["previous_topics"]).toBe("Formats");
    const bad = await preview("not-a-number");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_phone_number" } });
  });

  it("needs the full API key: an agent key cannot browse callers' memories", async () => {
    const number = phoneNumber();
    expect((await preview(number, null)).status).toBe(401);
    expect((await preview(number, "test-agent-key")).status).toBe(403);
  });
});
