import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Tests run inside workerd with the real bindings from wrangler.toml (local D1, R2 and Durable
// Objects, isolated per test file). Migrations are read here, in Node, and applied by test/setup.ts.
const migrations = await readD1Migrations("migrations");
const schemaSql = readFileSync("schema.sql", "utf8");
// The console's static files and their headers rule (test/console-headers.test.ts): the pool does not serve assets.
const consoleFiles = JSON.stringify({
  headers: readFileSync("public/_headers", "utf8"),
  html: readFileSync("public/console/index.html", "utf8"),
  js: readFileSync("public/console/app.js", "utf8"),
});

// standardwebhooks (the forwarding tests' receiver verifies with it) ships a source map naming files it
// does not ship, and vite warns about that on every run: its module is loaded without the map comment.
const withoutBrokenSourceMap = {
  name: "standardwebhooks-without-source-map",
  enforce: "pre" as const,
  load(id: string) {
    if (!/\/node_modules\/standardwebhooks\/dist\/index\.js$/.test(id)) return null;
    return readFileSync(id, "utf8").replace(/^\/\/# sourceMappingURL=.*$/m, "");
  },
};
// POSTCALL_TEST_SHARDS=3 runs the whole suite on three D1 shards (src/storage/shards.ts): DB and two more
// local databases, named in D1_SHARDS (.ci/run runs the suite both ways).
const shardCount = Number(process.env["POSTCALL_TEST_SHARDS"] ?? "1");
if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 8) throw new Error("POSTCALL_TEST_SHARDS must be 1 to 8");
const shardNames = ["DB", ...Array.from({ length: shardCount - 1 }, (_, i) => `DB_${i + 1}`)];
// DB keeps wrangler.toml's database id; the others get ids of their own.
// GROW_0..GROW_4: five more databases, named in no D1_SHARDS, that test/shard-growth.test.ts lays out as
// DB, DB_1, ... of an env it grows (1 -> 3 -> 5 shards) with data written before each growth.
const d1Databases = {
  ...Object.fromEntries(shardNames.map((name, i) => [name, i === 0 ? "00000000-0000-0000-0000-000000000000" : `postcall-test-shard-${i}`])),
  ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`GROW_${i}`, `postcall-test-grow-${i}`])),
};

const bindings = {
  D1_SHARDS: shardNames.join(","),
  TEST_MIGRATIONS: migrations,
  D1_SCHEMA_SQL: schemaSql,
  CONSOLE_FILES: consoleFiles,
  ELEVENLABS_WEBHOOK_SECRET: "whsec_test_primary,whsec_test_secondary",
  API_KEY: "test-api-key,test-api-key-2",
  AGENT_API_KEY: "test-agent-key,test-agent-key-2",
  DEFAULT_DYNAMIC_VARIABLES: JSON.stringify({ plan: "free", preferred_name: "" }),
  // Retention on, at ten years: fixtures (2025) and "now" are inside it, so it removes only the
  // deliberately ancient conversations of test/retention.test.ts.
  RETENTION_DAYS: "3650",
};

const test = {
  // Correctness only: no test asserts on time. The default 5 s would fail slow-but-correct tests on
  // a busy machine (the suite runs in workerd alongside other work), so the limit is only a hang guard.
  testTimeout: 60_000,
  // Console lines go straight to workerd's output, not through vitest's console RPC. That RPC, sent
  // from another I/O context (a Durable Object, a handler reached through SELF, a waitUntil task), is
  // the one mechanism upstream traced for a test file unable to finish and the run stalled (cloudflare/workers-sdk
  // #15498, whose open fix #15565 says so; #14180). test/logs.ts still takes the lines a test expects
  // (it spies on the isolate's console), and scripts/quiet-test.mjs flags any other line. CI's own stalls
  // (test/audio.test.ts, which logs nothing) are not shown to be this; scripts/test.mjs guards the rest.
  disableConsoleIntercept: true,
  setupFiles: ["./test/setup.ts"],
  // The test runtime's own chatter is hidden (test/global/quiet-logs.ts); what the Worker logs about a
  // fault a test causes is asserted by that test (test/logs.ts), and anything else is printed.
  globalSetup: ["./test/global/quiet-logs.ts"],
};

