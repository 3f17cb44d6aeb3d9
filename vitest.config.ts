import { readFileSync } from "node:fs";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Tests run inside workerd with the real bindings from wrangler.toml (local D1, R2 and Durable
// Objects, isolated per test file). Migrations are read here, in Node, and applied by test/setup.ts.
const migrations = await readD1Migrations("migrations");
const schemaSql = readFileSync("schema.sql", "utf8");

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          TEST_MIGRATIONS: migrations,
          D1_SCHEMA_SQL: schemaSql,
          ELEVENLABS_WEBHOOK_SECRET: "whsec_test_primary,whsec_test_secondary",
          API_KEY: "test-api-key,test-api-key-2",
          AGENT_API_KEY: "test-agent-key,test-agent-key-2",
          DEFAULT_DYNAMIC_VARIABLES: JSON.stringify({ plan: "free", preferred_name: "" }),
          // Retention on, at ten years: fixtures (2025) and "now" are inside it, so it removes only the
          // deliberately ancient conversations of test/retention.test.ts.
          RETENTION_DAYS: "3650",
        },
      },
    }),
  ],
  test: {
    // Correctness only: no test asserts on time. The default 5 s would fail slow-but-correct tests on
    // a busy machine (the suite runs in workerd alongside other work), so the limit is only a hang guard.
    testTimeout: 60_000,
    setupFiles: ["./test/setup.ts"],
    globalSetup: ["./test/global/recall-tool-schema.mjs", "./test/global/recall-set-check.mjs"],
    include: ["test/**/*.test.ts"],
  },
});
