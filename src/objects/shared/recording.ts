/**
 * The commit of a transcription in its owner's object, one function for every way a transcription
 * arrives (webhook, import, attribution, a call kept aside during an erasure), run inside the
 * caller's transaction: the delivery record, the owner's own memory (`remember`, a user's memory
 * only), the outbox item that takes it to D1 and R2, and one forward item per destination, each
 * waiting for that item. The rules around it (tombstone, erasure under way, dedupe) are checked by
 * the object before it calls this.
 */
import type { Env } from "../../lib/env";
import { ownerOfRecord, type MemoryRecord } from "../../records/payload";
import { markSeen, trimSeen } from "./dedupe";
import * as forwarding from "./forwarding";
import * as outbox from "./outbox";

export function commitTranscription(
  sql: SqlStorage,
  env: Env,
  r: MemoryRecord,
  raw: Uint8Array,
  receivedAt: number,
  remember: ((sql: SqlStorage) => void) | null,
): void {
  const newest = markSeen(sql, "post_call_transcription", r.conversationId, receivedAt);
  remember?.(sql);
  const seq = outbox.enqueue(sql, { kind: "conversation", user: ownerOfRecord(r), receivedAt, startedAt: r.startedAt }, r.conversationId, receivedAt, { payload: raw });
  forwarding.queueForwards(sql, env, { type: "conversation.stored", conversationId: r.conversationId, occurredAt: receivedAt }, receivedAt, seq);
  trimSeen(sql, newest);
}
