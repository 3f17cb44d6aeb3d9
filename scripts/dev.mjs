#!/usr/bin/env node
// `npm start`: run postcall locally on wrangler's embedded D1, R2 and Durable Objects, offline.
// 1. .dev.vars (local webhook secret and API key) is created from .dev.vars.example if missing;
// 2. D1 migrations are applied to each local D1 shard named in wrangler.toml's D1_SHARDS (idempotent);
// 3. `wrangler dev` starts on one port, chosen here and passed explicitly: PORT (default 8787), or
//    `npm start -- --port 9000`. If that port is taken, this fails with a clear message instead of
//    letting wrangler move to another port that nothing else knows about (send-sample reads PORT too).
//    Other extra arguments are passed through to wrangler.
// 4. Once the Worker answers /health, the banner prints the URL it really listens on.
import { spawnSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { migrationSummary } from "./lib/migrations.mjs";

const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const wrangler = ["node_modules/wrangler/bin/wrangler.js"];

// Every argument but --port goes to wrangler; --port (or PORT) is the one port everything uses.
const args = [];
let portText = process.env.PORT ?? "8787";
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--port") portText = argv[++i] ?? "";
  else if (argv[i].startsWith("--port=")) portText = argv[i].slice("--port=".length);
  else args.push(argv[i]);
}
const port = Number(portText);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`postcall: ${JSON.stringify(portText)} is not a port number (PORT or --port must be 1-65535).`);
  process.exit(2);
}

/** Whether something already listens on the port (wrangler listens on localhost: IPv4 and, where present, IPv6). */
function taken(host) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (err) => resolve(err.code === "EADDRINUSE" || err.code === "EACCES"));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(false)));
  });
}
if ((await taken("127.0.0.1")) || (await taken("::1"))) {
  const other = port === 8787 ? 8797 : port + 1;
  console.error(
    `postcall: port ${port} is already in use (another npm start or wrangler dev?).\n` +
      `Stop that, or start on another port and point the sample sender at it too:\n` +
      `  PORT=${other} npm start\n  PORT=${other} npm run send-sample`,
  );
  process.exit(1);
}

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local-only secret and API key).");
}

// CI=true keeps wrangler from asking "continue?" in an interactive terminal: local migrations are safe to apply.
// Every shard gets every migration (src/storage/shards.ts): the bindings D1_SHARDS names, "DB" when unset.
// wrangler's output redraws the migration table after each one: one line per shard is printed instead,
// unless it failed or says something not understood, when all of it is.
const shardsSetting = /^\s*D1_SHARDS\s*=\s*"([^"]*)"/m.exec(readFileSync("wrangler.toml", "utf8"))?.[1] ?? "DB";
for (const shard of shardsSetting.split(",").map((s) => s.trim()).filter(Boolean)) {
  const migrate = spawnSync(process.execPath, [...wrangler, "d1", "migrations", "apply", shard, "--local"], {
    env: { ...env, CI: "true" },
    encoding: "utf8",
  });
  const migrated = migrate.status === 0 ? migrationSummary(`${migrate.stdout}${migrate.stderr}`) : null;
  if (migrated !== null) console.log(shard === "DB" ? migrated : `${migrated} (${shard})`);
  else process.stdout.write(`${migrate.stdout ?? ""}${migrate.stderr ?? ""}`);
  if (migrate.status !== 0) process.exit(migrate.status ?? 1);
}

const child = spawn(process.execPath, [...wrangler, "dev", "--port", String(port), ...args], { env, stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));

// The banner, once the Worker really answers on that port (wrangler's own output scrolls past).
const url = `http://localhost:${port}`;
const hint = port === 8787 ? "npm run send-sample" : `PORT=${port} npm run send-sample`;
for (let i = 0; i < 300 && child.exitCode === null; i++) {
  try {
    if ((await fetch(`${url}/health`)).ok) {
      console.log(`\npostcall is running on ${url} (console: ${url}/console/). In another terminal: ${hint}\n`);
      break;
    }
  } catch {
    /* not listening yet */
  }
  await new Promise((r) => setTimeout(r, 200));
}
