#!/usr/bin/env node
// `npm run bench:cost`: only the storage cost part of `npm run bench` (bench/lib/cost.mjs, called as
// bench/run.mjs calls it), in about 15 s. COST_CALLS=400 by default. Prints the table and the D1 figures.
process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
const { runCostModel } = await import("./lib/cost.mjs");
const { readFileSync, writeFileSync } = await import("node:fs");
const { execFileSync } = await import("node:child_process");
const started = Date.now();
const log = (...a) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const calls = Number(process.env.COST_CALLS ?? 400);
const cost = await runCostModel({ log, secret: "whsec_bench_secret", minBytes: 20_000, calls, users: Math.min(100, calls / 4) });
console.log(cost.table);
const figures = {
  d1RowsWrittenPerTranscription: cost.measured.d1RowsWritten / 1000,
  d1BytesPerConversation: cost.measured.d1BytesPerConversation,
  // Issue 21's targets: at most 30 rows written and 15 statements (recordConversation and its alarm).
  doRowsWrittenPerTranscription: cost.measured.doRowsWritten / 1000,
  doSqlStatementsPerTranscription: cost.measured.doSqlStatements / 1000,
  doRowsReadPerTranscription: cost.measured.doRowsRead / 1000,
};
console.log(JSON.stringify(figures));
// Merged into bench/results.json (key `costModel`; `npm run bench` writes the full set under `cost`).
const results = new URL("./results.json", import.meta.url);
let previous = {};
try {
  previous = JSON.parse(readFileSync(results, "utf8"));
} catch {}
const git = (args) => { try { return execFileSync("git", args, { encoding: "utf8" }).trim(); } catch { return null; } };
writeFileSync(results, `${JSON.stringify({ ...previous, costModel: { generatedAt: new Date().toISOString(), command: "npm run bench:cost", calls, commit: git(["rev-parse", "HEAD"]), ...figures } }, null, 2)}\n`);
process.exit(0);
