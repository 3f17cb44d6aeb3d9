/**
 * GET /v1/users: the user directory (D1 `users`), newest activity first, with an optional
 * case-insensitive substring filter on the user id. Feeds the operator console's user list.
 */
import type { Env } from "../env";
import { badRequest, json } from "../errors";
import { iso } from "./conversations";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

interface UserRow {
  user_id: string;
  first_call_at: number;
  last_call_at: number;
  conversation_count: number;
}

export async function listUsers(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const limit = pageSize(url.searchParams.get("limit"));
  const q = (url.searchParams.get("q") ?? "").trim();
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeKeyset(rawCursor);

  const where: string[] = [];
  const params: unknown[] = [];
  if (q !== "") {
    where.push("instr(lower(user_id), lower(?)) > 0");
    params.push(q);
  }
  if (after) {
    where.push("(last_call_at < ? OR (last_call_at = ? AND user_id < ?))");
    params.push(after[0], after[0], after[1]);
  }
  const { results } = await env.DB.prepare(
    `SELECT user_id, first_call_at, last_call_at, conversation_count FROM users
     ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY last_call_at DESC, user_id DESC LIMIT ?`,
  )
    .bind(...params, limit + 1)
    .all<UserRow>();
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
