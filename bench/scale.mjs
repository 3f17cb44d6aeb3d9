#!/usr/bin/env node
// `npm run bench:scale` (issue #23): does a read's cost grow with history? The real Worker
// (bench/workers/scale.ts wraps src/index.ts) on three local D1 shards (D1_SHARDS = "DB,DB_1,DB_2"),
// through Miniflare like the other benches. It seeds 10,000 conversations over 20,000 users through
// storage's own writer (storeConversation: the row, transcript, search document, directory row,
// counters, home entry, as a projected webhook writes them), times every read route, seeds on to
// 200,000 and times them again, then prints each route's 200k/10k ratio (goal about 1, none above 2)
// and the disk each shard holds, and merges the run into bench/results.json under "scale".
//
//   npm run bench:scale        BENCH_SCALE_SIZES=2000,20000 BENCH_SCALE_REPEAT=5 npm run bench:scale
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, applyMigrations, startWorker, wranglerOptions } from "./lib/workers.mjs";

const [SMALL, LARGE] = (process.env.BENCH_SCALE_SIZES ?? "10000,200000").split(",").map(Number);
const REPEAT = Number(process.env.BENCH_SCALE_REPEAT ?? 5);
const API_KEY = "bench-scale-key";
const SHARDS = ["DB", "DB_1", "DB_2"];
const NOW = Math.floor(Date.now() / 1000);
const auth = { Authorization: `Bearer ${API_KEY}` };

const base = wranglerOptions();
const worker = await startWorker({
  name: "scale",
  entry: "bench/workers/scale.ts",
  bindings: { API_KEY, ELEVENLABS_WEBHOOK_SECRET: "whsec_YmVuY2g=", D1_SHARDS: SHARDS.join(","), RETENTION_DAYS: "365" },
  miniflareOptions: { d1Databases: { ...base.d1Databases, DB_1: "bench-scale-shard-1", DB_2: "bench-scale-shard-2" } },
});

/**
 * fetch, sent again (up to 3 times) when the connection drops: under load workerd sometimes closes a
 * kept-alive connection as it is reused ("other side closed"); every request here is idempotent.
 * Returns the answer and the milliseconds of the attempt that got it.
 */
async function send(url, init = {}) {
  for (let attempt = 1; ; attempt++) {
    const t = performance.now();
    try {
      const res = await fetch(url, init);
      const body = Buffer.from(await res.arrayBuffer());
      return { res, body, ms: performance.now() - t };
    } catch (err) {
      process.stderr.write(`  ${init.method ?? "GET"} ${url.replace(worker.url, "")} attempt ${attempt}: ${err?.cause?.message ?? err}\n`);
      if (attempt === 3) throw err;
    }
  }
}

/** One API call, whole body read; its time in ms. */
async function call(method, path) {
  const { res, ms } = await send(worker.url + path, { method, headers: auth });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
  return ms;
}

async function seed(from, to) {
  const started = Date.now();
  const step = 1_000;
  for (let i = from; i < to; i += step) {
    // Each write is idempotent (storeConversation: ON CONFLICT DO NOTHING), so send() may repeat it.
    const { res, body } = await send(`${worker.url}/bench/seed?from=${i}&to=${Math.min(to, i + step)}&now=${NOW}`, { method: "POST" });
    if (!res.ok) throw new Error(`seed ${i}: HTTP ${res.status} ${body}`);
    if ((i - from) % 20_000 === 0) process.stderr.write(`  seeded ${i} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  return (Date.now() - started) / 1000;
}

/** Median ms of REPEAT timed calls (after one untimed warm-up). */
async function timed(fn) {
  await fn();
  const ms = [];
  for (let k = 0; k < REPEAT; k++) ms.push(await fn());
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

/** The directory's page `n` (following next_cursor): the timed request is the last one. */
async function deepCursor(n) {
  let cursor = null;
  for (let k = 1; k < n; k++) {
    const { body } = await send(`${worker.url}/v1/users?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { headers: auth });
    cursor = JSON.parse(body).next_cursor;
  }
  return cursor;
}

