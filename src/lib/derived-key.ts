/**
 * HMAC keys derived from configured secrets (HKDF-SHA256, salt "postcall", one `info` per use), so
 * one secret can key several kinds of signed value without any two being interchangeable: the user
 * token (from ELEVENLABS_WEBHOOK_SECRET) and the audio link (from API_KEY). Derived once per isolate.
 */
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

export function derivedHmacKey(secret: string, info: string): Promise<CryptoKey> {
  const id = `${info}\u0000${secret}`;
  let k = keys.get(id);
  if (!k) {
    k = (async () => {
      const ikm = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: encoder.encode("postcall"), info: encoder.encode(info) },
        ikm,
        { name: "HMAC", hash: "SHA-256", length: 256 },
        false,
        ["sign"],
      );
    })();
    keys.set(id, k);
  }
  return k;
}

/** The first `bytes` bytes of HMAC-SHA256 of `message` under the key derived from `secret` for `info`. */
export async function derivedMac(secret: string, info: string, message: string, bytes: number): Promise<Uint8Array> {
  const sig = await crypto.subtle.sign("HMAC", await derivedHmacKey(secret, info), encoder.encode(message));
  return new Uint8Array(sig, 0, bytes);
}
