/**
 * The memory served back: a user's dynamic variables for their next conversation, for the context
 * API and the initiation webhook.
 */
import { config, type VariableValue } from "../lib/config";
import type { Env } from "../lib/env";
import { contextCache } from "./context-cache";
import { phoneObject, userObject } from "./objects";
import { EMPTY_SNAPSHOT, renderVariables, type MemorySnapshot } from "./variables";

function render(env: Env, snapshot: MemorySnapshot, nowMs: number): Record<string, VariableValue> {
  const cfg = config(env);
  return renderVariables(snapshot, {
    defaults: cfg.defaultVariables,
    previousTopicsMaxChars: cfg.previousTopicsMaxChars,
    nowSeconds: Math.floor(nowMs / 1000),
  });
}

/** A user's variables: one round trip to their object (or the opt-in per-isolate cache). */
export async function dynamicVariablesFor(env: Env, userId: string, nowMs = Date.now()): Promise<Record<string, VariableValue>> {
  const ttl = config(env).contextCacheSeconds;
  let snapshot = ttl > 0 ? contextCache.get(userId, nowMs) : null;
  if (snapshot === null) {
    snapshot = await userObject(env, userId).snapshot();
    contextCache.set(userId, snapshot, nowMs, ttl);
  }
  return render(env, snapshot, nowMs);
}

/**
 * A phone caller's variables: the app user the number is linked to (then that user's memory, a
 * second round trip), else the number's own memory. A null number gets the first-time defaults.
 */
export async function callerVariables(
  env: Env,
  phone: string | null,
  nowMs = Date.now(),
): Promise<{ userId: string | null; variables: Record<string, VariableValue> }> {
  if (phone === null) return { userId: null, variables: render(env, EMPTY_SNAPSHOT, nowMs) };
  const caller = await phoneObject(env, phone).resolveCaller();
  if (caller.linkedTo === null) return { userId: null, variables: render(env, caller.snapshot, nowMs) };
  const snapshot = await userObject(env, caller.linkedTo).snapshot();
  return { userId: caller.linkedTo, variables: render(env, snapshot, nowMs) };
}

/** The first-time defaults (every variable present), for a caller whose memory cannot be read. */
export const defaultVariables = (env: Env, nowMs = Date.now()) => render(env, EMPTY_SNAPSHOT, nowMs);
