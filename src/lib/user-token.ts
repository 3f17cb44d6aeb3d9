/**
 * `postcall_user_token`: a short signed statement "this service vouched for user id U at time T".
 *
 * The context endpoint and the initiation webhook mint one for the user they answer for; the app
 * passes every returned dynamic variable into the session, so the token comes back inside the
 * post-call event's `conversation_initiation_client_data.dynamic_variables`, and can be given to a
 * server tool as a dynamic-variable parameter. A client can copy a token, but cannot make one for
 * another user id, nor move its time.
 *
 * Format: `pu1.<base64url(UTF-8 user id)>.<issued-at, Unix seconds>.<base64url(first 16 bytes of
 * HMAC-SHA256)>`, the MAC over everything before its dot.
 *
 * Key: no secret of its own. Each ELEVENLABS_WEBHOOK_SECRET is stretched with HKDF-SHA256
 * (salt "postcall", info "postcall user token v1") into an HMAC key: the first secret signs, every
 * listed secret verifies, so rotating the webhook secret the usual way (add the new one first, drop
 * the old one later) rotates the token key with it, and dropping a secret retires its tokens.
 */

import { base64urlToBytes, bytesToBase64url } from "./bytes";
import { derivedMac } from "./derived-key";

export const TOKEN_PREFIX = "pu1";
/** The dynamic variable that carries the token, out (context, initiation) and back (the post-call event). */
export const USER_TOKEN_VARIABLE = "postcall_user_token";
const MAC_BYTES = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface UserTokenClaims {
  userId: string;
  /** Unix seconds. */
  issuedAt: number;
}

export type TokenCheck =
  | { ok: true; claims: UserTokenClaims }
  | { ok: false; reason: "missing" | "malformed" | "bad_signature" | "no_key" };

const mac = (secret: string, message: string): Promise<Uint8Array> => derivedMac(secret, "postcall user token v1", message, MAC_BYTES);

/** A token for `userId`, issued at `issuedAt` (Unix seconds), signed with the first secret. */
export async function mintUserToken(secrets: readonly string[], userId: string, issuedAt: number): Promise<string> {
  const secret = secrets[0];
  if (secret === undefined) throw new Error("mintUserToken needs at least one ELEVENLABS_WEBHOOK_SECRET");
  const body = `${TOKEN_PREFIX}.${bytesToBase64url(encoder.encode(userId))}.${Math.floor(issuedAt)}`;
  return `${body}.${bytesToBase64url(await mac(secret, body))}`;
}

/**
 * Longest token accepted: a 256-character id of 4-byte UTF-8 characters is 1,024 bytes, 1,366
 * characters of base64url, plus the prefix, a time and the MAC. Cheap to refuse junk.
 */
const MAX_TOKEN_LENGTH = 1_420;

/**
 * Checks the signature only: what the token says (user id, time). Whether it covers a given user id
 * and conversation is the caller's rule (`tokenCovers`).
 */
export async function verifyUserToken(secrets: readonly string[], token: unknown): Promise<TokenCheck> {
  if (token === undefined || token === null || token === "") return { ok: false, reason: "missing" };
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "malformed" };
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== TOKEN_PREFIX || !/^\d{1,12}$/.test(parts[2]!)) {
    return { ok: false, reason: "malformed" };
  }
  const idBytes = base64urlToBytes(parts[1]!);
  const presented = base64urlToBytes(parts[3]!);
  if (idBytes === null || presented === null || presented.length !== MAC_BYTES) return { ok: false, reason: "malformed" };
  let userId: string;
  try {
    userId = decoder.decode(idBytes);
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (secrets.length === 0) return { ok: false, reason: "no_key" };
  const body = `${parts[0]}.${parts[1]}.${parts[2]}`;
  let good = false;
  for (const secret of secrets) {
    const expected = await mac(secret, body);
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= expected[i]! ^ presented[i]!;
    good = diff === 0 || good;
  }
  if (!good) return { ok: false, reason: "bad_signature" };
  return { ok: true, claims: { userId, issuedAt: Number(parts[2]) } };
}

/** Seconds a token may predate the conversation it vouches for (clocks differ a little). */
export const TOKEN_CLOCK_SKEW_SECONDS = 300;

/**
 * Whether verified `claims` vouch for `userId` in a conversation that started at `startedAt` (Unix
 * seconds): same id, and the conversation started no earlier than a little before the token was
 * issued and no later than `lifetimeSeconds` after.
 */
export function tokenCovers(claims: UserTokenClaims, userId: string, startedAt: number, lifetimeSeconds: number): boolean {
  return (
    claims.userId === userId &&
    startedAt >= claims.issuedAt - TOKEN_CLOCK_SKEW_SECONDS &&
    startedAt <= claims.issuedAt + lifetimeSeconds
  );
}