/** A free port on 127.0.0.1, for a stand-in server whose URL must be a binding before any globalSetup runs. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

// Forwarding (test/forwarding/): a real HTTP receiver on 127.0.0.1 (test/global/forward-receiver.ts),
// on a port chosen here so the destinations' URLs can be bindings. Its own project, so that the rest of
// the suite runs with forwarding off (the default) and is not changed by it.
const receiverPort = await freePort();
process.env["POSTCALL_TEST_RECEIVER_PORT"] = String(receiverPort);
const receiver = `http://127.0.0.1:${receiverPort}`;
const FORWARD_TEST_SECRETS = [
  `whsec_${Buffer.from("postcall-forwarding-test-secret-1").toString("base64")}`,
  `whsec_${Buffer.from("postcall-forwarding-test-secret-2").toString("base64")}`,
];
process.env["POSTCALL_TEST_FORWARD_SECRETS"] = FORWARD_TEST_SECRETS.join(",");

// The stand-in for ElevenLabs' API (test/global/elevenlabs-api.ts) listens on a free port picked here,
// because the Worker's ELEVENLABS_API_BASE binding is fixed before any globalSetup runs.
process.env["POSTCALL_FAKE_API_PORT"] ??= String(await freePort());
const fakeApiBase = `http://127.0.0.1:${process.env["POSTCALL_FAKE_API_PORT"]}`;
// The forwarding project's own instance of that stand-in (test/global/elevenlabs-api-forwarding.ts), on
// another port, so an audio backfill there is forwarded like the webhook's audio (test/forwarding/backfill-forwarding.test.ts).
process.env["POSTCALL_FAKE_API_PORT_FORWARDING"] ??= String(await freePort());
const forwardingFakeApiBase = `http://127.0.0.1:${process.env["POSTCALL_FAKE_API_PORT_FORWARDING"]}`;

export default defineConfig({
  test: {
    // npm test (scripts/test.mjs) watches the run through this reporter's events, to tell a stalled pool from a slow test.
    reporters: process.env["POSTCALL_TEST_PROGRESS"] ? ["default", "./scripts/test-progress-reporter.mjs"] : ["default"],
    projects: [
      {
        plugins: [
          withoutBrokenSourceMap,
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              d1Databases,
              bindings: {
                ...bindings,
                // ElevenLabs' API is the local stand-in (test/global/elevenlabs-api.ts); the key is test/fake-api/data.ts FAKE_API_KEY.
                ELEVENLABS_API_BASE: fakeApiBase,
                ELEVENLABS_API_KEY: "xi-test-key-never-logged,xi-second-key",
              },
            },
          }),
        ],
        test: {
          ...test,
          name: "postcall",
          include: ["test/**/*.test.ts"],
          exclude: ["test/forwarding/**"],
          globalSetup: [...test.globalSetup, "./test/global/elevenlabs-api.ts", "./test/global/recall-tool-schema.mjs", "./test/global/recall-set-check.mjs"],
        },
      },
      {
        plugins: [
          withoutBrokenSourceMap,
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              d1Databases,
              bindings: {
                ...bindings,
                FORWARD_RECEIVER_URL: receiver,
                ELEVENLABS_API_BASE: forwardingFakeApiBase,
                ELEVENLABS_API_KEY: "xi-test-key-never-logged,xi-second-key",
                FORWARD_SIGNING_SECRET: FORWARD_TEST_SECRETS.join(","),
                FORWARD_DESTINATIONS: JSON.stringify([
                  { name: "crm", url: `${receiver}/crm`, events: ["conversation.stored", "audio.stored", "call.failed", "user.erased"] },
                  { name: "warehouse", url: `${receiver}/warehouse`, events: ["conversation.stored", "user.erased"], include_transcript: true },
                  { name: "pager", url: `${receiver}/pager`, events: ["call.failed"] },
                  { name: "flaky", url: `${receiver}/flaky`, events: ["audio.stored"] },
                ]),
                // Retries at once and short timeouts, so a test does not wait minutes of backoff.
                FORWARD_RETRY_BASE_SECONDS: "0",
                FORWARD_TIMEOUT_SECONDS: "2",
              },
            },
          }),
        ],
        test: { ...test, name: "forwarding", include: ["test/forwarding/**/*.test.ts"], globalSetup: [...test.globalSetup, "./test/global/forward-receiver.mjs", "./test/global/elevenlabs-api-forwarding.ts"] },
      },
    ],
  },
});
