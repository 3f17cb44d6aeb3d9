/**
 * What a memory holds, in and out: its share of a transcription's commit, and its whole view.
 *
 * A user's memory's share of a transcription's commit (src/objects/shared/recording.ts runs it
 * inside the same transaction): the profile and recent conversations, the recall index, the phone
 * link the call proves, and compaction.
 */
import type { MemoryView } from "../../memory/rpc";
import type { MemoryRecord } from "../../records/payload";
import { pendingCount } from "../shared/outbox";
import { erasingSince, retentionAnchor } from "../shared/tables";
import { backfillProgress } from "./recall-backfill";
import * as phones from "./phone-links";
import * as profile from "./profile";
import * as recallIndex from "./recall-index";

export function rememberConversation(sql: SqlStorage, r: MemoryRecord, raw: Uint8Array, receivedAt: number): void {
  if (r.userId === null) return;
  const turns = recallIndex.turnsOfPayload(raw);
  const counts = profile.remember(sql, r, receivedAt);
  recallIndex.indexConversation(sql, { ...r, turns });
  if (phones.shouldLink(sql, r)) phones.linkFromConversation(sql, r, receivedAt);
  profile.compact(sql, counts);
}

/** Everything a memory holds (GET /v1/users/:id/memory). The object has tables. */
export function describeMemory(sql: SqlStorage): MemoryView {
  return {
    ...profile.readMemory(sql),
    phones: phones.listPhones(sql),
    owner: phones.ownerRow(sql),
    pendingDeliveries: pendingCount(sql),
    erasingSince: erasingSince(sql),
    retentionAnchor: retentionAnchor(sql),
    recallIndex: { ...recallIndex.indexStats(sql), backfillIndexed: backfillProgress(sql) },
    scopes: sql.exec<{ agent_id: string }>("SELECT agent_id FROM memory_scopes ORDER BY agent_id LIMIT 1000").toArray().map((r) => r.agent_id),
  };
}
