/**
 * GET /v1/users: the user directory (src/storage/users.ts), newest activity first, with an optional
 * case-insensitive substring filter on the user id. Feeds the operator console's user list.
 */
import type { Env } from "../lib/env";
import { badRequest, json } from "../lib/errors";
import { iso } from "../lib/time";
import { listUsers as list } from "../storage/users";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

export async function listUsers(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const limit = pageSize(url.searchParams.get("limit"));
  const q = (url.searchParams.get("q") ?? "").trim();
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeKeyset(rawCursor);
  // One row more than the page tells whether another page exists without a count query.
  const results = await list(env.DB, { limit: limit + 1, q, after });
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  return json({
    users: page.map((u) => ({
      user_id: u.user_id,
      first_call_at: iso(u.first_call_at),
      last_call_at: iso(u.last_call_at),
      conversation_count: u.conversation_count,
    })),
    next_cursor: results.length > limit && last ? encodeKeyset(last.last_call_at, last.user_id) : null,
  });
}
