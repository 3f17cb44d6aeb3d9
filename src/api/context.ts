/**
 * The memory served back: a user's dynamic variables for their next conversation.
 */
import { config } from "../config";
import type { Env } from "../env";
import { json } from "../errors";
import { userMemory } from "../memory/route";
import { renderVariables } from "../memory/variables";
import { contextCache } from "./context-cache";
import type { VariableValue } from "../config";

export async function dynamicVariablesFor(env: Env, userId: string, nowMs = Date.now()): Promise<Record<string, VariableValue>> {
  const cfg = config(env);
  let snapshot = cfg.contextCacheSeconds > 0 ? contextCache.get(userId, nowMs) : null;
  if (snapshot === null) {
    snapshot = await userMemory(env, userId).snapshot();
    contextCache.set(userId, snapshot, nowMs, cfg.contextCacheSeconds);
  }
  return renderVariables(snapshot, {
    defaults: cfg.defaultVariables,
    previousTopicsMaxChars: cfg.previousTopicsMaxChars,
    nowSeconds: Math.floor(nowMs / 1000),
  });
}

export async function getContext(env: Env, userId: string): Promise<Response> {
  return json({ user_id: userId, dynamic_variables: await dynamicVariablesFor(env, userId) });
}
