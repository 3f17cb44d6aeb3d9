/**
 * GET /v1/users: the user directory (src/storage/users.ts), newest activity first, with an optional
 * case-insensitive substring filter on the user id. Feeds the operator console's user list.
 *
 * A `q` that is a whole phone number (any common format) also finds the app user the number is linked
 * to, first on the first page, with `matched_phone_number`. Links live in the number's Durable Object
 * (src/objects/user-memory/phone-links.ts: the truth initiation and ingest use), not in D1, so the lookup asks it:
 * one Durable Object call per such search, none for other queries. A number's own memory (calls
 * before any link) is the user whose id is the number, found by the substring filter as before.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { badRequest, json } from "../lib/errors";
import { iso } from "../lib/time";
import { normalisePhone } from "../records/identity";
import { phoneObject } from "../memory/objects";
import { userShard } from "../storage/shards";
import { directoryRow, listUsers as list, type DirectoryRow } from "../storage/users";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

/** A row of the answer: a directory row, or a linked user D1 has no call of yet (null times, zero calls). */
type Listed = Omit<DirectoryRow, "first_call_at" | "last_call_at"> & { first_call_at: number | null; last_call_at: number | null };

/** The app user a phone-number query is linked to, with their directory row. */
async function linkedUser(env: Env, q: string): Promise<(Listed & { phone: string }) | null> {
  // Only something typed as a number: digits with the usual separators, at least 7 digits.
  if (!/^\+?[\d\s().-]+$/.test(q) || q.replace(/\D/g, "").length < 7) return null;
  const phone = normalisePhone(q, config(env).defaultCountryCode);
  if (phone === null) return null;
  const owner = (await phoneObject(env, phone).describe())?.owner?.user_id ?? null;
  if (owner === null) return null;
  const row = await directoryRow(userShard(env, owner), owner);
  return { ...(row ?? { user_id: owner, first_call_at: null, last_call_at: null, conversation_count: 0 }), phone };
}

export async function listUsers(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const limit = pageSize(url.searchParams.get("limit"));
  const q = (url.searchParams.get("q") ?? "").trim();
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeKeyset(rawCursor);
  // One row more than the page tells whether another page exists without a count query.
  const [results, linked] = await Promise.all([list(env, { limit: limit + 1, q, after }), after === null && q !== "" ? linkedUser(env, q) : null]);
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  const row = (u: Listed) => ({
    user_id: u.user_id,
    first_call_at: iso(u.first_call_at),
    last_call_at: iso(u.last_call_at),
    conversation_count: u.conversation_count,
  });
  return json({
    users: [
      ...(linked ? [{ ...row(linked), matched_phone_number: linked.phone }] : []),
      ...page.filter((u) => u.user_id !== linked?.user_id).map(row),
    ],
    next_cursor: results.length > limit && last ? encodeKeyset(last.last_call_at, last.user_id) : null,
  });
}
