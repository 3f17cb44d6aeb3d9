/**
 * Keyset pagination: an opaque cursor (base64url JSON of the last row's sort key) and a bounded page
 * size. Keyset rather than OFFSET so that pages stay stable while rows are added, and cost the same
 * however deep the walk goes.
 */
import { badRequest } from "../errors";

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export function limitParam(url: URL, fallback = DEFAULT_PAGE_SIZE, max = MAX_PAGE_SIZE): number {
  const raw = url.searchParams.get("limit");
  if (raw === null || raw === "") return fallback;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw badRequest("invalid_limit", `limit must be a whole number from 1 to ${max}.`);
  }
  return Number(raw);
}

export function encodeCursor(key: (string | number)[]): string {
  const bytes = new TextEncoder().encode(JSON.stringify(key));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes a cursor made by `encodeCursor` whose parts have the given types; anything else is a 400. */
export function decodeCursor<T extends (string | number)[]>(raw: string | null, shape: ("string" | "number")[]): T | null {
  if (raw === null || raw === "") return null;
  const invalid = () => badRequest("invalid_cursor", "The cursor is not one this API returned.");
  if (raw.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw invalid();
  let parsed: unknown;
  try {
    const bin = atob(raw.replace(/-/g, "+").replace(/_/g, "/"));
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== shape.length) throw invalid();
  parsed.forEach((v, i) => {
    if (typeof v !== shape[i] || (typeof v === "number" && !Number.isSafeInteger(v))) throw invalid();
  });
  return parsed as T;
}

export const isoOrNull = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());
