/**
 * D1 `users`: the user directory behind the console's user list, newest activity first. Rows are
 * written by the conversation writes and erasures (src/storage/conversations.ts, erase.ts).
 */
export interface DirectoryRow {
  user_id: string;
  first_call_at: number;
  last_call_at: number;
  conversation_count: number;
}

/**
 * Up to `limit` users, newest activity first (index users_by_activity), strictly after the keyset
 * position `after` = [last_call_at, user_id], optionally those whose id contains `q` (any case).
 */
export async function listUsers(
  db: D1Database,
  page: { limit: number; q: string; after: [number, string] | null },
): Promise<DirectoryRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (page.q !== "") {
    where.push("instr(lower(user_id), lower(?)) > 0");
    params.push(page.q);
  }
  if (page.after) {
    where.push("(last_call_at < ? OR (last_call_at = ? AND user_id < ?))");
    params.push(page.after[0], page.after[0], page.after[1]);
  }
  const { results } = await db
    .prepare(
      `SELECT user_id, first_call_at, last_call_at, conversation_count FROM users
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY last_call_at DESC, user_id DESC LIMIT ?`,
    )
    .bind(...params, page.limit)
    .all<DirectoryRow>();
  return results;
}

/** One user's directory row, or null when D1 has no conversation of theirs. */
export async function directoryRow(db: D1Database, userId: string): Promise<DirectoryRow | null> {
  return db
    .prepare("SELECT user_id, first_call_at, last_call_at, conversation_count FROM users WHERE user_id = ?")
    .bind(userId)
    .first<DirectoryRow>();
}
