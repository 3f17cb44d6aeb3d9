/**
 * Opaque page cursors for the /v1 lists (a user's conversations, the user directory). Pure: no bindings.
 *
 * A cursor is the keyset position of the last row on a page, e.g. (started_at, conversation_id) in the
 * order of the D1 index conversations_by_user. Keyset rather than offset: pages stay free
 * of gaps and repeats while new conversations arrive, and equal start times are broken by the id.
 * Encoded as base64url JSON with a version, so the format can change without breaking old cursors
 * silently (an unknown version is a 400).
 */
import { badRequest } from "../lib/errors";
import { isValidId } from "../lib/ids";

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

const invalid = () => badRequest("invalid_cursor", "The cursor is not one this API returned. Start again without it.");

/** A keyset position of (integer time, id), the shape every list here sorts by. */
export function encodeKeyset(time: number, id: string): string {
  return toBase64Url(JSON.stringify([VERSION, time, id]));
}

export function decodeKeyset(cursor: string): [time: number, id: string] {
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
  const [, time, id] = parsed as [unknown, unknown, unknown];
  if (typeof time !== "number" || !Number.isSafeInteger(time)) throw invalid();
  if (typeof id !== "string" || !isValidId(id)) throw invalid();
  return [time, id];
}

export function encodeCursor(p: Position): string {
  return encodeKeyset(p.startedAt, p.conversationId);
}

export function decodeCursor(cursor: string): Position {
  const [startedAt, conversationId] = decodeKeyset(cursor);
  return { startedAt, conversationId };
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** `limit` from the query string: absent means the default; otherwise a whole number 1..max. */
export function pageSize(raw: string | null, fallback = DEFAULT_PAGE_SIZE, max = MAX_PAGE_SIZE): number {
  if (raw === null) return fallback;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw badRequest("invalid_limit", `limit must be a whole number from 1 to ${max}.`);
  }
  return Number(raw);
}
