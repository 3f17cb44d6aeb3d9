import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { allShards } from "../src/storage/shards";

// Runs before each test file; applyD1Migrations is idempotent (it records what it applied). Every
// shard named in D1_SHARDS gets every migration (vitest.config.ts: POSTCALL_TEST_SHARDS).
for (const db of allShards(env)) await applyD1Migrations(db, env.TEST_MIGRATIONS);
