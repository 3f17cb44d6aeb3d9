/** What a conversation's ledger delivers (the kinds of src/objects/shared/outbox.ts `LedgerOutboxItem`). */
import { memoryName, memoryObject } from "../../memory/objects";
import { deleteAudioObjects, storeAudioRow } from "../../storage/audio";
import { storeCallFailure } from "../../storage/conversations";
import { homeWriteShard } from "../../storage/placement";
import { deliverConversation, forward, type DeliveryContext, type Handlers } from "../shared/deliveries";
import type { LedgerOutboxItem } from "../shared/outbox";
import { deleteAtSource } from "./source-delete";

/**
 * The scheduled audio backfill is the ledger's own work (it fetches, then commits through the one
 * audio path), so the class supplies it: `ledgerDeliveries(backfill)`.
 */
export function ledgerDeliveries(backfill: (ctx: DeliveryContext, conversationId: string, agentId: string | null) => Promise<void>): Handlers<LedgerOutboxItem> {
  return {
    async conversation(ctx, item) {
      await deliverConversation(ctx, item);
    },

    async call_failure({ env }, item) {
      await storeCallFailure(await homeWriteShard(env, item.record.conversationId), item.record, item.receivedAt);
    },

    async audio({ env }, item) {
      // Audio and transcript meet in D1, whichever came first: the memory learns of the audio either
      // here or in the transcript's delivery (user-memory/deliveries.ts).
      // The memory is the one the conversation was recorded in: its agent's, under MEMORY_SCOPE="agent".
      const { userId, agentId } = await storeAudioRow(env, await homeWriteShard(env, item.link.conversationId), item.link);
      if (userId) await memoryObject(env, memoryName(env, userId, agentId)).markAudio(item.link.conversationId);
    },

    async audio_discard({ env }, item) {
      await deleteAudioObjects(env.AUDIO, item.key);
    },

    async audio_backfill(ctx, item) {
      await backfill(ctx, item.conversationId, item.agentId);
    },

    async source_delete({ env }, item) {
      await deleteAtSource(env, item.conversationId);
    },

    forward,
  };
}
