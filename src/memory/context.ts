/**
 * The memory served back: a user's dynamic variables for their next conversation, for the context
 * API and the initiation webhook.
 */
import { config, type VariableValue } from "../lib/config";
import type { Env } from "../lib/env";
import { mintUserToken, USER_TOKEN_VARIABLE } from "../lib/user-token";
import { contextCache } from "./context-cache";
import { memoryName, memoryObject, phoneObject } from "./objects";
import { EMPTY_SNAPSHOT, renderVariables, type MemorySnapshot } from "./variables";

function render(env: Env, snapshot: MemorySnapshot, nowMs: number): Record<string, VariableValue> {
  const cfg = config(env);
  return renderVariables(snapshot, {
    defaults: cfg.defaultVariables,
    previousTopicsMaxChars: cfg.previousTopicsMaxChars,
    nowSeconds: Math.floor(nowMs / 1000),
    // The initiation answer sets it; the context answer leaves it to the app (README snippet).
    reserved: [cfg.userIdVariable],
  });
}

export { USER_TOKEN_VARIABLE };

/** Tokens are issued on whole minutes, so one per user per minute is signed and the rest reused. */
const TOKEN_GRANULARITY_SECONDS = 60;
const TOKEN_CACHE_MAX = 10_000;
const tokens = new Map<string, { minute: number; token: string }>();

/**
 * `postcall_user_token` for `userId` (src/lib/user-token.ts), or "" when there is no user or no
 * ELEVENLABS_WEBHOOK_SECRET to derive its key from (then no event could be verified either).
 */
export async function userTokenFor(env: Env, userId: string | null, nowMs = Date.now()): Promise<string> {
  const secrets = config(env).webhookSecrets;
  if (userId === null || secrets.length === 0) return "";
  const minute = Math.floor(nowMs / 1000 / TOKEN_GRANULARITY_SECONDS) * TOKEN_GRANULARITY_SECONDS;
  const key = `${secrets[0]}\u0000${userId}`;
  const hit = tokens.get(key);
  if (hit !== undefined && hit.minute === minute) return hit.token;
  const token = await mintUserToken(secrets, userId, minute);
  if (tokens.size >= TOKEN_CACHE_MAX) tokens.clear();
  tokens.set(key, { minute, token });
  return token;
}

/**
 * A user's variables: one round trip to their object (or the opt-in per-isolate cache). `agentId`
 * picks the memory when MEMORY_SCOPE="agent" (src/memory/objects.ts `memoryObject`).
 */
export async function dynamicVariablesFor(
  env: Env,
  userId: string,
  nowMs = Date.now(),
  agentId: string | null = null,
): Promise<Record<string, VariableValue>> {
  const ttl = config(env).contextCacheSeconds;
  // The cache is keyed by the memory's object name, never by a user id (src/records/object-names.ts).
  const key = memoryName(env, userId, agentId);
  let snapshot = ttl > 0 ? contextCache.get(key, nowMs) : null;
  if (snapshot === null) {
    snapshot = await memoryObject(env, key).snapshot();
    contextCache.set(key, snapshot, nowMs, ttl);
  }
  const vars = render(env, snapshot, nowMs);
  vars[USER_TOKEN_VARIABLE] = await userTokenFor(env, userId, nowMs);
  return vars;
}

/**
 * A phone caller's variables: the app user the number is linked to (then that user's memory, a
 * second round trip), else the number's own memory. A null number gets the first-time defaults.
 */
export async function callerVariables(
  env: Env,
  phone: string | null,
  nowMs = Date.now(),
  agentId: string | null = null,
): Promise<{ userId: string | null; variables: Record<string, VariableValue> }> {
  if (phone === null) return { userId: null, variables: defaultVariables(env, nowMs) };
  const caller = await phoneObject(env, phone).resolveCaller();
  // The token names whose memory this call reads: the linked app user, else the number itself (so a
  // server tool can recall a phone caller's memory too).
  const owner = caller.linkedTo ?? phone;
  // A number's own memory is shared by every agent (it also says who owns the number); a linked app
  // user's is read in the agent's scope.
  const snapshot = caller.linkedTo === null ? caller.snapshot : await memoryObject(env, memoryName(env, caller.linkedTo, agentId)).snapshot();
  const variables = render(env, snapshot, nowMs);
  variables[USER_TOKEN_VARIABLE] = await userTokenFor(env, owner, nowMs);
  return { userId: caller.linkedTo, variables };
}

/** The initiation webhook's answer (docs/elevenlabs.md#initiation), and whether memory was unreadable. */
export interface InitiationAnswer {
  body: { type: "conversation_initiation_client_data"; dynamic_variables: Record<string, VariableValue>; user_id?: string };
  degraded: boolean;
}

/**
 * What ElevenLabs receives while `phone` rings: the webhook answers with it, and the console shows it
 * on a number's page (GET /v1/phones/:phoneNumber/initiation), so both say the same thing.
 */
export async function initiationAnswer(env: Env, phone: string | null, nowMs = Date.now(), agentId: string | null = null): Promise<InitiationAnswer> {
  let userId: string | null = null;
  let variables: Record<string, VariableValue>;
  let degraded = false;
  try {
    ({ userId, variables } = await callerVariables(env, phone, nowMs, agentId));
  } catch (err) {
    // Memory is a nicety on a ringing phone; an error here would fail the call. Answer the
    // defaults and say so in a header and the log, rather than dropping the caller.
    console.error("initiation: memory unavailable", err instanceof Error ? err.message : String(err));
    degraded = true;
    userId = null;
    variables = defaultVariables(env, nowMs);
  }
  // The user id variable is always defined, so an agent that uses it does not fail on a phone call:
  // the linked app user's id, or "" when the caller has none. "" (not the number) leaves the
  // post-call transcription to resolve the caller by number, which follows links made meanwhile.
  variables[config(env).userIdVariable] = userId ?? "";
  return {
    body: {
      type: "conversation_initiation_client_data",
      dynamic_variables: variables,
      // Only an app user's id is sent: ElevenLabs shows it as the conversation's user, and sends it
      // back in the post-call webhook, where it is the strongest identity signal.
      ...(userId !== null ? { user_id: userId } : {}),
    },
    degraded,
  };
}

/**
 * The first-time defaults (every variable present, the token empty), for a caller with no number
 * or whose memory cannot be read.
 */
export function defaultVariables(env: Env, nowMs = Date.now()): Record<string, VariableValue> {
  const vars = render(env, EMPTY_SNAPSHOT, nowMs);
  vars[USER_TOKEN_VARIABLE] = "";
  return vars;
}
