import { readAtMost } from "../lib/http/body";
import { ApiError } from "../lib/errors";

export const payloadTooLarge = (max: number) =>
  new ApiError(413, "payload_too_large", `The request body is larger than the ${max}-byte limit.`);

/**
 * Reads the whole body, refusing as soon as it passes `maxBytes` (so an oversized chunked body is
 * never buffered past the limit). Chunks are gathered and copied once at the end.
 */
export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  // Used by the initiation webhook and for post-call bodies that declare a length of up to 1 MiB
  // (src/webhooks/handler.ts); chunked bodies (audio) stream through ingestBody (src/webhooks/ingest.ts).
  const bytes = await readAtMost(request, maxBytes);
  if (bytes === null) throw payloadTooLarge(maxBytes);
  return bytes;
}
