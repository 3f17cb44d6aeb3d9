/**
 * Opaque page cursors for GET /v1/users/:userId/conversations. Pure: no bindings.
 *
 * A cursor is the keyset position of the last conversation on a page, (started_at, conversation_id),
 * the same order as the D1 index conversations_by_user. Keyset rather than offset: pages stay free
 * of gaps and repeats while new conversations arrive, and equal start times are broken by the id.
 * Encoded as base64url JSON with a version, so the format can change without breaking old cursors
 * silently (an unknown version is a 400).
 */
import { badRequest } from "../errors";
import { isValidId } from "../memory/identity";

export interface Position {
  startedAt: number;
  conversationId: string;
}

const VERSION = 1;

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(s: string): string | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  try {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

export function encodeCursor(p: Position): string {
  return toBase64Url(JSON.stringify([VERSION, p.startedAt, p.conversationId]));
}

const invalid = () => badRequest("invalid_cursor", "The cursor is not one this API returned. Start again without it.");

export function decodeCursor(cursor: string): Position {
  if (cursor.length === 0 || cursor.length > 2048) throw invalid();
  const text = fromBase64Url(cursor);
  if (text === null) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || parsed[0] !== VERSION) throw invalid();
  const [, startedAt, conversationId] = parsed as [unknown, unknown, unknown];
  if (typeof startedAt !== "number" || !Number.isSafeInteger(startedAt)) throw invalid();
  if (typeof conversationId !== "string" || !isValidId(conversationId)) throw invalid();
  return { startedAt, conversationId };
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** `limit` from the query string: absent means the default; otherwise a whole number 1..100. */
export function pageSize(raw: string | null): number {
  if (raw === null) return DEFAULT_PAGE_SIZE;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_PAGE_SIZE) {
    throw badRequest("invalid_limit", `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}.`);
  }
  return Number(raw);
}
