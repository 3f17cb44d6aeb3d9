import type { D1Migration } from "@cloudflare/vitest-pool-workers";
import type { Env as WorkerEnv } from "../src/lib/env";

declare global {
  namespace Cloudflare {
    // The bindings (each Durable Object namespace typed by its class) come from worker-configuration.d.ts.
    interface Env extends WorkerEnv {
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
