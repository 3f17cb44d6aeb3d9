/**
 * Forwarded events as they travel (docs/forwarding.md): what an outbox item and a Queue message hold,
 * and each event's stable id. Pure: no bindings.
 *
 * A message is a reference, not the event: the Queue consumer builds the body from D1 when it delivers
 * (src/forwarding/events.ts). So a message stays a few hundred bytes whatever the transcript's size
 * (Queues refuse messages over 128 KB), a destination with `include_transcript` gets the whole
 * transcript, and an event whose conversation was erased meanwhile is not sent at all. The one
 * exception is user.erased: nothing of the user remains to build it from, so it carries its own data.
 */
import type { ForwardEventType } from "../lib/forwarding-config";

export type { ForwardEventType };

/** The event schema's version, in every body (`schema_version`) and in docs/forwarding.md. */
export const FORWARD_SCHEMA_VERSION = 1;

/** What an event is about. `conversationId` is null only for user.erased. */
export interface ForwardEvent {
  type: ForwardEventType;
  conversationId: string | null;
  /** Unix seconds: when postcall received what the event reports (the body's `timestamp`). */
  occurredAt: number;
  /** user.erased only: the erased user, and the erasure's start (which makes its id). */
  erased?: { userId: string; erasingSince: number };
}

/** One Queue message: one event for one destination (FORWARD_QUEUE). */
export interface ForwardMessage {
  v: 1;
  /** The `webhook-id`: the same for every destination and every attempt of the event. */
  id: string;
  event: ForwardEvent;
  /** The destination's key (its `name`, or its URL). */
  destination: string;
  /** Set when an operator sent it again from a dead letter: a success removes that dead letter. */
  failureId?: string;
}

/** What the consumer hands to FORWARD_DEAD_LETTERS: the message and why it could not be delivered. */
export interface DeadLetter {
  v: 1;
  dead: true;
  message: ForwardMessage;
  /** HTTP status of the last attempt; null when there was none (timeout, network error, nothing to send). */
  status: number | null;
  error: string;
  attempts: number;
  /** Whose data the event was about (erasure removes the user's dead letters), when known. */
  userId: string | null;
  failedAt: number;
}

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function digest(parts: string[]): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n"))));
}

/**
 * The event's id, from its source alone: a conversation's events from (type, conversation id), which
 * is ElevenLabs' own idempotency key, so the same call always yields the same id (even one redelivered
 * after the dedupe window); an erasure from (user, erasure start), so continuing an erasure that was
 * interrupted announces the same event again, never a new one.
 */
export async function forwardEventId(e: ForwardEvent): Promise<string> {
  const source = e.erased ? [e.erased.userId, String(e.erased.erasingSince)] : [e.conversationId ?? ""];
  return `evt_${(await digest([e.type, ...source])).slice(0, 32)}`;
}

/** A dead letter's id: one per (event, destination), so the same delivery failing again updates it. */
export async function failureIdOf(m: ForwardMessage): Promise<string> {
  return `fwf_${(await digest([m.id, m.destination])).slice(0, 24)}`;
}

export function isDeadLetter(body: unknown): body is DeadLetter {
  return typeof body === "object" && body !== null && (body as { dead?: unknown }).dead === true;
}

export function isForwardMessage(body: unknown): body is ForwardMessage {
  if (typeof body !== "object" || body === null) return false;
  const m = body as Partial<ForwardMessage>;
  return m.v === 1 && typeof m.id === "string" && typeof m.destination === "string" && typeof m.event === "object" && m.event !== null;
}
