/**
 * Which Durable Object holds what. One object per user, named `user:<id>`; a conversation that
 * belongs to no user (no id, no phone number) is kept by an object named `conversation:<id>`, which
 * holds only its delivery record and outbox. Names are prefixed so a user id can never collide with
 * a conversation id.
 */
import type { Env } from "../env";
import type { ConversationRecord } from "../webhooks/payload";

export const userObjectName = (userId: string) => `user:${userId}`;
export const conversationObjectName = (conversationId: string) => `conversation:${conversationId}`;

export function userMemory(env: Env, userId: string) {
  return env.USER_MEMORY.get(env.USER_MEMORY.idFromName(userObjectName(userId)));
}

/** The object that owns a conversation's delivery: its user's, or its own when it has no user. */
export function ownerOf(env: Env, userId: string | null, conversationId: string) {
  const name = userId !== null ? userObjectName(userId) : conversationObjectName(conversationId);
  return env.USER_MEMORY.get(env.USER_MEMORY.idFromName(name));
}

/**
 * Records a transcription with its owner. A conversation identified only by the caller's number goes
 * to the number's object, which either records it (no link) or answers with the app user the number
 * is linked to, who then records it: one extra hop, only for phone-only conversations of linked numbers.
 */
export async function recordTranscription(
  env: Env,
  record: ConversationRecord,
  raw: Uint8Array,
  receivedAt: number,
): Promise<{ duplicate: boolean; record: ConversationRecord }> {
  const first = await ownerOf(env, record.userId, record.conversationId).recordConversation({ record, raw, receivedAt });
  if (first.linkedTo === undefined) return { duplicate: first.duplicate, record };
  const linked: ConversationRecord = { ...record, userId: first.linkedTo, userIdSource: "phone_link" };
  const second = await userMemory(env, first.linkedTo).recordConversation({ record: linked, raw, receivedAt });
  return { duplicate: second.duplicate, record: linked };
}
