/**
 * A forwarded event waits for what it reports to reach D1 (its item names the item it follows,
 * `after_seq`: src/objects/shared/outbox.ts). While that item fails (a D1 outage), the forward items
 * are not due: never attempted, never counted as failures, never reported as stuck; they go in the
 * same run that finally stores their conversation, so they never wait longer than it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { UserMemory } from "../../src/objects/user-memory/user-memory";
import { fault, faultyD1, injectBindings, outboxItems } from "../faults";
import { postWebhook, transcription, uid } from "../helpers";
import { makeOutboxDue, userMemory } from "../objects";
import { accepted, arrived, about, received } from "./helpers";
import { expectLogs, outboxFailure } from "../logs";

/** Makes everything due and runs the outbox once, in one step of the object; returns the run's report. */
const runOnce = (stub: ReturnType<typeof userMemory>) =>
  runInDurableObject(stub, async (instance, state) => {
    makeOutboxDue(state.storage.sql);
    return (instance as unknown as UserMemory).flush();
  });

describe("forward items during a D1 outage", () => {
  it("wait without failing, and go in the run that stores their conversation", async () => {
    expectLogs(outboxFailure("D1_ERROR: simulated outage"));
    const userId = uid("fwd_d1_down");
    const stub = userMemory(env, userId);
    const outage = fault("down");
    const restore = await injectBindings(stub, { DB: faultyD1(outage) });
    const event = transcription({ userId });
    const conversationId = event.data.conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);

    for (let run = 0; run < 3; run++) {
      const report = await runOnce(stub);
      // Only the conversation item was tried, and failed: the two forward items (crm, warehouse) were not due.
      expect(report).toMatchObject({ delivered: 0, failed: 1, pending: 3 });
    }
    const items = await outboxItems(stub);
    expect(items.map((i) => [i.kind, i.attempts, i.lastError === null])).toEqual([
      ["conversation", 3, false],
      ["forward", 0, true],
      ["forward", 0, true],
    ]);
    expect(outage.failures).toBeGreaterThanOrEqual(3);
    const status = await stub.outboxStatus();
    expect(status.byKind).toEqual({ conversation: 1, forward: 2 });
    // Made due, but only the conversation item counts as due: the forwards follow it.
    expect(status.maxAttempts).toBe(3);
    expect(about(await received("/crm"), conversationId)).toEqual([]);

    await restore();
    const report = await runOnce(stub);
    expect(report).toMatchObject({ delivered: 3, failed: 0, pending: 0 });
    expect(accepted(await arrived("/crm", conversationId, "conversation.stored"))).toHaveLength(1);
    expect(accepted(await arrived("/warehouse", conversationId, "conversation.stored"))).toHaveLength(1);
  });
});
