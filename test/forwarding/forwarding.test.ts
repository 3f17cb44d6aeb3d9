/**
 * Forwarding end to end (docs/forwarding.md): signed webhooks in, through the user's outbox, the Queue
 * and its consumer, to a real HTTP receiver on 127.0.0.1 that verifies each delivery with the
 * `standardwebhooks` package in Node. Destinations (vitest.config.ts, project "forwarding"):
 *   crm        every event type
 *   warehouse  conversation.stored (with the transcript) and user.erased
 *   pager      call.failed
 *   flaky      audio.stored
 */
import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { audioBytes, audioEvent, postChunked } from "../audio-helpers";
import { api, apiJson, u } from "../api-helpers";
import { flush, postWebhook, transcription, uid } from "../helpers";
import { userMemory } from "../objects";
import sipFailure from "../fixtures/call-initiation-failure-sip.json";
import { accepted, arrived, about, behave, received, until, verifyInNode, type Delivery } from "./helpers";
import { expectLogs } from "../logs";

function failureEvent(conversationId = uid("fail")) {
  const event = structuredClone(sipFailure) as any;
  event.data.conversation_id = conversationId;
  return event;
}

function expectSigned(ds: Delivery[]) {
  for (const d of ds) {
    expect(d.verified).toBe(true);
    // Two FORWARD_SIGNING_SECRET values: one signature each, and each verifies on its own.
    expect(d.bySecret).toEqual([true, true]);
    expect(d.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(d.headers["webhook-id"]).toBe(d.event!.id);
  }
}

describe("forwarding", () => {
  it("delivers every event type once per subscribed destination, signed so standardwebhooks verifies it", async () => {
    const userId = uid("fwd_user");
    const event = transcription({ userId, title: "Renewing the contract", facts: { plan: "pro", seats: 12 } });
    const conversationId = event.data.conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);

    const crm = await arrived("/crm", conversationId, "conversation.stored");
    const warehouse = await arrived("/warehouse", conversationId, "conversation.stored");
    const stored = crm[0]!.event!;
    expect(stored).toMatchObject({
      type: "conversation.stored",
      schema_version: 1,
      data: {
        conversation_id: conversationId,
        user: { id: userId, identified_by: "dynamic_variable" },
        title: "Renewing the contract",
        facts: { plan: "pro", seats: 12 },
        data_collection: { plan: "pro", seats: 12 },
        links: { conversation: `/v1/conversations/${u(conversationId)}`, audio: `/v1/conversations/${u(conversationId)}/audio` },
      },
    });
    expect(stored.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(stored.data.transcript).toBeUndefined();
    // include_transcript: the warehouse gets the turns; the same event id at every destination.
    expect(warehouse[0]!.event!.id).toBe(stored.id);
    expect(warehouse[0]!.event!.data.transcript.length).toBe(event.data.transcript.length);
    expect(warehouse[0]!.event!.data.transcript[0]).toMatchObject({ index: 0, role: event.data.transcript[0].role });

    const audio = audioEvent(audioBytes(3000), { conversationId });
    expect((await postChunked(audio.body)).status).toBe(200);
    const audioAtCrm = await arrived("/crm", conversationId, "audio.stored");
    const audioAtFlaky = await arrived("/flaky", conversationId, "audio.stored");
    expect(audioAtCrm[0]!.event!.data).toMatchObject({ conversation_id: conversationId, bytes: 3000, user: { id: userId } });
    expect(audioAtFlaky[0]!.event!.id).toBe(audioAtCrm[0]!.event!.id);

    const failure = failureEvent();
    const failureId = failure.data.conversation_id as string;
    expect((await postWebhook(failure)).status).toBe(200);
    const failedAtCrm = await arrived("/crm", failureId, "call.failed");
    const failedAtPager = await arrived("/pager", failureId, "call.failed");
    expect(failedAtPager[0]!.event!.data).toMatchObject({ conversation_id: failureId, failure_reason: "busy", sip_status_code: 486, from_number: "+14155550100" });

    expect((await api("DELETE", `/v1/users/${u(userId)}`)).status).toBe(200);
    const erasedAtCrm = await arrived("/crm", userId, "user.erased");
    const erasedAtWarehouse = await arrived("/warehouse", userId, "user.erased");
    expect(erasedAtCrm[0]!.event!.data).toEqual({ user_id: userId, erasure_started_at: expect.any(String) });

    const all = [crm, warehouse, audioAtCrm, audioAtFlaky, failedAtCrm, failedAtPager, erasedAtCrm, erasedAtWarehouse].flat();
    expectSigned(all);
    // Once each, and nowhere it was not subscribed.
    for (const ds of [crm, warehouse, audioAtCrm, audioAtFlaky, failedAtCrm, failedAtPager, erasedAtCrm, erasedAtWarehouse]) expect(ds).toHaveLength(1);
    expect(about(await received("/pager"), conversationId)).toEqual([]);
    expect(about(await received("/flaky"), failureId)).toEqual([]);
    expect(about(await received("/warehouse"), failureId)).toEqual([]);
    expect(about(await received("/pager"), userId)).toEqual([]);
  });

  it("signs so that a tampered body, id or timestamp fails standardwebhooks' verification", async () => {
    const event = transcription({ userId: uid("fwd_tamper") });
    await postWebhook(event);
    const [d] = await arrived("/crm", event.data.conversation_id, "conversation.stored");
    expect(await verifyInNode(d!.headers, d!.body)).toBe(true);
    expect(await verifyInNode(d!.headers, d!.body.replace("conversation.stored", "conversation.st0red"))).toBe(false);
    expect(await verifyInNode({ ...d!.headers, "webhook-id": "evt_someone_else" }, d!.body)).toBe(false);
    expect(await verifyInNode({ ...d!.headers, "webhook-timestamp": String(Number(d!.headers["webhook-timestamp"]) + 1) }, d!.body)).toBe(false);
  });

  it("does not forward ElevenLabs' redeliveries again", async () => {
    const userId = uid("fwd_redeliver");
    const event = transcription({ userId });
    const conversationId = event.data.conversation_id as string;
    // Concurrent copies, then more after the first was forwarded.
    const first = await Promise.all([postWebhook(event), postWebhook(event), postWebhook(event)]);
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);
    await arrived("/crm", conversationId, "conversation.stored");
    await arrived("/warehouse", conversationId, "conversation.stored");
    for (let i = 0; i < 3; i++) expect(await (await postWebhook(event)).json()).toMatchObject({ status: "duplicate" });
    // Nothing more can be forwarded: the redeliveries queued nothing.
    await flush(userId, conversationId);
    expect((await userMemory(env, userId).outboxStatus()).byKind["forward"]).toBeUndefined();
    // A later call of the same user arrives, and the first is still there once.
    const later = transcription({ userId });
    await postWebhook(later);
    await arrived("/crm", later.data.conversation_id, "conversation.stored");
    await arrived("/warehouse", later.data.conversation_id, "conversation.stored");
    expect(about(await received("/crm"), conversationId)).toHaveLength(1);
    expect(about(await received("/warehouse"), conversationId)).toHaveLength(1);
  });

  it("keeps retrying a destination that answers 5xx, and delivers every event once it recovers", async () => {
    expectLogs(/^forwarding: audio\.stored evt_\w+ -> flaky attempt \d+ failed \(HTTP 503 /);
    // flaky answers 503 to the first two attempts of every event.
    await behave("/flaky", { failFirst: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const audio = audioEvent(audioBytes(500 + i));
      ids.push(audio.conversationId);
      expect((await postChunked(audio.body)).status).toBe(200);
    }
    for (const id of ids) {
      const ds = await arrived("/flaky", id, "audio.stored");
      expect(ds.map((d) => d.status)).toEqual([503, 503, 200]);
      expect(new Set(ds.map((d) => d.id)).size).toBe(1);
      expectSigned(ds);
    }
    await behave("/flaky", { failFirst: 0 });
  });

  it("retries after a 429 and after a destination that does not answer in time (FORWARD_TIMEOUT_SECONDS)", async () => {
    expectLogs(/-> flaky attempt \d+ failed \(HTTP 429 /, /-> flaky attempt \d+ failed \(no answer within 2 s\)/);
    await behave("/flaky", { failFirst: 1, failStatus: 429 });
    const limited = audioEvent(audioBytes(900));
    expect((await postChunked(limited.body)).status).toBe(200);
    expect((await arrived("/flaky", limited.conversationId, "audio.stored")).map((d) => d.status)).toEqual([429, 200]);
    // The test project's timeout is 2 s; the first attempt of each event is answered after 4 s.
    await behave("/flaky", { hangFirst: 1, hangMs: 4000 });
    const slow = audioEvent(audioBytes(901));
    expect((await postChunked(slow.body)).status).toBe(200);
    const ds = await arrived("/flaky", slow.conversationId, "audio.stored");
    expect(ds.map((d) => d.status)).toEqual([0, 200]);
    expect(new Set(ds.map((d) => d.id)).size).toBe(1);
    await behave("/flaky", {});
  });

  it("holds events for a destination that is down, then delivers them all when it comes back", async () => {
    expectLogs(/-> flaky attempt \d+ failed \(HTTP 500 /);
    await behave("/flaky", { status: 500 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const audio = audioEvent(audioBytes(700 + i));
      ids.push(audio.conversationId);
      expect((await postChunked(audio.body)).status).toBe(200);
    }
    // Each has been refused at least once...
    for (const id of ids) await until(async () => about(await received("/flaky"), id), (ds) => ds.length >= 1, `a refused attempt for ${id}`);
    // ...and arrives once the destination recovers.
    await behave("/flaky", { status: 200 });
    for (const id of ids) {
      const ds = await arrived("/flaky", id, "audio.stored");
      expect(accepted(ds)).toHaveLength(1);
      expect(ds.slice(0, -1).every((d) => d.status === 500)).toBe(true);
    }
  });

  it("dead-letters a 4xx at once; the failure is listed, and its retry delivers it", async () => {
    expectLogs(/^forwarding: call\.failed evt_\w+ -> pager failed for good after 1 attempt\(s\): HTTP 400 /);
    await behave("/pager", { status: 400 });
    const failure = failureEvent();
    const failureId = failure.data.conversation_id as string;
    await postWebhook(failure);
    await arrived("/crm", failureId, "call.failed");
    type Failures = { failures: { id: string; event_id: string; type: string; destination: string; conversation_id: string; last_status: number; last_error: string; attempts: number }[] };
    const listed = await until(
      () => apiJson<Failures>("GET", "/v1/forwarding/failures"),
      (b) => b.failures.some((f) => f.conversation_id === failureId),
      "the dead letter",
    );
    const f = listed.failures.find((x) => x.conversation_id === failureId)!;
    expect(f).toMatchObject({ type: "call.failed", destination: "pager", last_status: 400, attempts: 1 });
    expect(f.last_error).toContain("HTTP 400");
    // Refused once, not retried.
    expect(about(await received("/pager"), failureId).map((d) => d.status)).toEqual([400]);

    await behave("/pager", { status: 200 });
    const retry = await api("POST", `/v1/forwarding/failures/${f.id}/retry`);
    expect(retry.status).toBe(202);
    const ds = await arrived("/pager", failureId, "call.failed");
    expect(ds.map((d) => d.status)).toEqual([400, 200]);
    expect(ds[1]!.id).toBe(f.event_id);
    expectSigned(ds);
    await until(
      () => apiJson<Failures>("GET", "/v1/forwarding/failures"),
      (b) => !b.failures.some((x) => x.id === f.id),
      "the dead letter to be removed after its delivery",
    );
    expect((await api("POST", `/v1/forwarding/failures/${f.id}/retry`)).status).toBe(404);
  });

  it("dead-letters an event whose retries ran out, with the last status and every attempt counted", async () => {
    expectLogs(/-> pager attempt \d+ failed \(HTTP 502 /, /-> pager failed for good after 13 attempt\(s\): HTTP 502 /);
    await behave("/pager", { status: 502 });
    const failure = failureEvent();
    const failureId = failure.data.conversation_id as string;
    await postWebhook(failure);
    type Failures = { failures: { conversation_id: string; last_status: number; attempts: number; last_error: string }[] };
    const listed = await until(
      () => apiJson<Failures>("GET", "/v1/forwarding/failures"),
      (b) => b.failures.some((f) => f.conversation_id === failureId),
      "the dead letter after the last retry",
      120_000,
    );
    // max_retries = 12 (wrangler.toml): 13 attempts, all refused, then kept.
    expect(listed.failures.find((f) => f.conversation_id === failureId)).toMatchObject({ last_status: 502, attempts: 13 });
    expect(about(await received("/pager"), failureId).map((d) => d.status)).toEqual(Array(13).fill(502));
    await behave("/pager", { status: 200 });
  });

  it("answers 404 for an unknown failure and refuses the agent key", async () => {
    const res = await api("POST", "/v1/forwarding/failures/fwf_nope/retry");
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe("failure_not_found");
    expect((await SELF.fetch("https://postcall.test/v1/forwarding/failures")).status).toBe(401);
  });
});
