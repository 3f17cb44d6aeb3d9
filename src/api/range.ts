/**
 * HTTP Range (RFC 9110 §14) for the audio endpoint, so an `<audio>` element can seek. Pure.
 * Only single byte ranges are served: a multi-range request, another unit, or a malformed or
 * invalid header (e.g. last < first) is ignored and answered with the whole representation, which
 * RFC 9110 allows ("a server MAY ignore the Range header field").
 */
export type RangeResult =
  | { kind: "full" }
  /** Inclusive byte positions, both within the representation. */
  | { kind: "partial"; start: number; end: number }
  | { kind: "unsatisfiable" };

const SPEC = /^bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i;

export function parseRange(header: string | null, size: number): RangeResult {
  if (header === null) return { kind: "full" };
  const m = SPEC.exec(header.trim());
  if (!m) return { kind: "full" };
  const [, first, last] = m as unknown as [string, string, string];
  if (first === "" && last === "") return { kind: "full" };
  if (first === "") {
    // Suffix range: the last n bytes.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "full" };
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: "partial", start, end };
}

/**
 * If-None-Match (RFC 9110 §13.1.2): `*`, or a list of entity tags compared weakly (a `W/` prefix
 * is ignored), so a browser revalidating its cached copy gets a 304.
 */
export function noneMatch(header: string | null, etag: string): boolean {
  if (header === null) return false;
  const value = header.trim();
  if (value === "*") return true;
  const bare = etag.replace(/^W\//, "");
  return value.split(",").some((t) => t.trim().replace(/^W\//, "") === bare);
}
