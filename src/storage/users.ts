/**
 * D1 `users`: the user directory behind the console's user list, newest activity first. Rows are
 * written by the conversation writes and erasures (src/storage/conversations.ts, erase.ts), in the
 * user's shard; the list reads every shard and merges.
 */
import { mergePages, onEveryShard, onUserShards, type ShardEnv } from "./shards";

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
  env: ShardEnv,
  page: { limit: number; q: string; after: [number, string] | null },
): Promise<DirectoryRow[]> {
  // Every shard's page from the same keyset position, merged: each shard holds its users' rows.
  const pages = await onEveryShard(env, (db) => listUsersOf(db, page));
  return mergePages(pages, (a, b) => a.last_call_at > b.last_call_at || (a.last_call_at === b.last_call_at && a.user_id > b.user_id), page.limit);
}

async function listUsersOf(db: D1Database, page: { limit: number; q: string; after: [number, string] | null }): Promise<DirectoryRow[]> {
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

/**
 * One user's directory row, or null when D1 has no conversation of theirs: the rows of every shard
 * that may hold theirs (usually one; two for a user split by a shard's addition) added together.
 */
export async function directoryRow(env: ShardEnv, userId: string): Promise<DirectoryRow | null> {
  const rows = await onUserShards(env, userId, async (db) => {
    const row = await db.prepare("SELECT user_id, first_call_at, last_call_at, conversation_count FROM users WHERE user_id = ?").bind(userId).first<DirectoryRow>();
    return row === null ? [] : [row];
  });
  if (rows.length === 0) return null;
  return rows.reduce((a, b) => ({
    user_id: a.user_id,
    first_call_at: Math.min(a.first_call_at, b.first_call_at),
    last_call_at: Math.max(a.last_call_at, b.last_call_at),
    conversation_count: a.conversation_count + b.conversation_count,
  }));
}

/**
 * Users whose id is a phone number (E.164, as a number's own memory is named) ending in `digits`,
 * newest activity first: what a number typed without its country code ("(415) 555-0123") can mean.
 * Reads only the phone-number ids (the range of the primary key between "+" and ","), not the table.
 */
export async function phoneNumberUsers(env: ShardEnv, digits: string, limit: number): Promise<DirectoryRow[]> {
  const pages = await onEveryShard(env, (db) => phoneNumberUsersOf(db, digits, limit));
  return mergePages(pages, (a, b) => a.last_call_at > b.last_call_at || (a.last_call_at === b.last_call_at && a.user_id > b.user_id), limit);
}

async function phoneNumberUsersOf(db: D1Database, digits: string, limit: number): Promise<DirectoryRow[]> {
  const { results } = await db
    .prepare(
      `SELECT user_id, first_call_at, last_call_at, conversation_count FROM users
       WHERE user_id >= '+' AND user_id < ',' AND length(user_id) > ? AND substr(user_id, -?) = ?
       ORDER BY last_call_at DESC, user_id DESC LIMIT ?`,
    )
    .bind(digits.length + 1, digits.length, digits, limit)
    .all<DirectoryRow>();
  return results;
}

/**
 * Refreshes a user's row in the `users` directory from their conversations. Recomputed, never
 * incremented, so a replayed or reordered write cannot skew it; deletes the row when the user has no
 * conversations left (after erasure or retention).
 */
export function userDirectoryStatements(db: D1Database, userId: string, now: number): D1PreparedStatement[] {
  return [
    userDirectoryStatement(db, userId, now),
    db.prepare("DELETE FROM users WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM conversations WHERE user_id = ?)").bind(userId, userId),
  ];
}

export function userDirectoryStatement(db: D1Database, userId: string, now: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO users (user_id, first_call_at, last_call_at, conversation_count, updated_at)
       SELECT user_id, min(started_at), max(started_at), count(*), ? FROM conversations WHERE user_id = ? GROUP BY user_id
       ON CONFLICT (user_id) DO UPDATE SET first_call_at = excluded.first_call_at, last_call_at = excluded.last_call_at,
         conversation_count = excluded.conversation_count, updated_at = excluded.updated_at`,
    )
    .bind(now, userId);
}

