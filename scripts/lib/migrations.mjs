// `npm start` applies the local D1 migrations with wrangler, whose output redraws its status table
// after each migration (nine migrations: the table printed again and again). This turns that output
// into one line; null when it is not understood, and the caller prints wrangler's output as it was.

/** One line about what `wrangler d1 migrations apply --local` did, from its output, or null. */
export function migrationSummary(output) {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  if (/No migrations to apply/.test(plain)) return "D1 (local): every migration is applied.";
  const applied = [...new Set([...plain.matchAll(/│\s*(\S+\.sql)\s*│\s*✅/g)].map((m) => m[1]))];
  if (applied.length === 0 || /❌/.test(plain)) return null;
  const names = applied.length <= 2 ? applied.join(", ") : `${applied[0]} … ${applied.at(-1)}`;
  return `D1 (local): applied ${applied.length} migration${applied.length === 1 ? "" : "s"} (${names}).`;
}