async function measure(eraseUser) {
  const deep = await deepCursor(100);
  const out = {
    directory_first: await timed(() => call("GET", "/v1/users?limit=50")),
    directory_page_100: await timed(() => call("GET", `/v1/users?limit=50&cursor=${encodeURIComponent(deep)}`)),
    user_conversations: await timed(() => call("GET", "/v1/users/u00042/conversations?limit=20")),
    conversation: await timed(() => call("GET", "/v1/conversations/conv_0000042")),
    search_common: await timed(() => call("GET", "/v1/search?q=refund&limit=20")),
    search_rare: await timed(() => call("GET", "/v1/search?q=zanzibar&limit=20")),
    unattributed: await timed(() => call("GET", "/v1/conversations?unattributed=true&limit=50")),
    health_details: await timed(() => call("GET", "/v1/health/details")),
    export_1000_calls: await timed(() => call("GET", "/v1/users/bench_heavy_a/export")),
  };
  // Erasure and the sweep change what they time: once each, of a user with 1,000 calls / ten expired calls.
  const del = await send(`${worker.url}/v1/users/${eraseUser}`, { method: "DELETE", headers: auth });
  const erased = JSON.parse(del.body);
  if (!del.res.ok) throw new Error(`DELETE ${eraseUser}: HTTP ${del.res.status} ${del.body}`);
  out.erase_1000_calls = del.ms;
  const sw = await send(`${worker.url}/bench/sweep`, { method: "POST" });
  const sweep = JSON.parse(sw.body);
  out.retention_sweep = sw.ms;
  return { ms: out, sweep, erased };
}

function diskPerShard() {
  const dir = join(worker.persistRoot, "d1");
  const files = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith(".sqlite")) files.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return files.map((p) => statSync(p).size + (existsSync(`${p}-wal`) ? statSync(`${p}-wal`).size : 0)).sort((a, b) => b - a);
}

try {
  for (const name of SHARDS) await applyMigrations(worker.mf, name);
  console.error(`seeding ${SMALL} conversations over 3 shards`);
  const seedSmall = await seed(0, SMALL);
  const small = await measure("bench_heavy_b");
  const diskSmall = diskPerShard();
  console.error(`seeding on to ${LARGE}`);
  const seedLarge = await seed(SMALL, LARGE);
  const large = await measure("bench_heavy_a");
  const diskLarge = diskPerShard();

  console.log(`\nbench:scale: 3 D1 shards, ${SMALL} then ${LARGE} conversations over 20,000 users (median of ${REPEAT}; ${new Date().toISOString()})\n`);
  console.log(`| route | ${SMALL} | ${LARGE} | ratio |`);
  console.log("|---|---:|---:|---:|");
  const ratios = {};
  for (const k of Object.keys(small.ms)) {
    ratios[k] = large.ms[k] / small.ms[k];
    console.log(`| ${k} | ${small.ms[k].toFixed(1)} ms | ${large.ms[k].toFixed(1)} ms | ${ratios[k].toFixed(2)}${ratios[k] > 2 ? " OVER 2" : ""} |`);
  }
  const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
  console.log(`\nerased at ${SMALL}: ${JSON.stringify(small.erased)}\nerased at ${LARGE}: ${JSON.stringify(large.erased)}`);
  console.log(`sweep at ${SMALL}: ${JSON.stringify(small.sweep)}\nsweep at ${LARGE}: ${JSON.stringify(large.sweep)}`);
  console.log(`seeding: ${seedSmall.toFixed(0)} s, then ${seedLarge.toFixed(0)} s`);
  console.log(`disk per shard (sqlite files, largest first): at ${SMALL} ${diskSmall.map(mb).join(", ")}; at ${LARGE} ${diskLarge.map(mb).join(", ")}`);
  const over = Object.entries(ratios).filter(([, r]) => r > 2);
  console.log(over.length === 0 ? "every ratio at most 2" : `OVER 2: ${over.map(([k]) => k).join(", ")}`);

  const file = join(ROOT, "bench", "results.json");
  const all = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  all.scale = {
    at: new Date().toISOString(),
    shards: SHARDS.length,
    sizes: [SMALL, LARGE],
    repeat: REPEAT,
    ms: { [SMALL]: small.ms, [LARGE]: large.ms },
    ratios,
    sweep: { [SMALL]: small.sweep, [LARGE]: large.sweep },
    erased: { [SMALL]: small.erased, [LARGE]: large.erased },
    seed_seconds: [seedSmall, seedLarge],
    disk_bytes_per_shard: { [SMALL]: diskSmall, [LARGE]: diskLarge },
  };
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  console.log("merged into bench/results.json (key scale)");
  if (over.length > 0) process.exitCode = 1;
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
} finally {
  await worker.dispose();
}
