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
