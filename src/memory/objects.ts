/**
 * The one module that turns a name into a stub (Worker code and object code alike reach an object
 * only through here). Stubs are typed by class from the bindings wrangler generates
 * (worker-configuration.d.ts, `npm run types`), so asking a ledger for a snapshot does not compile;
 * names are typed too (src/records/object-names.ts), so no string is an object name by accident.
 * MEMORY_SCOPE is decided here, and only here.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { isE164 } from "../records/identity";
import {
  conversationObjectName,
  importObjectName,
  phoneObjectName,
  scopedObjectName,
  STATS_OBJECT_NAME,
  userObjectName,
  type MemoryName,
  type ObjectName,
} from "../records/object-names";

type MemoryStub = ReturnType<Env["USER_MEMORY"]["get"]>;
/** What only a phone number's object answers (UserMemory checks again at run time). */
type PhoneOnly = "resolveCaller" | "setOwner" | "clearOwner";
/** What only a pre-Core v3 object (a conversation or import that lived in UserMemory) answers. */
type LegacyOnly = "handOverConversation" | "handOverImport" | "forgetLegacy";
export type UserStub = Omit<MemoryStub, PhoneOnly | LegacyOnly>;
export type PhoneStub = Omit<MemoryStub, LegacyOnly>;
export type LegacyStub = Pick<MemoryStub, LegacyOnly>;
export type LedgerStub = ReturnType<Env["CONVERSATION_LEDGER"]["get"]>;
export type StatsStub = ReturnType<Env["HEALTH_STATS"]["get"]>;
export type ImportStub = ReturnType<Env["HISTORY_IMPORT"]["get"]>;

const memory = (env: Env, name: MemoryName | ObjectName<"phone">): MemoryStub => env.USER_MEMORY.get(env.USER_MEMORY.idFromName(name));

/** A user's object. A user id that is a phone number in E.164 names that number's object. */
export const userObject = (env: Env, userId: string): UserStub => memory(env, userObjectName(userId));

/** A phone number's object; `phoneNumber` must already be normalised to E.164. */
export const phoneObject = (env: Env, phoneNumber: string): PhoneStub => memory(env, phoneObjectName(phoneNumber));

/** A user's memory with one agent, whatever MEMORY_SCOPE says now (erasure erases every scope ever used). */
export const scopedObject = (env: Env, userId: string, agentId: string): UserStub => memory(env, scopedObjectName(agentId, userId));

/** A conversation's ledger: its audio link, call failure, and the conversation itself when no user owns it. */
export const ledgerObject = (env: Env, conversationId: string): LedgerStub =>
  env.CONVERSATION_LEDGER.get(env.CONVERSATION_LEDGER.idFromName(conversationObjectName(conversationId)));

/** The one object that keeps the health counters and the failing outboxes. */
export const statsObject = (env: Env): StatsStub => env.HEALTH_STATS.get(env.HEALTH_STATS.idFromName(STATS_OBJECT_NAME));

/** A history import's object. */
export const importObject = (env: Env, importId: string): ImportStub => env.HISTORY_IMPORT.get(env.HISTORY_IMPORT.idFromName(importObjectName(importId)));

/**
 * The object a conversation or import lived in before Core v3 (UserMemory, under the same name):
 * what it still holds is handed over to the new class on first touch (docs/storage.md).
 */
export const legacyObject = (env: Env, name: ObjectName<"conversation" | "import">): LegacyStub => env.USER_MEMORY.get(env.USER_MEMORY.idFromName(name));

/**
 * Whether a memory is per agent. A phone number's memory (`user:+E164`) never is: that object also
 * says who owns the number, for every agent, and phone-only calls reach it before any scope is known.
 */
function isScoped(env: Env, userId: string, agentId: string | null): agentId is string {
  return config(env).memoryScope === "agent" && agentId !== null && !isE164(userId);
}

/**
 * MEMORY_SCOPE, in one place: the name of the memory a conversation with `agentId` reads and
 * writes. "user" (the default): the user's object, whatever the agent. "agent": one object per
 * agent and user; with no agent id (a read that did not say which agent) the user's own object,
 * which then holds no agent's memory, only the registry of the user's scopes (`registerScope`), so
 * no agent's memory is ever served to another. This name is also the context cache's key.
 */
export function memoryName(env: Env, userId: string, agentId: string | null): MemoryName {
  return isScoped(env, userId, agentId) ? scopedObjectName(agentId, userId) : userObjectName(userId);
}

/** The memory a read names (see `memoryName`). */
export const memoryObject = (env: Env, name: MemoryName): UserStub => memory(env, name);

/** Scopes this isolate has seen registered, so a registration costs a round trip once per agent and user. */
const registered = new Set<MemoryName>();
const REGISTERED_MAX = 10_000;

/**
 * The memory a conversation with `agentId` writes. In agent scope the scope is first registered
 * with the user's own object, before anything is written there, so an erasure of the user always
 * finds it (user-memory/erasure.ts `eraseScopes`).
 */
export async function memoryToWrite(env: Env, userId: string, agentId: string | null): Promise<{ name: MemoryName; stub: UserStub }> {
  const name = memoryName(env, userId, agentId);
  if (isScoped(env, userId, agentId) && !registered.has(name)) {
    await userObject(env, userId).registerScope(agentId, Math.floor(Date.now() / 1000));
    if (registered.size >= REGISTERED_MAX) registered.clear();
    registered.add(name);
  }
  return { name, stub: memory(env, name) };
}
