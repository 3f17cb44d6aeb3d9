/**
 * Text and JSON bounds shared by the records and the stores. Pure.
 *
 * D1 refuses rows over 2 MB and statements with more than 100 bound parameters. Long texts are
 * clipped here (the whole payload is in R2), so that a write can never fail for its size and stall
 * the outbox forever.
 */
export const MAX_TEXT_CHARS = 32_768;

export function clip(text: string | null, max = MAX_TEXT_CHARS): string | null {
  if (text === null) return null;
  return text.length <= max ? text : text.slice(0, max - 1) + "…";
}

/** JSON text, or null when it is larger than `max` (the complete value stays in the R2 payload). */
export function jsonOrNull(value: unknown, max = MAX_TEXT_CHARS): string | null {
  if (value === null || value === undefined) return null;
  const s = JSON.stringify(value);
  return s.length <= max ? s : null;
}

/** Results one recall may return (POST /tools/recall `limit`). */
export const RECALL_MAX_LIMIT = 20;

/** From this many failed attempts (about 17 minutes of trying) an outbox item is reported as stuck. */
export const STUCK_ATTEMPTS = 10;
