import type { D1Migration } from "@cloudflare/vitest-pool-workers";
import type { Env as WorkerEnv } from "../src/lib/env";
import type { UserMemory } from "../src/objects/user-memory/user-memory";

declare global {
  namespace Cloudflare {
    // Tests may reach the class itself (runInDurableObject), so the namespace is typed here.
    interface Env extends Omit<WorkerEnv, "USER_MEMORY"> {
      USER_MEMORY: DurableObjectNamespace<UserMemory>;
      TEST_MIGRATIONS: D1Migration[];
      D1_SCHEMA_SQL: string;
      /** JSON: public/_headers, the console's index.html and app.js (vitest.config.ts). */
      CONSOLE_FILES: string;
    }
  }
}

declare module "vitest" {
  // test/global/elevenlabs-api.ts: the base URL of the stand-in for ElevenLabs' API.
  export interface ProvidedContext {
    elevenLabsApiBase: string;
  }
}
