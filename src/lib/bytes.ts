/** Byte helpers shared by the webhook path, the R2 upload and the outbox. Pure. */

/** The pieces as one array, copied once (not at all when there is a single piece). */
export function concatBytes(chunks: Uint8Array[], total = chunks.reduce((n, c) => n + c.byteLength, 0)): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** Lower-case hex of the bytes (MACs, SHA-256 digests). */
export function bytesToHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * Standard base64 of the bytes (the export's inline audio). Built from 24 KiB slices (a multiple of
 * three, so slices never straddle a group) to keep `String.fromCharCode` arguments small.
 */
export function bytesToBase64(bytes: Uint8Array): string {
  const SLICE = 24 * 1024;
  let out = "";
  for (let i = 0; i < bytes.byteLength; i += SLICE) {
    out += btoa(String.fromCharCode(...bytes.subarray(i, i + SLICE)));
  }
  return out;
}

/** URL-safe base64 without padding (tokens and signed links). */
export function bytesToBase64url(bytes: Uint8Array): string {
  return bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of URL-safe base64 (padding optional), or null when `text` is not that. */
export function base64urlToBytes(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}
