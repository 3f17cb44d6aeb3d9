import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/** CREATE statements of a SQL script, comments stripped and whitespace normalised. */
function statements(sql: string): string[] {
  return sql
    .replace(/--[^\n]*/g, "")
    .split(";")
    .map((s) => s.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").trim())
    .filter((s) => s.length > 0)
    .sort();
}

describe("schema.sql", () => {
  it("is exactly what the migrations produce", async () => {
    const { results } = await env.DB.prepare(
      "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
    ).all<{ sql: string }>();
    expect(statements(results.map((r) => r.sql).join(";"))).toEqual(statements(env.D1_SCHEMA_SQL));
  });
});
