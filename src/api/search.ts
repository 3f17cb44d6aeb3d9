/**
 * GET /v1/search?q=...: full-text search over transcripts (src/storage/search.ts), for the console.
 */
import type { Env } from "../lib/env";
import { badRequest, json } from "../lib/errors";
import { iso } from "../lib/time";
import { searchTranscripts as search } from "../storage/search";
import { pageSize } from "./cursor";

export async function searchTranscripts(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const q = url.searchParams.get("q") ?? "";
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const limit = pageSize(url.searchParams.get("limit"), 20, 50);
  const results = await search(env, q, limit);
  if (results === null) throw badRequest("invalid_query", "q must contain at least one word.");
  return json({ query: q, results: results.map((h) => ({ ...h, started_at: iso(h.started_at) })) });
}
