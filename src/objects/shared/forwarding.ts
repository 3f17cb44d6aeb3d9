/**
 * Forwarding's share of the outbox (docs/forwarding.md): one `forward` item per destination per event,
 * created in the same transaction as the record it describes, so an acknowledged event is always
 * forwarded and a redelivery (a duplicate, which commits nothing) never is. Its handler only hands the
 * event to FORWARD_QUEUE; the Queue consumer does the HTTP, so a destination that fails for hours never
 * slows a webhook's answer, and a Queue that fails leaves the item here, retried like any other.
 *
 * An event is handed on only once what it reports is in D1 (the consumer builds the body from there):
 * each forward item names the outbox item that writes it (`afterSeq`), and is not due before that
 * item has been delivered (src/objects/shared/outbox.ts): it waits without failing.
 */
import { config } from "../../lib/config";
import type { Env } from "../../lib/env";
import type { ForwardEventType } from "../../lib/forwarding-config";
import { forwardEventId, type ForwardEvent, type ForwardMessage } from "../../records/forward-events";
import { dropKind, enqueue } from "./outbox";

/** The destinations subscribed to `type`, by key. */
export function subscribers(env: Env, type: ForwardEventType): string[] {
  return config(env)
    .forwardDestinations.filter((d) => d.events.includes(type))
    .map((d) => d.key);
}

/**
 * Queues the event for every destination subscribed to its type, each waiting for `sourceSeq`, the
 * outbox item that writes to D1 what the event reports. Call inside the transaction that queues it.
 */
export function queueForwards(sql: SqlStorage, env: Env, event: ForwardEvent, now: number, sourceSeq: number): void {
  for (const destination of subscribers(env, event.type)) {
    enqueue(sql, { kind: "forward", event, destination }, event.conversationId ?? "", now, { afterSeq: sourceSeq });
  }
}

export async function forwardMessage(event: ForwardEvent, destination: string): Promise<ForwardMessage> {
  return { v: 1, id: await forwardEventId(event), event, destination };
}

/** The outbox handler: to the Queue (the item was not due before D1 had what the event reports). */
export async function handOn(env: Env, event: ForwardEvent, destination: string): Promise<void> {
  if (!env.FORWARD_QUEUE) throw new Error("FORWARD_QUEUE is not bound (wrangler.toml [[queues.producers]])");
  await env.FORWARD_QUEUE.send(await forwardMessage(event, destination), { contentType: "json" });
}

/** Forward items not yet handed on (an erasure drops them: the user asked to be forgotten). */
export const dropForwards = (storage: DurableObjectStorage): number => dropKind(storage, "forward");

/**
 * user.erased, sent straight to the Queue as the erasure's last step before the object is wiped: after
 * the wipe nothing of the user remains here to send it from. If the Queue refuses, the erasure step
 * fails and the DELETE answers 5xx: repeating it sends the same event (same id) and finishes.
 */
export async function announceErasure(env: Env, userId: string, erasingSince: number): Promise<number> {
  const destinations = subscribers(env, "user.erased");
  if (destinations.length === 0) return 0;
  if (!env.FORWARD_QUEUE) throw new Error("FORWARD_QUEUE is not bound (wrangler.toml [[queues.producers]])");
  // Stamped with the erasure's start, so a repeated DELETE sends the very same event.
  const event: ForwardEvent = { type: "user.erased", conversationId: null, occurredAt: erasingSince, erased: { userId, erasingSince } };
  const messages = await Promise.all(destinations.map((d) => forwardMessage(event, d)));
  await env.FORWARD_QUEUE.sendBatch(messages.map((body) => ({ body, contentType: "json" as const })));
  return messages.length;
}
