#!/usr/bin/env node
// `npm start`: run postcall locally on wrangler's embedded D1, R2 and Durable Objects, offline.
// 1. .dev.vars (local webhook secret and API key) is created from .dev.vars.example if missing;
// 2. D1 migrations are applied to the local database (idempotent);
// 3. `wrangler dev` starts; extra arguments are passed through (e.g. `npm start -- --port 9000`).
import { spawnSync, spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";

const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const wrangler = ["node_modules/wrangler/bin/wrangler.js"];

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local-only secret and API key).");
}

// CI=true keeps wrangler from asking "continue?" in an interactive terminal: local migrations are safe to apply.
const migrate = spawnSync(process.execPath, [...wrangler, "d1", "migrations", "apply", "DB", "--local"], {
  env: { ...env, CI: "true" },
  stdio: "inherit",
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const args = process.argv.slice(2);
const child = spawn(process.execPath, [...wrangler, "dev", ...args], { env, stdio: "inherit" });
const port = (() => {
  const i = args.indexOf("--port");
  return i >= 0 ? args[i + 1] : "8787";
})();
console.log(`\npostcall is starting on http://localhost:${port}. In another terminal: npm run send-sample\n`);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
