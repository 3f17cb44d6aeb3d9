/**
 * The event kinds kept without becoming memory (src/webhooks/other-events.ts): the OpenTelemetry
 * transcript and the unredacted events. Acknowledged with a 200, kept raw apart from the redacted
 * data, never served, erased with the user.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { otelKey, unredactedTranscriptKey } from "../src/records/keys";
import { api } from "./api-helpers";
import { flush, postWebhook, r2Keys, transcription, uid } from "./helpers";
import { userMemory } from "./objects";

async function r2Text(key: string): Promise<string | null> {
  const o = await env.AUDIO.get(key);
  return o === null ? null : o.text();
}

function otelEvent(conversationId: unknown) {
  return {
    type: "post_call_transcription_otel",
    event_timestamp: 1767225600,
    data: {
      agent_id: "agent_otel",
      conversation_id: conversationId,
      otlp_traces: {
        resourceSpans: [
          {
            resource: { attributes: [{ key: "service.name", value: { stringValue: "convai" } }] },
            scopeSpans: [{ scope: { name: "elevenlabs" }, spans: [{ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", name: "conversation" }] }],
          },
        ],
      },
    },
  };
}

describe("post_call_transcription_otel", () => {
  it("is acknowledged and kept raw under its conversation, and makes no memory", async () => {
    const conversationId = uid("conv_otel");
    const body = JSON.stringify(otelEvent(conversationId));
    const res = await postWebhook(body);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "stored", type: "post_call_transcription_otel", conversation_id: conversationId });
    expect(await r2Text(otelKey(conversationId))).toBe(body);
    expect((await api("GET", `/v1/conversations/${conversationId}`)).status).toBe(404);
  });

  it("is never a 4xx once verified: one with no usable conversation id is kept under otel/", async () => {
    const before = await r2Keys("otel/");
    for (const id of [undefined, 42, "", "x".repeat(300)]) {
      const body = JSON.stringify(otelEvent(id));
      const res = await postWebhook(body);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "stored", conversation_id: null });
    }
    expect((await r2Keys("otel/")).length).toBe(before.length + 4);
    // Verified first all the same: a fresh header signed with another secret is refused for its MAC,
    // and keeps nothing under otel/.
    const forged = await postWebhook(JSON.stringify(otelEvent(undefined)), { secret: "whsec_wrong" });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ error: { code: "signature_mismatch" } });
    expect((await r2Keys("otel/")).length).toBe(before.length + 4);
  });
});

describe("unredacted events", () => {
  it.each(["post_call_transcription_unredacted", "unredacted_transcript"])(
    "%s is kept apart from the redacted transcript, never served, and erased with the user",
    async (type) => {
      const userId = uid("user");
      const conversationId = uid("conv_unredacted");
      const redacted = transcription({ conversationId, userId });
      expect((await postWebhook(redacted)).status).toBe(200);
      const unredacted = transcription({ conversationId, userId });
      unredacted["type"] = type;
      unredacted["data"].transcript[0].message = "My card number is 4111 1111 1111 1111.";
      const body = JSON.stringify(unredacted);
      const res = await postWebhook(body);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "stored", type, conversation_id: conversationId });
      expect(await r2Text(unredactedTranscriptKey(conversationId))).toBe(body);

      // Not memory, not a second call, not served.
      await flush(userId, conversationId);
      expect((await userMemory(env, userId).describe())?.profile.call_count).toBe(1);
      const served = await (await api("GET", `/v1/conversations/${conversationId}`)).text();
      expect(served).not.toContain("4111");

      expect((await api("DELETE", `/v1/users/${userId}`)).status).toBe(200);
      expect(await r2Text(unredactedTranscriptKey(conversationId))).toBeNull();
    },
  );

  it("unredacted audio is acknowledged and not kept", async () => {
    const before = await r2Keys("audio/");
    const res = await postWebhook({ type: "post_call_audio_unredacted", event_timestamp: 1, data: { agent_id: "a", conversation_id: uid("c"), full_audio: "SUQz" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ignored" });
    expect(await r2Keys("audio/")).toEqual(before);
  });
});
