import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Tests run inside workerd with the real bindings from wrangler.toml (local D1, R2 and Durable
// Objects, isolated per test file). Migrations are read here, in Node, and applied by test/setup.ts.
const migrations = await readD1Migrations("migrations");
const schemaSql = readFileSync("schema.sql", "utf8");

// The stand-in for ElevenLabs' API (test/global/elevenlabs-api.ts) listens on a free port picked here,
// because the Worker's ELEVENLABS_API_BASE binding is fixed before any globalSetup runs.
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
process.env["POSTCALL_FAKE_API_PORT"] ??= String(await freePort());
const fakeApiBase = `http://127.0.0.1:${process.env["POSTCALL_FAKE_API_PORT"]}`;

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
          // ElevenLabs' API is the local stand-in; the key is test/fake-api/data.ts FAKE_API_KEY.
          ELEVENLABS_API_BASE: fakeApiBase,
          ELEVENLABS_API_KEY: "xi-test-key-never-logged,xi-second-key",
        },
      },
    }),
  ],
  test: {
    // Correctness only: no test asserts on time. The default 5 s would fail slow-but-correct tests on
    // a busy machine (the suite runs in workerd alongside other work), so the limit is only a hang guard.
    testTimeout: 60_000,
    setupFiles: ["./test/setup.ts"],
    globalSetup: ["./test/global/elevenlabs-api.ts"],
    include: ["test/**/*.test.ts"],
  },
});
