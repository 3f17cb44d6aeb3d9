/**
 * Forwarding's durable path (docs/forwarding.md): an acknowledged event reaches the Queue even when the
 * Queue refused it at first (the user's outbox keeps and retries the item), large transcripts travel
 * as a reference, and a queued event whose conversation was erased meanwhile is not sent.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { forwardEventId, type ForwardMessage } from "../../src/records/forward-events";
import { api, u } from "../api-helpers";
import { injectBindings, outboxItems, retryNow } from "../faults";
import { postWebhook, transcription, uid } from "../helpers";
import { userMemory } from "../objects";
import { about, accepted, arrived, received } from "./helpers";
import { expectLogs, outboxFailure } from "../logs";

const downQueue = {
  send: async () => {
    throw new Error("Queue send: simulated outage");
  },
  sendBatch: async () => {
    throw new Error("Queue send: simulated outage");
  },
} as unknown as Queue;

describe("forwarding durability", () => {
  it("keeps an acknowledged event in the outbox while the Queue is down, and forwards it once after", async () => {
    expectLogs(outboxFailure("Queue send: simulated outage"));
    const userId = uid("fwd_queue_down");
    const stub = userMemory(env, userId);
    const restore = await injectBindings(stub, { FORWARD_QUEUE: downQueue });
    const event = transcription({ userId });
    const conversationId = event.data.conversation_id as string;
    const res = await postWebhook(event);
    // The Queue being down does not touch the webhook's answer.
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "stored" });
    await retryNow(stub);
    const waiting = await outboxItems(stub);
    // The conversation itself reached D1; one forward item per subscribed destination waits (crm, warehouse).
    expect(waiting.map((i) => i.kind)).toEqual(["forward", "forward"]);
    expect(waiting.every((i) => i.attempts >= 1 && (i.lastError ?? "").includes("simulated outage"))).toBe(true);
    expect(about(await received("/crm"), conversationId)).toEqual([]);

    await restore();
    await retryNow(stub);
    expect(await outboxItems(stub)).toEqual([]);
    const crm = await arrived("/crm", conversationId, "conversation.stored");
    const warehouse = await arrived("/warehouse", conversationId, "conversation.stored");
    expect(accepted(crm)).toHaveLength(1);
    expect(accepted(warehouse)).toHaveLength(1);
  });

  it("forwards a transcript far larger than a Queue message to include_transcript destinations", async () => {
    const userId = uid("fwd_large");
    const event = transcription({ userId });
    const turn = event.data.transcript[0];
    // About 400 KB of turns: three times the 128 KB a Queue message may hold (and within what D1
    // keeps of a transcript unshortened, docs/storage.md).
    event.data.transcript = Array.from({ length: 1500 }, (_, i) => ({ ...turn, message: `turn ${i} ${"x".repeat(250)}`, time_in_call_secs: i }));
    const conversationId = event.data.conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);
    const [w] = await arrived("/warehouse", conversationId, "conversation.stored");
    expect(w!.event!.data.transcript).toHaveLength(1500);
    expect(w!.event!.data.transcript[1499].message).toBe(`turn 1499 ${"x".repeat(250)}`);
    expect(w!.verified).toBe(true);
    const [c] = await arrived("/crm", conversationId, "conversation.stored");
    expect(c!.event!.data.transcript).toBeUndefined();
    expect(c!.event!.data.turn_count).toBe(1500);
  });

  it("drops an erased user's events not yet handed on, and announces user.erased once the rest is gone", async () => {
    expectLogs(outboxFailure("Queue send: simulated outage"));
    const userId = uid("fwd_erase_pending");
    const stub = userMemory(env, userId);
    // Single sends (the outbox's) fail; sendBatch (the erasure's announcement) reaches the real Queue.
    const real = env.FORWARD_QUEUE!;
    const restore = await injectBindings(stub, { FORWARD_QUEUE: { ...downQueue, sendBatch: (m: any) => real.sendBatch(m) } as unknown as Queue });
    const event = transcription({ userId });
    const conversationId = event.data.conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);
    await retryNow(stub);
    expect((await outboxItems(stub)).map((i) => i.kind)).toEqual(["forward", "forward"]);
    const res = await api("DELETE", `/v1/users/${u(userId)}`);
    expect(res.status).toBe(200);
    await restore();
    const [erased] = await arrived("/crm", userId, "user.erased");
    expect(erased!.event!.data.user_id).toBe(userId);
    // The object is wiped: nothing of the user is left to forward, and nothing was.
    expect(await outboxItems(stub)).toEqual([]);
    expect(about(await received("/crm"), conversationId)).toEqual([]);
    expect(about(await received("/warehouse"), conversationId)).toEqual([]);
  });

  it("fails the DELETE while the Queue refuses user.erased, and the repeat announces the same event", async () => {
    expectLogs(/^unhandled error Error: Queue send: simulated outage/);
    const userId = uid("fwd_erase_down");
    const stub = userMemory(env, userId);
    const event = transcription({ userId });
    expect((await postWebhook(event)).status).toBe(200);
    await arrived("/crm", event.data.conversation_id, "conversation.stored");
    const restore = await injectBindings(stub, { FORWARD_QUEUE: downQueue });
    const first = await api("DELETE", `/v1/users/${u(userId)}`);
    expect(first.status).toBe(503);
    // Frozen, not wiped: the memory serves nothing meanwhile.
    expect((await userMemory(env, userId).describe())?.erasingSince).not.toBeNull();
    await restore();
    expect((await api("DELETE", `/v1/users/${u(userId)}`)).status).toBe(200);
    const ds = await arrived("/crm", userId, "user.erased");
    expect(accepted(ds)).toHaveLength(1);
    expect((await api("DELETE", `/v1/users/${u(userId)}`)).status).toBe(200);
    // A DELETE of a user that no longer exists announces nothing new.
    await arrived("/warehouse", userId, "user.erased");
    expect(accepted(about(await received("/crm"), userId).filter((d) => d.event?.type === "user.erased"))).toHaveLength(1);
  });

  it("acknowledges, without sending, a queued event whose conversation is no longer stored", async () => {
    expectLogs(/^forwarding: conversation\.stored evt_\w+ -> crm not sent: what it reports was erased meanwhile$/);
    const conversationId = uid("fwd_gone");
    const event = { type: "conversation.stored" as const, conversationId, occurredAt: 1_764_000_000 };
    const message: ForwardMessage = { v: 1, id: await forwardEventId(event), event, destination: "crm" };
    const batch = createMessageBatch("postcall-forward", [{ id: "m1", timestamp: new Date(), attempts: 1, body: message }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(result.retryMessages).toEqual([]);
    expect(about(await received("/crm"), conversationId)).toEqual([]);
  });

  it("gives every event an id derived from its source alone", async () => {
    const a = await forwardEventId({ type: "conversation.stored", conversationId: "conv_1", occurredAt: 1 });
    expect(await forwardEventId({ type: "conversation.stored", conversationId: "conv_1", occurredAt: 2 })).toBe(a);
    expect(await forwardEventId({ type: "audio.stored", conversationId: "conv_1", occurredAt: 1 })).not.toBe(a);
    expect(await forwardEventId({ type: "conversation.stored", conversationId: "conv_2", occurredAt: 1 })).not.toBe(a);
    const erased = (since: number) => forwardEventId({ type: "user.erased", conversationId: null, occurredAt: since, erased: { userId: "u", erasingSince: since } });
    expect(await erased(10)).toBe(await erased(10));
    expect(await erased(10)).not.toBe(await erased(11));
  });
});
