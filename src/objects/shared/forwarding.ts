/**
 * Forwarding's share of the outbox (docs/forwarding.md): one `forward` item per destination per event,
 * created in the same transaction as the record it describes, so an acknowledged event is always
 * forwarded and a redelivery (a duplicate, which commits nothing) never is. Its handler only hands the
 * event to FORWARD_QUEUE; the Queue consumer does the HTTP, so a destination that fails for hours never
 * slows a webhook's answer, and a Queue that fails leaves the item here, retried like any other.
 *
 * An event is handed on only once what it reports is in D1 (the consumer builds the body from there):
 * while this object still holds the item that writes it, the forward item waits its turn.
 */
import { config } from "../../lib/config";
import type { Env } from "../../lib/env";
import type { ForwardEventType } from "../../lib/forwarding-config";
import { forwardEventId, type ForwardEvent, type ForwardMessage } from "../../records/forward-events";
import { enqueue, type OutboxKind } from "./outbox";

/** The outbox item that writes to D1 what each event reports. */
const SOURCE_KIND: Record<Exclude<ForwardEventType, "user.erased">, OutboxKind> = {
  "conversation.stored": "conversation",
  "audio.stored": "audio",
  "call.failed": "call_failure",
};

/** The destinations subscribed to `type`, by key. */
export function subscribers(env: Env, type: ForwardEventType): string[] {
  return config(env)
    .forwardDestinations.filter((d) => d.events.includes(type))
    .map((d) => d.key);
}

/** Queues the event for every subscribed destination. Call inside the transaction that records it. */
export function queueForwards(sql: SqlStorage, destinations: string[], event: ForwardEvent, now: number): void {
  for (const destination of destinations) {
    enqueue(sql, { kind: "forward", event, destination }, event.conversationId ?? "", now);
  }
}

export async function forwardMessage(event: ForwardEvent, destination: string): Promise<ForwardMessage> {
  return { v: 1, id: await forwardEventId(event), event, destination };
}

/** The outbox handler: to the Queue, once D1 has what the event reports. */
export async function handOn(env: Env, sql: SqlStorage, event: ForwardEvent, destination: string): Promise<void> {
  const source = event.type === "user.erased" ? null : SOURCE_KIND[event.type];
  if (source && event.conversationId !== null && waiting(sql, source, event.conversationId)) {
    throw new Error(`${event.type} waits until its ${source} item is stored`);
  }
  if (!env.FORWARD_QUEUE) throw new Error("FORWARD_QUEUE is not bound (wrangler.toml [[queues.producers]])");
  await env.FORWARD_QUEUE.send(await forwardMessage(event, destination), { contentType: "json" });
}

function waiting(sql: SqlStorage, kind: OutboxKind, conversationId: string): boolean {
  return sql.exec("SELECT 1 FROM outbox WHERE kind = ? AND conversation_id = ? LIMIT 1", kind, conversationId).toArray().length > 0;
}

/** Forward items not yet handed on (an erasure drops them: the user asked to be forgotten). */
export function dropForwards(storage: DurableObjectStorage): number {
  return storage.sql.exec("DELETE FROM outbox WHERE kind = 'forward'").rowsWritten;
}

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
