#!/usr/bin/env node
// `npm run bench:cost`: only the storage cost part of `npm run bench` (bench/lib/cost.mjs, called as
// bench/run.mjs calls it), in about 15 s. COST_CALLS=400 by default. Prints the table and the D1 figures.
process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
const { runCostModel } = await import("./lib/cost.mjs");
const started = Date.now();
const log = (...a) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const calls = Number(process.env.COST_CALLS ?? 400);
const cost = await runCostModel({ log, secret: "whsec_bench_secret", minBytes: 20_000, calls, users: Math.min(100, calls / 4) });
console.log(cost.table);
console.log(JSON.stringify({ d1RowsWrittenPerTranscription: cost.measured.d1RowsWritten / 1000, d1BytesPerConversation: cost.measured.d1BytesPerConversation }));
process.exit(0);
