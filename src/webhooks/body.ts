import { concatBytes } from "../lib/bytes";
import { ApiError } from "../lib/errors";

export const payloadTooLarge = (max: number) =>
  new ApiError(413, "payload_too_large", `The request body is larger than the ${max}-byte limit.`);

/**
 * Reads the whole body, refusing as soon as it passes `maxBytes` (so an oversized chunked body is
 * never buffered past the limit). Chunks are gathered and copied once at the end.
 */
export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && /^\d+$/.test(declared)) {
    if (Number(declared) > maxBytes) {
      await request.body?.cancel().catch(() => {});
      throw payloadTooLarge(maxBytes);
    }
    // A body of declared length within the limit is read in one native call: HTTP framing stops it
    // at that length, and the JavaScript loop below costs a promise per ~4 KB piece, then a copy
    // (measured with bench/profile.mjs). Used by the initiation webhook and for post-call bodies that
    // declare a length of up to 1 MiB (src/webhooks/handler.ts); chunked bodies (audio) stream
    // through ingestBody (src/webhooks/ingest.ts) instead.
    const whole = new Uint8Array(await request.arrayBuffer());
    // Only a Request built in code (not one off the network) can carry a header that lies.
    if (whole.byteLength > maxBytes) throw payloadTooLarge(maxBytes);
    return whole;
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw payloadTooLarge(maxBytes);
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}
