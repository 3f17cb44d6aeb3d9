/**
 * Which Durable Object holds what, and stubs typed by kind (src/memory/roles.ts). Names are prefixed
 * so a user id can never collide with a conversation id. This is the only module that turns a name
 * into a stub.
 */
import type { Env } from "../lib/env";
import { isE164 } from "../records/identity";
import type { MemoryRecord } from "../records/payload";
import { contextCache } from "./context-cache";
import type { ConversationObject, ImportObject, ObjectKind, PhoneObject, UserObject } from "./roles";

export const userObjectName = (userId: string) => `user:${userId}`;
export const conversationObjectName = (conversationId: string) => `conversation:${conversationId}`;
export const importObjectName = (importId: string) => `import:${importId}`;

/** The kind of object a name denotes, or null for a name postcall never gives out. */
export function kindOfName(name: string): ObjectKind | null {
  if (name.startsWith("user:")) return isE164(name.slice(5)) ? "phone" : "user";
  if (name.startsWith("conversation:")) return "conversation";
  if (name.startsWith("import:")) return "import";
  return null;
}

function stub(env: Env, name: string): unknown {
  const ns = env.USER_MEMORY as DurableObjectNamespace;
  return ns.get(ns.idFromName(name));
}

/** A user's object. A user id that is a phone number in E.164 names that number's object. */
export function userObject(env: Env, userId: string): UserObject {
  return stub(env, userObjectName(userId)) as UserObject;
}

/** A phone number's object; `phoneNumber` must already be normalised to E.164. */
export function phoneObject(env: Env, phoneNumber: string): PhoneObject {
  if (!isE164(phoneNumber)) throw new Error("phoneObject needs a number in E.164");
  return stub(env, userObjectName(phoneNumber)) as PhoneObject;
}

/** The object of a conversation with no user: its delivery, call failure and audio link. */
export function conversationObject(env: Env, conversationId: string): ConversationObject {
  return stub(env, conversationObjectName(conversationId)) as ConversationObject;
}

/** A history import's object (src/memory/imports.ts). */
export function importObject(env: Env, importId: string): ImportObject {
  return stub(env, importObjectName(importId)) as ImportObject;
}

/** The object that owns a conversation's delivery: its user's, or its own when it has no user. */
export function ownerOf(env: Env, userId: string | null, conversationId: string): UserObject | ConversationObject {
  return userId !== null ? userObject(env, userId) : conversationObject(env, conversationId);
}

/**
 * Records a transcription with its owner. A conversation identified only by the caller's number goes
 * to the number's object, which either records it (no link) or answers with the app user the number
 * is linked to, who then records it: one extra hop, only for phone-only conversations of linked numbers.
 */
export async function recordTranscription(
  env: Env,
  record: MemoryRecord,
  raw: Uint8Array,
  receivedAt: number,
): Promise<{ duplicate: boolean; record: MemoryRecord }> {
  const first = await ownerOf(env, record.userId, record.conversationId).recordConversation({ record, raw, receivedAt });
  let stored = record;
  let duplicate = first.duplicate;
  if (first.linkedTo !== undefined) {
    stored = { ...record, userId: first.linkedTo, userIdSource: "phone_link" };
    ({ duplicate } = await userObject(env, first.linkedTo).recordConversation({ record: stored, raw, receivedAt }));
  }
  // This isolate's cached context for the user (CONTEXT_CACHE_SECONDS) is now out of date.
  if (stored.userId !== null) contextCache.forget(stored.userId);
  return { duplicate, record: stored };
}
