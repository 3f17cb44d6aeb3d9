// The dev / held-out split of the recall set's `synonym` and `paraphrase` questions (docs/recall.md,
// "Dev and held-out halves"): work on recall's expansion looks only at the dev half's misses, and
// the held-out half says whether what was learnt there generalises. Deterministic: a question's half
// is the parity of the first byte of sha256(its id), so it never depends on the set's order, on its
// size, or on anything a change to recall could touch.
import { createHash } from "node:crypto";

/** The categories split in two (the ones expansion is for). */
export const SPLIT_CATEGORIES = new Set(["synonym", "paraphrase"]);

/** "dev" or "heldout" for a question id. */
export function halfOf(id) {
  return createHash("sha256").update(String(id)).digest()[0] % 2 === 0 ? "dev" : "heldout";
}
