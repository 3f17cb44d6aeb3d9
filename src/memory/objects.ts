/**
 * Which Durable Object holds what, and stubs typed by kind (src/memory/roles.ts). Names are prefixed
 * so a user id can never collide with a conversation id. This is the only module that turns a name
 * into a stub.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { isE164 } from "../records/identity";
import type { MemoryRecord } from "../records/payload";
import { contextCache } from "./context-cache";
import type { ConversationObject, ImportObject, ObjectKind, PhoneObject, StatsObject, UserObject } from "./rpc";
import { STATS_OBJECT_NAME } from "../objects/health-stats/stats";

export const userObjectName = (userId: string) => `user:${userId}`;
export const conversationObjectName = (conversationId: string) => `conversation:${conversationId}`;
export const importObjectName = (importId: string) => `import:${importId}`;
/** A user's memory with one agent (MEMORY_SCOPE="agent"); the agent id is escaped so it holds no ":". */
export const scopedObjectName = (agentId: string, userId: string) => `agent:${encodeURIComponent(agentId)}:user:${userId}`;

/** The kind of object a name denotes, or null for a name postcall never gives out. */
export function kindOfName(name: string): ObjectKind | null {
  if (name.startsWith("agent:")) {
    const end = name.indexOf(":", 6);
    return end < 0 ? null : kindOfName(name.slice(end + 1));
  }
  if (name.startsWith("user:")) return isE164(name.slice(5)) ? "phone" : "user";
  if (name.startsWith("conversation:")) return "conversation";
  if (name === STATS_OBJECT_NAME) return "stats";
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

/**
 * MEMORY_SCOPE, in one place: the memory a conversation with `agentId` reads and writes. "user"
 * (the default): the user's object, whatever the agent. "agent": one object per agent and user; with
 * no agent id (a read that did not say which agent) the user's own object, which then holds no
 * agent's memory, only the registry of the user's scopes (`registerScope`), so no agent's memory
 * is ever served to another.
 */
export function memoryObject(env: Env, userId: string, agentId: string | null): UserObject {
  if (isScoped(env, userId, agentId)) return stub(env, scopedObjectName(agentId!, userId)) as UserObject;
  return userObject(env, userId);
}

/**
 * Whether a memory is per agent. A phone number's memory (`user:+E164`) never is: that object also
 * says who owns the number, for every agent, and phone-only calls reach it before any scope is known.
 */
function isScoped(env: Env, userId: string, agentId: string | null): boolean {
  return config(env).memoryScope === "agent" && agentId !== null && !isE164(userId);
}

/** A user's memory with one agent, whatever MEMORY_SCOPE says now (erasure erases every scope ever used). */
export function scopedObject(env: Env, userId: string, agentId: string): UserObject {
  return stub(env, scopedObjectName(agentId, userId)) as UserObject;
}

/** The key of a memory for per-isolate caches (src/memory/context-cache.ts): its object's name. */
export function memoryKey(env: Env, userId: string, agentId: string | null): string {
  return isScoped(env, userId, agentId) ? scopedObjectName(agentId!, userId) : userId;
}

/** Scopes this isolate has seen registered, so a registration costs a round trip once per agent and user. */
const registered = new Set<string>();
const REGISTERED_MAX = 10_000;

/**
 * The memory a conversation with `agentId` writes. In agent scope the scope is first registered
 * with the user's own object, before anything is written there, so an erasure of the user always
 * finds it (src/memory/erasure.ts `eraseScopes`).
 */
async function memoryToWrite(env: Env, userId: string, agentId: string): Promise<UserObject> {
  if (!isScoped(env, userId, agentId)) return userObject(env, userId);
  const key = scopedObjectName(agentId, userId);
  if (!registered.has(key)) {
    await userObject(env, userId).registerScope(agentId, Math.floor(Date.now() / 1000));
    if (registered.size >= REGISTERED_MAX) registered.clear();
    registered.add(key);
  }
  return scopedObject(env, userId, agentId);
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

/** The one object that keeps the health counters and the failing outboxes (src/memory/stats.ts). */
export function statsObject(env: Env): StatsObject {
  return stub(env, STATS_OBJECT_NAME) as StatsObject;
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
): Promise<{ duplicate: boolean; dropped?: "erased"; record: MemoryRecord }> {
  // A phone-only caller is first resolved by the number's object (shared by every agent: it says who owns the number).
  const owner =
    record.userId !== null && record.userIdSource !== "phone_number"
      ? await memoryToWrite(env, record.userId, record.agentId)
      : ownerOf(env, record.userId, record.conversationId);
  const first = await owner.recordConversation({ record, raw, receivedAt });
  let stored = record;
  let result = first;
  if (first.linkedTo !== undefined) {
    stored = { ...record, userId: first.linkedTo, userIdSource: "phone_link" };
    result = await (await memoryToWrite(env, first.linkedTo, record.agentId)).recordConversation({ record: stored, raw, receivedAt });
  }
  // This isolate's cached context for the user (CONTEXT_CACHE_SECONDS) is now out of date.
  if (stored.userId !== null) contextCache.forget(memoryKey(env, stored.userId, record.agentId));
  return { duplicate: result.duplicate, ...(result.dropped ? { dropped: result.dropped } : {}), record: stored };
}
