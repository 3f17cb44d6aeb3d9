/**
 * Full Durable Object stubs for tests (src/memory/objects.ts hands out stubs typed by kind; a test
 * may also need the class itself, for runInDurableObject). Names come from the service's own rules.
 */
import { env } from "cloudflare:workers";
import { conversationObjectName, userObjectName } from "../src/memory/objects";

type TestEnv = typeof env;

/** The object of a user (or of a phone number, for an id in E.164). */
export function userMemory(e: TestEnv, userId: string) {
  return e.USER_MEMORY.get(e.USER_MEMORY.idFromName(userObjectName(userId)));
}

/** The object of a conversation with no user (and of every conversation's audio link). */
export function conversationMemory(e: TestEnv, conversationId: string) {
  return e.USER_MEMORY.get(e.USER_MEMORY.idFromName(conversationObjectName(conversationId)));
}

/** The object that owns a conversation's delivery. */
export function ownerOf(e: TestEnv, userId: string | null, conversationId: string) {
  return userId !== null ? userMemory(e, userId) : conversationMemory(e, conversationId);
}
