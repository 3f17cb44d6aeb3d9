/**
 * Bounds on what a record may carry, and the lenient readers normalisation uses on untrusted JSON
 * (src/records/payload.ts). Pure.
 */
import { MAX_TEXT_CHARS } from "./limits";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: unknown };

/**
 * Bounds on what a record may carry, whatever the signed body holds (the raw body is kept whole in
 * R2, so nothing here is lost). A record crosses a Durable Object RPC (structured clone recurses
 * and overflows the stack near a few thousand levels of nesting) and is stored in SQLite (values
 * over 2 MB are refused): without these bounds a valid, signed payload with a 10,000-deep value or
 * a megabyte-long summary would be answered 5xx forever and push the webhook towards auto-disable.
 */
export const RECORD_LIMITS = {
  /** Nesting depth of arbitrary JSON values kept (tool calls, data-collection values, failure metadata). */
  jsonDepth: 64,
  /** Serialised size of one arbitrary JSON value kept (the same as a D1 text column). */
  jsonChars: MAX_TEXT_CHARS,
  /** Long free texts (summary, messages) are clipped to this; short labels to `labelChars`. */
  textChars: MAX_TEXT_CHARS,
  labelChars: 1024,
  /** Timestamps outside 1970..9999 are treated as absent (a Date cannot render them). */
  maxUnixSeconds: 253_402_300_799,
} as const;

/** What replaces an arbitrary JSON value that is too deep or too large to keep in a record. */
export interface Truncated {
  truncated: string;
}

/** Nesting depth of a JSON value, counted iteratively (a recursive walk could itself overflow), stopping past `limit`. */
export function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth]);
    }
  }
  return max;
}

/** The value itself when it is within the depth and size bounds, otherwise a `Truncated` marker. */
export function boundedJson(value: unknown): Json | Truncated {
  if (jsonDepth(value, RECORD_LIMITS.jsonDepth) > RECORD_LIMITS.jsonDepth) {
    return { truncated: `nested deeper than ${RECORD_LIMITS.jsonDepth} levels; the whole value is in the raw payload` };
  }
  if (typeof value === "object" && value !== null && JSON.stringify(value).length > RECORD_LIMITS.jsonChars) {
    return { truncated: `larger than ${RECORD_LIMITS.jsonChars} characters; the whole value is in the raw payload` };
  }
  return value as Json;
}

export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
export const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
export const nonEmpty = (v: unknown): string | null => (typeof v === "string" && v.trim() !== "" ? v : null);
export const num = (v: unknown): number | null => {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  return null;
};
/** A whole number small enough for an SQLite INTEGER column, or null. */
export const int = (v: unknown): number | null => {
  const n = num(v);
  return n !== null && Math.abs(n) <= Number.MAX_SAFE_INTEGER ? Math.floor(n) : null;
};
/** Unix seconds that a Date can represent (1970..9999), or null. */
export const unixSeconds = (v: unknown): number | null => {
  const n = int(v);
  return n !== null && n >= 0 && n <= RECORD_LIMITS.maxUnixSeconds ? n : null;
};
export const obj = (v: unknown): Obj => (isObj(v) ? v : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
