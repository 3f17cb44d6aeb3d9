/** What a memory's outbox delivers (the kinds of src/objects/shared/outbox.ts `UserOutboxItem`). */
import { phoneObject, userObject } from "../../memory/objects";
import type { ResolvedUser } from "../../records/payload";
import { deliverConversation, forward, type DeliveryContext, type Handlers } from "../shared/deliveries";
import type { UserOutboxItem } from "../shared/outbox";
import { forgetReverseLink } from "./phone-links";
import { markAudio } from "./profile";

async function conversation(ctx: DeliveryContext, item: Extract<UserOutboxItem, { kind: "conversation" | "deferred" }>): Promise<void> {
  const stored = await deliverConversation(ctx, item);
  // Audio and transcript meet in D1, whichever came first: the memory learns of the audio either
  // here or from the ledger's audio delivery (markAudio).
  if (stored?.hasAudio && stored.record.userId !== null) markAudio(ctx.sql, stored.record.conversationId);
}

export const MEMORY_DELIVERIES: Handlers<UserOutboxItem> = {
  conversation,
  // Only delivered if an erasure that kept it aside never finished (flush does nothing while one is
  // under way, and the erasure's end turns it into a `conversation` item): it is the call's own owner's.
  deferred: conversation,

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

  forward,
};
