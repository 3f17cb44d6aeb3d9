/**
 * The commit of a transcription in its owner's object: the delivery record, the memory, the recall
 * index, links, the outbox items (D1 and R2, forwards). One function, run inside the caller's
 * transaction, for a conversation recorded as it arrives and for one an erasure kept aside.
 */
import type { Env } from "../../lib/env";
import { ownerOfRecord, type MemoryRecord } from "../../records/payload";
import { markSeen, trimSeen } from "./dedupe";
import * as forwarding from "./forwarding";
import * as outbox from "./outbox";
import * as phones from "../user-memory/phone-links";
import * as profile from "../user-memory/profile";
import * as recallIndex from "../user-memory/recall-index";

export function commitConversation(sql: SqlStorage, env: Env, r: MemoryRecord, raw: Uint8Array, receivedAt: number): void {
  const forwards = forwarding.subscribers(env, "conversation.stored");
  const turns = r.userId !== null ? recallIndex.turnsOfPayload(raw) : [];
  markSeen(sql, "post_call_transcription", r.conversationId, receivedAt);
  if (r.userId !== null) profile.remember(sql, r, receivedAt);
  if (r.userId !== null) recallIndex.indexConversation(sql, { ...r, turns });
  if (phones.shouldLink(sql, r)) phones.linkFromConversation(sql, r, receivedAt);
  const seq = outbox.enqueue(sql, { kind: "conversation", user: ownerOfRecord(r), receivedAt }, r.conversationId, receivedAt);
  outbox.attachPayload(sql, seq, raw);
  forwarding.queueForwards(sql, forwards, { type: "conversation.stored", conversationId: r.conversationId, occurredAt: receivedAt }, receivedAt);
  profile.compact(sql, r.userId !== null && r.facts.length > 0);
  trimSeen(sql);
}
