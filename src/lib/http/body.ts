/**
 * Reading a request body up to a limit, refusing as soon as it passes it (so an oversized chunked
 * body is never buffered past the limit). Shared by the webhooks (a 413) and the tools (a 200 that
 * says bad_request: src/api/recall.ts).
 */
import { concatBytes } from "../bytes";

/** The whole body, or null once it passes `maxBytes` (the rest is not read). */
export async function readAtMost(request: Request, maxBytes: number): Promise<Uint8Array | null> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && /^\d+$/.test(declared)) {
    if (Number(declared) > maxBytes) {
      await request.body?.cancel().catch(() => {});
      return null;
    }
    // A body of declared length within the limit is read in one native call: HTTP framing stops it
    // at that length, and the JavaScript loop below costs a promise per ~4 KB piece, then a copy
    // (measured with bench/profile.mjs).
    const whole = new Uint8Array(await request.arrayBuffer());
    // Only a Request built in code (not one off the network) can carry a header that lies.
    return whole.byteLength > maxBytes ? null : whole;
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
      return null;
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}
