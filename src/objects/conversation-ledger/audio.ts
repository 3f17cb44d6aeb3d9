/**
 * The one path by which a recording becomes state, whoever brought it: the audio webhook, the
 * scheduled backfill, the on-demand backfill, an import with `include_audio`. Each of them first
 * puts the MP3 in R2 (the webhook by streaming its body, a backfill by streaming ElevenLabs' API),
 * then calls `commitAudio`, which applies every rule once, in one synchronous step:
 *
 *   tombstone  an erased conversation's audio is deleted from R2, never linked (`dropped`)
 *   dedupe     a second recording of the same conversation is deleted (`audio_discard`); the first wins
 *   link       the durable link conversation -> R2 object (`audio` table)
 *   outbox     the item that writes the D1 `audio` row (and tells the user's memory)
 *   forward    one `audio.stored` per subscribed destination, each waiting for that item
 *
 * `mayFetch` is the rule a backfill asks before it fetches anything: nothing for an erased
 * conversation, nothing when audio is already linked.
 */
import type { Env } from "../../lib/env";
import type { AudioLink } from "../../storage/audio";
import { isDuplicate, markSeen } from "../shared/dedupe";
import * as forwarding from "../shared/forwarding";
import * as outbox from "../shared/outbox";
import type { Tombstones } from "../shared/tombstone";
import * as audioLinks from "./audio-links";

export type AudioCommit =
  /** Linked: the first recording of this conversation. */
  | { status: "stored"; link: AudioLink }
  /** Another recording was linked first: this one is queued for deletion. */
  | { status: "duplicate"; link: AudioLink }
  /** The conversation was erased: this recording must be deleted, and nothing was written. */
  | { status: "erased" };

/** Whether the conversation was erased (its tombstone, or after 30 days its permanent mark): then nothing of it is kept again. */
export function isErased(tombstones: Tombstones): boolean {
  return tombstones.erasedAt() !== null;
}

/** Call inside a transaction, with the ledger's tables created (unless erased). */
export function commitAudio(sql: SqlStorage, env: Env, tombstones: Tombstones, link: AudioLink): AudioCommit {
  if (isErased(tombstones)) return { status: "erased" };
  const first = audioLinks.readLink(sql, link.conversationId);
  if (first !== null || isDuplicate(sql, "post_call_audio", link.conversationId)) {
    outbox.enqueue(sql, { kind: "audio_discard", key: link.key }, link.conversationId, link.receivedAt);
    return { status: "duplicate", link: first ?? link };
  }
  markSeen(sql, "post_call_audio", link.conversationId, link.receivedAt);
  audioLinks.insertLink(sql, link);
  const seq = outbox.enqueue(sql, { kind: "audio", link }, link.conversationId, link.receivedAt);
  forwarding.queueForwards(sql, env, { type: "audio.stored", conversationId: link.conversationId, occurredAt: link.receivedAt }, link.receivedAt, seq);
  return { status: "stored", link };
}

/**
 * Whether a backfill may fetch this conversation's audio: not erased, and none linked yet. (A
 * recording committed in the meantime makes the fetched copy a duplicate: commitAudio discards it.)
 */
export function mayFetch(sql: SqlStorage | null, tombstones: Tombstones, conversationId: string): "erased" | AudioLink | "fetch" {
  if (isErased(tombstones)) return "erased";
  return (sql === null ? null : audioLinks.readLink(sql, conversationId)) ?? "fetch";
}
