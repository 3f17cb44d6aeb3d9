/**
 * A user's memory's share of a transcription's commit (src/objects/shared/recording.ts runs it
 * inside the same transaction): the profile and recent conversations, the recall index, the phone
 * link the call proves, and compaction.
 */
import type { MemoryRecord } from "../../records/payload";
import * as phones from "./phone-links";
import * as profile from "./profile";
import * as recallIndex from "./recall-index";

export function rememberConversation(sql: SqlStorage, r: MemoryRecord, raw: Uint8Array, receivedAt: number): void {
  if (r.userId === null) return;
  const turns = recallIndex.turnsOfPayload(raw);
  profile.remember(sql, r, receivedAt);
  recallIndex.indexConversation(sql, { ...r, turns });
  if (phones.shouldLink(sql, r)) phones.linkFromConversation(sql, r, receivedAt);
  profile.compact(sql, r.facts.length > 0);
}
