/**
 * Durable Object names, as types. Every object postcall addresses is named here, and a name is a
 * branded string: a user id, a conversation id or an arbitrary string is never an object name by
 * accident (the compiler refuses it). The per-isolate context cache is keyed by the memory's object
 * name too (src/memory/context-cache.ts), so "user `agent:A:user:bob`" and "bob's memory with agent
 * A" can never share an entry: the first is `user:agent:A:user:bob`, the second `agent:A:user:bob`.
 *
 *   user:<app user id>             a user's memory                          UserMemory (USER_MEMORY)
 *   user:<+E164>                   a phone number's memory and owner        UserMemory
 *   agent:<agent>:user:<user id>   a user's memory with one agent (scoped)  UserMemory
 *   conversation:<id>              a conversation's ledger                  ConversationLedger (CONVERSATION_LEDGER)
 *   stats:global                   the health counters                      HealthStats (HEALTH_STATS)
 *   import:<id>                    one history import                       HistoryImport (HISTORY_IMPORT)
 *
 * Before Core v3 every kind lived in UserMemory under these same names; `kindOfName` still reads
 * them, so that class can hand its old conversation and import objects over (docs/storage.md).
 */
import { isE164 } from "./identity";

declare const brand: unique symbol;

export type ObjectKind = "user" | "phone" | "conversation" | "stats" | "import";
/** The name of an object of one of `K`'s kinds. */
export type ObjectName<K extends ObjectKind = ObjectKind> = string & { readonly [brand]: K };
/** A memory's object: a user's, a phone number's, or a user's memory with one agent. */
export type MemoryName = ObjectName<"user" | "phone">;

/** A user's own object. A user id that is a phone number in E.164 names that number's object. */
export const userObjectName = (userId: string) => `user:${userId}` as MemoryName;
export function phoneObjectName(phoneNumber: string): ObjectName<"phone"> {
  if (!isE164(phoneNumber)) throw new Error("a phone number's object needs a number in E.164");
  return `user:${phoneNumber}` as ObjectName<"phone">;
}
/** A user's memory with one agent (MEMORY_SCOPE="agent"); the agent id is escaped so it holds no ":". */
export const scopedObjectName = (agentId: string, userId: string) => `agent:${encodeURIComponent(agentId)}:user:${userId}` as MemoryName;
export const conversationObjectName = (conversationId: string) => `conversation:${conversationId}` as ObjectName<"conversation">;
export const importObjectName = (importId: string) => `import:${importId}` as ObjectName<"import">;
export const STATS_OBJECT_NAME = "stats:global" as ObjectName<"stats">;

/** The kind of object a name denotes, or null for a name postcall never gives out. */
export function kindOfName(name: string): ObjectKind | null {
  if (name.startsWith("agent:")) {
    const end = name.indexOf(":", 6);
    if (end < 0 || !name.startsWith("user:", end + 1)) return null;
    const kind = kindOfName(name.slice(end + 1));
    return kind === "user" ? "user" : null;
  }
  if (name.startsWith("user:")) return name.length === 5 ? null : isE164(name.slice(5)) ? "phone" : "user";
  if (name.startsWith("conversation:")) return name.length > 13 ? "conversation" : null;
  if (name === STATS_OBJECT_NAME) return "stats";
  if (name.startsWith("import:")) return name.length > 7 ? "import" : null;
  return null;
}

/** The user id a memory's name belongs to (`agent:A:user:bob` and `user:bob` both give `bob`). */
export function userIdOfName(name: MemoryName): string {
  const at = name.startsWith("agent:") ? name.indexOf(":user:", 6) + 6 : 5;
  return name.slice(at);
}
