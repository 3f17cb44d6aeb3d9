/**
 * How outbox items are delivered. Each class has its own table of handlers, one per kind of item it
 * queues, typed so that a kind without a handler does not build (user-memory/deliveries.ts,
 * conversation-ledger/deliveries.ts); the kinds both queue are delivered here. Every handler is
 * idempotent, so an item delivered twice (the answer was lost after the write) changes nothing the
 * second time.
 */
import type { Env } from "../../lib/env";
import { conversationRecord, parseEnvelope, type ConversationRecord, type ResolvedUser } from "../../records/payload";
import { transcriptKey } from "../../records/keys";
import { conversationOwner, storeConversation } from "../../storage/conversations";
import { quarantine } from "../../storage/quarantine";
import { homeWriteShard } from "../../storage/placement";
import { putTranscript, transcriptOwner } from "../../storage/transcripts";
import { handOn } from "./forwarding";
import type { OutboxItem } from "./outbox";
import { lowerRetentionAnchor } from "./tables";

export interface DeliveryContext {
  env: Env;
  /** The delivering object's storage (some deliveries update it after the write elsewhere). */
  sql: SqlStorage;
  seq: number;
  /** The item's raw payload (outbox.ts DueItem: usually read with the item's row). */
  payload(): Uint8Array;
}

type Handler<I extends OutboxItem, K extends I["kind"]> = (ctx: DeliveryContext, item: Extract<I, { kind: K }>) => Promise<void>;
/** A class's handlers: one for every kind its outbox holds. */
export type Handlers<I extends OutboxItem> = { [K in I["kind"]]: Handler<I, K> };

export function deliverWith<I extends OutboxItem>(handlers: Handlers<I>, ctx: DeliveryContext, item: I): Promise<void> {
  return (handlers[item.kind as I["kind"]] as Handler<I, I["kind"]>)(ctx, item as never);
}

export async function forward({ env }: DeliveryContext, item: Extract<OutboxItem, { kind: "forward" }>): Promise<void> {
  await handOn(env, item.event, item.destination);
}

/**
 * One owner per conversation: the first delivery to create `transcript.json` (create-only in R2)
 * owns the conversation. A later delivery naming another owner changes nothing of it (row, search
 * document, transcript, audio) and is kept aside raw and counted (src/storage/quarantine.ts). The
 * one accepted change of owner is the operator's attribution of an unowned conversation, which D1
 * records first (`attributeConversation`): the R2 metadata then follows D1.
 * Returns the transcript's key, or null when the event was quarantined.
 */
async function claimTranscript(env: Env, r: ConversationRecord, raw: Uint8Array, receivedAt: number): Promise<string | null> {
  const created = await putTranscript(env.AUDIO, r.conversationId, r.userId, raw, { createOnly: true });
  if (created !== null) return created;
  const stored = await transcriptOwner(env.AUDIO, r.conversationId);
  if (stored === r.userId) return transcriptKey(r.conversationId);
  const row = await conversationOwner(env, r.conversationId);
  if (row !== undefined && row === r.userId) return putTranscript(env.AUDIO, r.conversationId, r.userId, raw);
  const ownerUserId = row !== undefined ? row : (stored ?? null);
  await quarantine(await homeWriteShard(env, r.conversationId), env.AUDIO, { conversationId: r.conversationId, claimedUserId: r.userId, ownerUserId, receivedAt }, raw);
  console.warn(JSON.stringify({ event: "conversation_conflict", conversation_id: r.conversationId, claimed_user_id: r.userId, owner_user_id: ownerUserId }));
  return null;
}

/**
 * A conversation item: the raw payload to R2, the row to D1. Returns whether D1 says its audio is
 * stored (null when the event was kept aside as another owner's), for the memory to mark.
 */
export async function deliverConversation(
  { env, sql, payload }: DeliveryContext,
  item: { kind: OutboxItem["kind"]; user: ResolvedUser; receivedAt: number; startedAt?: number },
): Promise<{ hasAudio: boolean; record: ConversationRecord } | null> {
  const { user, receivedAt } = item;
  const raw = payload();
  // Rebuilt with the owner resolved at receipt, so a later change of settings cannot move it.
  const r = conversationRecord(parseEnvelope(raw), user, receivedAt);
  // The raw payload goes to R2 first, so a D1 row never points at an object that is not there.
  const key = await claimTranscript(env, r, raw, receivedAt);
  if (key === null) return null;
  const { hasAudio } = await storeConversation(env, r, { transcriptKey: key, receivedAt });
  // Retention starts counting once the conversation is in D1, where it removes it from. A conversation
  // item that carries its start moves the anchor as it leaves the outbox, in the same statement
  // (outbox.ts outbox_conversation_goes); one queued before items carried it, or a deferred call, here.
  if (item.kind !== "conversation" || item.startedAt === undefined) lowerRetentionAnchor(sql, r.startedAt);
  return { hasAudio, record: r };
}

