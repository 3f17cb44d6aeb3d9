/**
 * `Authorization: Bearer <key>` for `/v1` and the initiation webhook. Several keys may be valid at
 * once (comma-separated API_KEY) so they can be rotated without downtime, and every one is compared
 * (constant time, see `sameKey`). Fails closed: with no key configured nothing is authorised.
 */
import { ApiError, unauthorized } from "../errors";
import { config } from "../config";
import type { Env } from "../env";
import { isAllowed } from "./source-ip";

const encoder = new TextEncoder();

// Configured keys as bytes, encoded once per isolate.
const keyBytes = new Map<string, Uint8Array>();

function bytesOf(key: string): Uint8Array {
  let b = keyBytes.get(key);
  if (!b) {
    b = encoder.encode(key);
    keyBytes.set(key, b);
  }
  return b;
}

/**
 * Whether `presented` equals `key`, in time that depends only on the key's length (configuration,
 * not the caller's input): every byte of the key is compared, whatever the presented token's length
 * or content, and the result is one accumulated difference. This replaced comparing SHA-256 digests
 * with timingSafeEqual: equally blind to the token, but an async digest per request was a tenth of a
 * context read's CPU (bench:profile).
 */
export function sameKey(presented: Uint8Array, key: Uint8Array): boolean {
  let diff = presented.length ^ key.length;
  const n = presented.length;
  for (let i = 0; i < key.length; i++) diff |= key[i]! ^ (n === 0 ? 0 : presented[i % n]!);
  return diff === 0;
}

export function bearerToken(request: Request): string | null {
  const header = request.headers.get("Authorization");
  if (header === null) return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

function matchesAny(presented: Uint8Array, keys: readonly string[]): boolean {
  let ok = false;
  for (const key of keys) ok = sameKey(presented, bytesOf(key)) || ok;
  return ok;
}

/**
 * What a route lets in: `full` takes only API_KEY; `agent` (the routes ElevenLabs itself calls:
 * the initiation webhook, a user's context, the tools) also takes AGENT_API_KEY. An agent key on a
 * `full` route is a 403: it is a real key, kept in an agent's settings, that must not read
 * transcripts or delete users.
 */
export type Access = "full" | "agent";

export async function requireApiKey(request: Request, env: Env, access: Access = "full"): Promise<void> {
  const { apiKeys, agentKeys } = config(env);
  if (apiKeys.length === 0 && (access === "full" || agentKeys.length === 0)) {
    throw new ApiError(500, "misconfigured", "No API_KEY is configured, so no request can be authorised.");
  }
  const token = bearerToken(request);
  if (token === null) {
    throw unauthorized("api_key_missing", "Send the API key as `Authorization: Bearer <key>`.");
  }
  const presented = encoder.encode(token);
  // Both lists are always compared, so the time taken does not say which list a key is in.
  const full = matchesAny(presented, apiKeys);
  const agent = matchesAny(presented, agentKeys);
  if (full || (agent && access === "agent")) return;
  if (agent) {
    throw new ApiError(403, "agent_key_not_allowed", "AGENT_API_KEY is accepted only on the routes ElevenLabs calls; use API_KEY here.");
  }
  throw unauthorized("api_key_invalid", "The API key is not valid.");
}

/**
 * The optional webhook source allowlist (ALLOWED_SOURCE_IPS), checked before anything else is read.
 * 403 is final for ElevenLabs (no retry): right for traffic that does not come from it.
 */
export function requireAllowedSource(request: Request, env: Env): void {
  const allowlist = config(env).allowedSourceIps;
  if (allowlist === null) return;
  if (!isAllowed(allowlist, request.headers.get("CF-Connecting-IP"))) {
    throw new ApiError(403, "ip_not_allowed", "This source address may not call the webhooks (ALLOWED_SOURCE_IPS).");
  }
}
