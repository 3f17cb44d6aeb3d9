/**
 * Which Durable Object holds what. One object per user, named `user:<id>`; a conversation that
 * belongs to no user (no id, no phone number) is kept by an object named `conversation:<id>`, which
 * holds only its delivery record and outbox. Names are prefixed so a user id can never collide with
 * a conversation id.
 */
import type { Env } from "../env";

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
