/**
 * Audio that came only through the audio backfill (POST /v1/conversations/:id/audio/backfill, from the
 * stand-in for ElevenLabs' API on this project's own port: vitest.config.ts) is forwarded as
 * `audio.stored` like the webhook's audio (test/forwarding/forwarding.test.ts, first test).
 * Destinations subscribed to audio.stored: crm and flaky.
 */
import { describe, expect, it } from "vitest";
import { api, u } from "../api-helpers";
import { audioOf } from "../fake-api/data";
import { flush, postWebhook, transcription, uid } from "../helpers";
import { about, accepted, arrived, received } from "./helpers";

describe("forwarding of backfilled audio", () => {
  // Rule: every stored fact is forwarded (audio stored by the backfill too, exactly once per destination).
  it("forwards audio.stored once to crm and flaky for audio stored by the on-demand backfill", async () => {
    const userId = uid("fwd_backfill_user");
    // `aud-<bytes>_...`: the stand-in serves that many bytes of MP3 for it (test/fake-api/data.ts).
    const conversationId = uid("aud-3000");
    expect((await postWebhook(transcription({ userId, conversationId }))).status).toBe(200);
    // The pipeline works for this conversation: its conversation.stored reaches the receiver.
    await arrived("/crm", conversationId, "conversation.stored");

    // No audio webhook: the audio comes only from ElevenLabs' API, on demand.
    const res = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    expect(res.status, await res.clone().text()).toBe(201);
    expect(await res.json()).toMatchObject({ status: "stored", bytes: 3000 });
    expect(audioOf(conversationId)?.byteLength).toBe(3000);
    // A second request finds it stored and must not forward it again.
    const again = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ status: "already_stored" });
    // Its audio row is delivered by the conversation's object (the webhook's audio is forwarded from there).
    await flush(null, conversationId);
    await flush(userId, conversationId);

    const audioAtCrm = await arrived("/crm", conversationId, "audio.stored");
    const audioAtFlaky = await arrived("/flaky", conversationId, "audio.stored");
    expect(audioAtCrm[0]!.event!.data).toMatchObject({ conversation_id: conversationId, bytes: 3000, user: { id: userId } });
    expect(audioAtFlaky[0]!.event!.id).toBe(audioAtCrm[0]!.event!.id);
    for (const ds of [audioAtCrm, audioAtFlaky]) {
      expect(ds.every((d) => d.verified)).toBe(true);
      // Once: one event id, accepted once (flaky may be told by another file to fail first attempts).
      expect(new Set(ds.map((d) => d.id)).size).toBe(1);
      expect(accepted(ds)).toHaveLength(1);
    }
    expect(about(await received("/crm"), conversationId).filter((d) => d.event?.type === "audio.stored")).toHaveLength(1);
    // Nowhere it was not subscribed.
    expect(about(await received("/warehouse"), conversationId).filter((d) => d.event?.type === "audio.stored")).toEqual([]);
    expect(about(await received("/pager"), conversationId)).toEqual([]);
  });
});
