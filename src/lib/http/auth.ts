/**
 * `Authorization: Bearer <key>` for `/v1` and the initiation webhook. Several keys may be valid at
 * once (comma-separated API_KEY) so they can be rotated without downtime. Fails closed: with no key
 * configured nothing is authorised.
 */
import { ApiError, unauthorized } from "../errors";
import { config } from "../config";
import type { Env } from "../env";
import { isAllowed } from "./source-ip";

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

// Keys are compared as SHA-256 digests: equal lengths for timingSafeEqual, and the time taken says
// nothing about the key's length or prefix. Digests of configured keys are computed once per isolate.
const keyDigests = new Map<string, Promise<Uint8Array>>();

function keyDigest(key: string): Promise<Uint8Array> {
  let d = keyDigests.get(key);
  if (!d) {
    d = digest(key);
    keyDigests.set(key, d);
  }
  return d;
}

export function bearerToken(request: Request): string | null {
  const header = request.headers.get("Authorization");
  if (header === null) return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export async function requireApiKey(request: Request, env: Env): Promise<void> {
  const keys = config(env).apiKeys;
  if (keys.length === 0) {
    throw new ApiError(500, "misconfigured", "No API_KEY is configured, so no request can be authorised.");
  }
  const token = bearerToken(request);
  if (token === null) {
    throw unauthorized("api_key_missing", "Send the API key as `Authorization: Bearer <key>`.");
  }
  const presented = await digest(token);
  let ok = false;
  for (const key of keys) ok = crypto.subtle.timingSafeEqual(presented, await keyDigest(key)) || ok;
  if (!ok) throw unauthorized("api_key_invalid", "The API key is not valid.");
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
