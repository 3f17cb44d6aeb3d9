/**
 * GET /v1/users: the user directory (src/storage/users.ts), newest activity first, with an optional
 * case-insensitive substring filter on the user id. Feeds the operator console's user list.
 *
 * A `q` that is a whole phone number, in any common format, also finds (first on the first page, each
 * with `matched_phone_number`) the app user the number is linked to and the number's own memory (the
 * user whose id is the number: its calls before any link). With a country code ("+1 415 555 0123",
 * "0014155550123") or DEFAULT_COUNTRY_CODE the number is exact; without ("(415) 555-0123", 9 digits or
 * more) it is also matched against the end of the numbers that have a memory of their own (at most five). Links live in
 * the number's Durable Object (src/objects/user-memory/phone-links.ts: the truth initiation and ingest
 * use), not in D1, so each candidate number costs one Durable Object call; other queries cost none.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { badRequest, json } from "../lib/errors";
import { iso } from "../lib/time";
import { normalisePhone } from "../records/identity";
import { phoneObject } from "../memory/objects";
import { directoryRow, listUsers as list, phoneNumberUsers, type DirectoryRow } from "../storage/users";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

/** A row of the answer: a directory row, or a linked user D1 has no call of yet (null times, zero calls). */
type Listed = Omit<DirectoryRow, "first_call_at" | "last_call_at"> & { first_call_at: number | null; last_call_at: number | null };
type Matched = Listed & { phone: string };

/** How many numbers a query without a country code may stand for. */
const MAX_CANDIDATES = 5;

/** The users a phone-number query finds: each candidate number's linked app user, then the numbers' own memories. */
async function phoneMatches(env: Env, q: string): Promise<Matched[]> {
  // Only something typed as a number: digits with the usual separators, at least 7 digits.
  if (!/^\+?[\d\s().-]+$/.test(q) || q.replace(/\D/g, "").length < 7) return [];
  const exact = normalisePhone(q, config(env).defaultCountryCode);
  const international = /^\s*(\+|00)/.test(q);
  // Without a country code, the number's own digits (a trunk "0" dropped) end its E.164 form.
  // At least 9 of them: fewer is a local number without its area code, which would match numbers anywhere.
  const digits = q.replace(/\D/g, "").replace(/^0+/, "");
  const national = international || digits.length < 9 ? null : digits;
  const own = (
    await Promise.all([
      exact === null ? null : directoryRow(env, exact),
      national === null ? [] : phoneNumberUsers(env, national, MAX_CANDIDATES),
    ])
  )
    .flat()
    .filter((r): r is DirectoryRow => r !== null);
  const numbers = [...new Set([...(exact === null ? [] : [exact]), ...own.map((r) => r.user_id)])].slice(0, MAX_CANDIDATES);
  const linked = await Promise.all(
    numbers.map(async (phone): Promise<Matched | null> => {
      const owner = (await phoneObject(env, phone).describe())?.owner?.user_id ?? null;
      if (owner === null) return null;
      const row = await directoryRow(env, owner);
      return { ...(row ?? { user_id: owner, first_call_at: null, last_call_at: null, conversation_count: 0 }), phone };
    }),
  );
  const seen = new Set<string>();
  return [...linked.filter((r): r is Matched => r !== null), ...own.map((r) => ({ ...r, phone: r.user_id }))].filter((r) => !seen.has(r.user_id) && seen.add(r.user_id));
}

export async function listUsers(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const limit = pageSize(url.searchParams.get("limit"));
  const q = (url.searchParams.get("q") ?? "").trim();
  if (q.length > 256) throw badRequest("invalid_query", "q must be at most 256 characters.");
  const rawCursor = url.searchParams.get("cursor");
  const after = rawCursor === null ? null : decodeKeyset(rawCursor);
  // One row more than the page tells whether another page exists without a count query.
  const [results, matched] = await Promise.all([list(env, { limit: limit + 1, q, after }), after === null && q !== "" ? phoneMatches(env, q) : []]);
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
      ...matched.map((m) => ({ ...row(m), matched_phone_number: m.phone })),
      ...page.filter((u) => !matched.some((m) => m.user_id === u.user_id)).map(row),
    ],
    next_cursor: results.length > limit && last ? encodeKeyset(last.last_call_at, last.user_id) : null,
  });
}
