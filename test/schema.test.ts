import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/**
 * Statements of a SQL script (a trigger's BEGIN ... END counts as one), comments stripped, whitespace
 * normalised (SQLite keeps ALTER TABLE ADD COLUMN's text as "... NOT NULL , new_column": no space before a comma).
 */
function statements(sql: string): string[] {
  const out: string[] = [];
  let current = "";
  let inTrigger = false;
  for (const line of sql.replace(/--[^\n]*/g, "").split("\n")) {
    current += ` ${line}`;
    if (/^\s*CREATE TRIGGER/i.test(line)) inTrigger = true;
    const ends = inTrigger ? /^\s*END;\s*$/i.test(line) : /;\s*$/.test(line);
    if (ends) {
      out.push(current);
      current = "";
      inTrigger = false;
    }
  }
  if (current.trim()) out.push(current);
  return out
    .map((s) => s.replace(/;\s*$/, "").replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").replace(/ ,/g, ",").trim())
    .filter((s) => s.length > 0)
    .sort();
}

// FTS5 creates its own shadow tables; they are not part of the written schema.
const FTS_SHADOW = /_fts_(data|idx|docsize|config|content)$/;

describe("schema.sql", () => {
  it("is exactly what the migrations produce", async () => {
    const { results } = await env.DB.prepare(
      "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
    ).all<{ name: string; sql: string }>();
    const produced = results.filter((r) => !FTS_SHADOW.test(r.name)).map((r) => `${r.sql};`);
    expect(statements(produced.join("\n"))).toEqual(statements(env.D1_SCHEMA_SQL));
  });
});
