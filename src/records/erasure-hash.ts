/**
 * The keyed hashes the erasure ledger keeps instead of ids (docs/storage.md "The erasure ledger"). Pure:
 * the key is given. HMAC-SHA256 of a domain-separated message, the first 128 bits in hex: a user id or a
 * conversation id cannot be read back from it, and without the key it cannot even be confirmed by
 * guessing (user ids are often guessable: an email, a customer number).
 */

export type HashedKind = "user" | "conversation";

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let k = keys.get(secret);
  if (!k) {
    k = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    if (keys.size > 16) keys.clear();
    keys.set(secret, k);
  }
  return k;
}

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf, 0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The ledger's hash of a user id or a conversation id under one key (32 hex characters). */
export async function ledgerHash(secret: string, kind: HashedKind, id: string): Promise<string> {
  return hex(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`postcall-erasure-ledger\n${kind}\n${id}`)));
}

/** The id's hash under every key, the newest first (a lookup matches any: a rotated key's entries still count). */
export function ledgerHashes(secrets: readonly string[], kind: HashedKind, id: string): Promise<string[]> {
  return Promise.all(secrets.map((s) => ledgerHash(s, kind, id)));
}

/** An object's own salted hash of a conversation id (the erasure entry it carries: src/objects/shared/tombstone.ts). */
export async function saltedHash(salt: string, id: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(`${salt}\n${id}`)));
}

/** A hash as the ledger writes it: 32 lowercase hex characters (what `?user_id=` never accepts in its place). */
export const isLedgerHash = (s: string) => /^[0-9a-f]{32}$/.test(s);
