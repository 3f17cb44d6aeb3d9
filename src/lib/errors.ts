/**
 * One way to fail: every error a client can see is an `ApiError` with a stable `code`, rendered as
 * `{"error": {"code": "...", "message": "..."}}` by `errorResponse`, the one place that picks the status.
 *
 * ElevenLabs reads statuses, not bodies: 200 = delivered, 4xx = "your request is bad, never retry",
 * 5xx / 408 / 429 = "retry me" (transcription events only). So a 4xx must mean "this exact request
 * can never succeed" and a 5xx "we could not keep it, send it again".
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (code: string, message: string) => new ApiError(400, code, message);
export const unauthorized = (code: string, message: string) =>
  new ApiError(401, code, message, { "WWW-Authenticate": 'Bearer realm="postcall"' });
export const notFound = (code: string, message: string) => new ApiError(404, code, message);

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
  });
}

export function errorResponse(err: unknown): Response {
  if (err instanceof ApiError) {
    return json({ error: { code: err.code, message: err.message } }, err.status, err.headers);
  }
  // Anything else is our fault or a storage fault: 503 tells ElevenLabs to retry a transcription
  // event, and nothing was acknowledged.
  console.error("unhandled error", err instanceof Error ? (err.stack ?? err.message) : String(err));
  return json(
    { error: { code: "internal_error", message: "The request could not be processed; it was not stored. Retry later." } },
    503,
    { "Retry-After": "30" },
  );
}
