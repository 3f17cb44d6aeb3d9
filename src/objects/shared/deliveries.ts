/**
 * How each kind of outbox item is delivered: one handler per kind, in a table the compiler checks
 * for completeness (a new kind without a handler does not build). Every handler is idempotent, so
 * an item delivered twice (the answer was lost after the write) changes nothing the second time.
 */
import type { Env } from "../../lib/env";
import { conversationRecord, parseEnvelope, type ConversationRecord, type ResolvedUser } from "../../records/payload";
import { transcriptKey } from "../../records/keys";
import { deleteAudioObjects, storeAudioRow } from "../../storage/audio";
import { conversationOwner, storeCallFailure, storeConversation } from "../../storage/conversations";
import { quarantine } from "../../storage/quarantine";
import { putTranscript, transcriptOwner } from "../../storage/transcripts";
import { handOn } from "./forwarding";
import { phoneObject, userObject } from "../../memory/objects";
import { backfillAudio } from "../conversation-ledger/audio-backfill";
import { payloadOf, type OutboxItem, type OutboxKind } from "./outbox";
import { forgetReverseLink } from "../user-memory/phone-links";
import { markAudio } from "../user-memory/profile";
import { lowerRetentionAnchor } from "../user-memory/schema";

export interface DeliveryContext {
  env: Env;
  /** The delivering object's storage (some deliveries update it after the write elsewhere). */
  sql: SqlStorage;
  seq: number;
}

type Handler<K extends OutboxKind> = (ctx: DeliveryContext, item: Extract<OutboxItem, { kind: K }>) => Promise<void>;

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
  const row = await conversationOwner(env.DB, r.conversationId);
  if (row !== undefined && row === r.userId) return putTranscript(env.AUDIO, r.conversationId, r.userId, raw);
  const ownerUserId = row !== undefined ? row : (stored ?? null);
  await quarantine(env.DB, env.AUDIO, { conversationId: r.conversationId, claimedUserId: r.userId, ownerUserId, receivedAt }, raw);
  console.warn(JSON.stringify({ event: "conversation_conflict", conversation_id: r.conversationId, claimed_user_id: r.userId, owner_user_id: ownerUserId }));
  return null;
}

async function deliverConversation({ env, sql, seq }: DeliveryContext, user: ResolvedUser, receivedAt: number): Promise<void> {
  const raw = payloadOf(sql, seq);
  // Rebuilt with the owner resolved at receipt, so a later change of settings cannot move it.
  const r = conversationRecord(parseEnvelope(raw), user, receivedAt);
  // The raw payload goes to R2 first, so a D1 row never points at an object that is not there.
  const key = await claimTranscript(env, r, raw, receivedAt);
  if (key === null) return;
  const { hasAudio } = await storeConversation(env.DB, r, { transcriptKey: key, receivedAt });
  if (r.userId !== null && hasAudio) markAudio(sql, r.conversationId);
  // Retention starts counting once the conversation is in D1, where it removes it from.
  lowerRetentionAnchor(sql, r.startedAt);
}

const HANDLERS: { [K in OutboxKind]: Handler<K> } = {
  async conversation(ctx, item) {
    await deliverConversation(ctx, item.user, item.receivedAt);
  },

  // Only delivered if an erasure that kept it aside never finished (flush does nothing while one is
  // under way, and the erasure's end turns it into a `conversation` item): it is the call's own owner's.
  async deferred(ctx, item) {
    await deliverConversation(ctx, item.user, item.receivedAt);
  },

  async call_failure({ env }, item) {
    await storeCallFailure(env.DB, item.record, item.receivedAt);
  },

  async audio({ env }, item) {
    // Audio and transcript meet in D1, whichever came first: the memory learns of the audio either
    // here or in the transcript's delivery above.
    const { userId } = await storeAudioRow(env.DB, item.link);
    if (userId) await userObject(env, userId).markAudio(item.link.conversationId);
  },

  async audio_discard({ env }, item) {
    await deleteAudioObjects(env.AUDIO, item.key);
  },

  async audio_backfill({ env, sql }, item) {
    const outcome = await backfillAudio(env, sql, item.conversationId, item.agentId);
    if (outcome.status === "unavailable") console.warn(`audio backfill of ${item.conversationId}: ElevenLabs has no audio for it`);
    if (outcome.status === "not_configured") console.warn(`audio backfill of ${item.conversationId}: ELEVENLABS_API_KEY is not set; nothing fetched`);
  },

  async link({ env, sql }, item) {
    const res = await phoneObject(env, item.phoneNumber).setOwner({
      phoneNumber: item.phoneNumber,
      userId: item.userId,
      at: item.at,
      via: "conversation",
      conversationId: item.conversationId,
    });
    // A newer link or unlink won: this user's reverse entry must go (the truth no longer points here).
    if (res.owner !== item.userId) forgetReverseLink(sql, item.phoneNumber, item.at);
  },

  async phone_removed({ env }, item) {
    await userObject(env, item.userId).removePhone(item.phoneNumber, item.at);
  },

  async forward({ env, sql }, item) {
    await handOn(env, sql, item.event, item.destination);
  },
};

export function deliver(ctx: DeliveryContext, item: OutboxItem): Promise<void> {
  return (HANDLERS[item.kind] as Handler<OutboxKind>)(ctx, item as never);
}
