/**
 * Signed audio links: a URL that lets an `<audio>` element stream one conversation's recording for a
 * few minutes without an API key. `<audio src>` cannot send an Authorization header, and the
 * alternative (download the whole MP3 with the key, play it from a blob) holds a long recording in the
 * browser's memory and plays nothing until the last byte has arrived.
 *
 * A link is minted by an authenticated call (POST /v1/conversations/:id/audio/link, API_KEY) and
 * reads `/v1/conversations/<id>/audio?expires=<unix seconds>&signature=<base64url>`. The signature is
 * the first 16 bytes of HMAC-SHA256 over `postcall audio link v1 \n <conversation id> \n <expires>`,
 * so it is good for that one conversation until that time and nothing else (no other route, no other
 * conversation, no later time). Every GET with it still looks the audio up, so an erased recording
 * stops playing at once, whatever links are still unexpired.
 *
 * Key: no secret of its own. Each API_KEY is stretched with HKDF-SHA256 (salt "postcall", info
 * "postcall audio link v1"): the first key signs, every listed key verifies, so rotating API_KEY
 * rotates the links' key with it, and dropping a key voids its links. A leaked link exposes one
 * recording for at most AUDIO_LINK_SECONDS; the key itself cannot be recovered from it.
 */
import { base64urlToBytes, bytesToBase64url } from "./bytes";
import { derivedMac } from "./derived-key";

/** How long a minted link plays. The console asks for a new one when a seek after this fails. */
export const AUDIO_LINK_SECONDS = 15 * 60;
const MAC_BYTES = 16;
const INFO = "postcall audio link v1";

export type AudioLinkCheck = { ok: true } | { ok: false; reason: "malformed" | "expired" | "bad_signature" | "no_key" };

const mac = (apiKey: string, conversationId: string, expires: number): Promise<Uint8Array> =>
  derivedMac(apiKey, INFO, `${INFO}\n${conversationId}\n${expires}`, MAC_BYTES);

/** The query string (`expires=...&signature=...`) of a link to `conversationId`'s audio, valid until `expires` (Unix seconds). */
export async function mintAudioLink(apiKeys: readonly string[], conversationId: string, expires: number): Promise<string> {
  const key = apiKeys[0];
  if (key === undefined) throw new Error("mintAudioLink needs an API_KEY");
  const signature = bytesToBase64url(await mac(key, conversationId, expires));
  return new URLSearchParams({ expires: String(expires), signature }).toString();
}

/**
 * Whether `expires` and `signature` (the link's query parameters) allow `conversationId`'s audio at
 * `now` (Unix seconds). A link further in the future than a fresh one would be is refused even when
 * its signature is good: only this code mints, and it never mints those.
 */
export async function checkAudioLink(
  apiKeys: readonly string[],
  conversationId: string,
  expires: string | null,
  signature: string | null,
  now: number,
): Promise<AudioLinkCheck> {
  if (expires === null || signature === null || !/^\d{1,12}$/.test(expires)) return { ok: false, reason: "malformed" };
  const presented = base64urlToBytes(signature);
  if (presented === null || presented.length !== MAC_BYTES) return { ok: false, reason: "malformed" };
  if (apiKeys.length === 0) return { ok: false, reason: "no_key" };
  const at = Number(expires);
  let good = false;
  // Every key is tried, whatever matched, so the time taken does not say which key signed.
  for (const key of apiKeys) {
    const expected = await mac(key, conversationId, at);
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= expected[i]! ^ presented[i]!;
    good = diff === 0 || good;
  }
  if (!good) return { ok: false, reason: "bad_signature" };
  if (at < now || at > now + AUDIO_LINK_SECONDS + 60) return { ok: false, reason: "expired" };
  return { ok: true };
}
