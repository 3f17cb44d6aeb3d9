/**
 * A smaller run of `npm run forward-load` (scripts/forward-load.mjs sends 1,000): many events, some
 * redelivered, to the two destinations subscribed to conversation.stored; every event arrives at each,
 * and none twice once deduplicated by webhook-id (Queues deliver at least once).
 */
import { describe, expect, it } from "vitest";
import { postWebhook, transcription, uid } from "../helpers";
import { accepted, received, until } from "./helpers";

const EVENTS = 120;
const USERS = 12;

describe("forwarding under load", () => {
  it(`reconciles ${EVENTS} events to two destinations exactly`, async () => {
    const users = Array.from({ length: USERS }, () => uid("fwd_load"));
    const events = Array.from({ length: EVENTS }, (_, i) => transcription({ userId: users[i % USERS]! }));
    const ids = new Set(events.map((e) => e.data.conversation_id as string));
    for (let i = 0; i < events.length; i += 24) {
      const slice = events.slice(i, i + 24);
      // Every fourth event is sent twice at once, as a retrying ElevenLabs might.
      const sends = slice.flatMap((e, j) => (j % 4 === 0 ? [postWebhook(e), postWebhook(e)] : [postWebhook(e)]));
      for (const res of await Promise.all(sends)) expect(res.status).toBe(200);
    }
    for (const path of ["/crm", "/warehouse"]) {
      const mine = (ds: Awaited<ReturnType<typeof received>>) => accepted(ds).filter((d) => ids.has(d.event?.data?.conversation_id));
      const ds = await until(async () => mine(await received(path)), (v) => new Set(v.map((d) => d.id)).size >= EVENTS, `${EVENTS} events at ${path}`, 120_000);
      const byConversation = new Map<string, Set<string>>();
      for (const d of ds) {
        const set = byConversation.get(d.event!.data.conversation_id) ?? new Set();
        set.add(d.id);
        byConversation.set(d.event!.data.conversation_id, set);
      }
      // Each event at each destination, under exactly one webhook-id, all verified.
      expect(byConversation.size).toBe(EVENTS);
      expect([...byConversation.values()].every((s) => s.size === 1)).toBe(true);
      expect(ds.every((d) => d.verified)).toBe(true);
    }
  });
});
