#!/usr/bin/env node
// `npm run bench`: postcall's scenarios against two baselines measured the same way in the same run,
// plus the verifier micro-benchmark and the storage counts behind docs/cost-and-capacity.md.
// Prints one Markdown table and writes bench/RESULTS.md. Settings (environment variables):
//   BENCH_ROUNDS (3), BENCH_ROUND_SECONDS (4), BENCH_CONNECTIONS (32), BENCH_ONLY (comma-separated scenario ids),
//   BENCH_WITH (opt-in scenario ids, e.g. "audio"), BENCH_SKIP_COST=1, BENCH_SKIP_VERIFIER=1.
import { cpus, loadavg, totalmem } from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, applyMigrations, cpuSeconds, startWorker } from "./lib/workers.mjs";
import { drain } from "./lib/drain.mjs";
import { load } from "./lib/load.mjs";
import { signedTranscriptions } from "./lib/payloads.mjs";
import { runVerifierBenchmark } from "./lib/verifier.mjs";
import { runCostModel } from "./lib/cost.mjs";
import { median, fmt, ratio } from "./lib/stats.mjs";

process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROUND_SECONDS = Number(process.env.BENCH_ROUND_SECONDS ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ONLY = process.env.BENCH_ONLY?.split(",").filter(Boolean);
const WITH = (process.env.BENCH_WITH ?? "").split(",").filter(Boolean);
const BODY_BYTES = 20_000;
const INGEST_USERS = 1000;
const CONTEXT_USERS = 200;
const CONTEXT_HISTORY = 3;
const CACHE_SECONDS = 5;
const SECRET = "whsec_bench_secret";
const API_KEY = "bench-api-key";
const started = Date.now();
const loadAtStart = loadavg();
const log = (...a) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

// ---- services ---------------------------------------------------------------------------------------

const shape = signedTranscriptions({ secret: SECRET, count: 1, users: 1, minBytes: BODY_BYTES, prefix: "shape" });
log(`payload: ${shape.size} bytes, ${shape.turns} turns`);

const services = {};
log("starting Workers under Miniflare (esbuild bundles, settings from wrangler.toml)...");
services.hello = await startWorker({ name: "hello", entry: "bench/workers/hello.ts", storage: false });
for (const [name, content] of [["floor", "trivial"], ["floorBytes", "same"]]) {
  services[name] = await startWorker({
    name,
    entry: "bench/workers/floor.ts",
    bindings: { FLOOR_USERS: String(INGEST_USERS), FLOOR_TURN_ROWS: String(shape.turns), FLOOR_CONTENT: content },
  });
}
services.postcall = await startWorker({
  name: "postcall",
  entry: "src/index.ts",
  bindings: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY },
});
const postcallDb = await applyMigrations(services.postcall.mf);
// The same service with the opt-in context cache on, for one extra, labelled row.
services.postcallCached = await startWorker({
  name: "postcall-cached",
  entry: "src/index.ts",
  bindings: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, CONTEXT_CACHE_SECONDS: String(CACHE_SECONDS) },
});
const postcallCachedDb = await applyMigrations(services.postcallCached.mf);
const floorDbs = {};
for (const name of ["floor", "floorBytes"]) {
  const db = (floorDbs[name] = await services[name].mf.getD1Database("DB"));
  await db.batch([
    db.prepare("CREATE TABLE floor_events (id TEXT PRIMARY KEY, text TEXT)"),
    db.prepare("CREATE TABLE floor_rows (id TEXT NOT NULL, i INTEGER NOT NULL, text TEXT, PRIMARY KEY (id, i)) WITHOUT ROWID"),
    db.prepare("CREATE TABLE floor_users (user_id TEXT PRIMARY KEY, n INTEGER NOT NULL)"),
  ]);
}

// ---- context users: seeded through the real webhook so their memory is built the real way ---------

async function postSigned(url, request) {
  const res = await fetch(`${url}/webhooks/elevenlabs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "ElevenLabs-Signature": request.signature },
    body: request.body,
  });
  if (res.status !== 200) throw new Error(`seeding: ${res.status} ${await res.text()}`);
}

const seed = signedTranscriptions({ secret: SECRET, count: CONTEXT_USERS * CONTEXT_HISTORY, users: CONTEXT_USERS, minBytes: BODY_BYTES, prefix: "ctx" });
log(`seeding ${CONTEXT_USERS} users x ${CONTEXT_HISTORY} conversations for the context scenarios...`);
for (const [service, db] of [[services.postcall, postcallDb], [services.postcallCached, postcallCachedDb]]) {
  for (let i = 0; i < seed.count; i += 16) {
    await Promise.all(Array.from({ length: Math.min(16, seed.count - i) }, (_, k) => postSigned(service.url, seed.request(i + k))));
  }
  await drain(db, "conversations", seed.count, "seeding");
}
let delivered = seed.count;
const contextUser = (i) => seed.userId(i % CONTEXT_USERS);

// ---- the scenario table --------------------------------------------------------------------------
// Each scenario: the service it loads, how to make its i-th request, and what it is compared with.
// `prepare(amount, tag)` runs before a load run (signing happens there, never during the run);
// `after(ok)` runs after it (waiting for background work so it cannot spill into the next run).

let poolSeq = 0;
function signedPool(prefix) {
  let pool = null;
  let next = 0;
  return {
    prepare(amount) {
      pool = signedTranscriptions({ secret: SECRET, count: amount + 4 * CONNECTIONS, users: INGEST_USERS, minBytes: BODY_BYTES, prefix: `${prefix}${++poolSeq}` });
      next = 0;
    },
    next() {
      if (next >= pool.count) throw new Error("signed pool exhausted: a body would be reused");
      const { body, signature } = pool.request(next++);
      return { method: "POST", path: "/webhooks/elevenlabs", headers: { "content-type": "application/json", "elevenlabs-signature": signature }, body };
    },
  };
}

const floorPool = signedPool("floor");
const floorBytesPool = signedPool("floorb");
const ingestPool = signedPool("ing");
const floorDelivered = { floor: 0, floorBytes: 0 };
let contextNext = 0;

const SCENARIOS = [
  {
    id: "hello",
    label: "baseline: hello-world Worker, `GET /`",
    service: "hello",
    next: () => ({ method: "GET", path: "/" }),
  },
  {
    id: "floor",
    label: "baseline: storage floor: `POST` 20 KB -> 1 DO RPC (1 SQLite txn, alarm set) -> 200; alarm: 1 R2 put + 1 D1 batch (the same 7 statements: conversation, turns in 4 inserts, directory upsert, audio lookup); trivial contents",
    service: "floor",
    compare: ["hello"],
    prepare: (amount) => floorPool.prepare(amount),
    next: () => floorPool.next(),
    after: async (ok) => drain(floorDbs.floor, "floor_events", (floorDelivered.floor += ok), "floor"),
  },
  {
    id: "floorBytes",
    label: "reference: storage floor storing as many bytes as postcall (raw body in the DO and R2, turn-sized D1 rows)",
    service: "floorBytes",
    compare: ["floor", "hello"],
    prepare: (amount) => floorBytesPool.prepare(amount),
    next: () => floorBytesPool.next(),
    after: async (ok) => drain(floorDbs.floorBytes, "floor_events", (floorDelivered.floorBytes += ok), "floorBytes"),
  },
  {
    id: "ingest",
    label: "(a) signed `post_call_transcription` ingest, 20 KB, unique ids, 1,000 users",
    service: "postcall",
    prepare: (amount) => ingestPool.prepare(amount),
    next: () => ingestPool.next(),
    after: async (ok) => drain(postcallDb, "conversations", (delivered += ok), "ingest"),
    compare: ["floor", "floorBytes", "hello"],
    targets: { floor: { rps: 0.8, p99: 2 } },
  },
  {
    id: "context",
    label: `(b) \`GET /v1/users/:id/context\`, ${CONTEXT_USERS} users with ${CONTEXT_HISTORY} calls each`,
    service: "postcall",
    next: () => ({
      method: "GET",
      path: `/v1/users/${encodeURIComponent(contextUser(contextNext++))}/context`,
      headers: { authorization: `Bearer ${API_KEY}` },
    }),
    compare: ["hello"],
    targets: { hello: { rps: 0.8, p99: 2 } },
  },
  {
    id: "contextCached",
    label: `(b) the same with \`CONTEXT_CACHE_SECONDS=${CACHE_SECONDS}\` (opt-in, off by default; here each user is read many times a second, so almost every read is a cache hit)`,
    service: "postcallCached",
    next: () => ({
      method: "GET",
      path: `/v1/users/${encodeURIComponent(contextUser(contextNext++))}/context`,
      headers: { authorization: `Bearer ${API_KEY}` },
    }),
    compare: ["hello"],
  },
  {
    id: "initiation",
    label: "(c) conversation-initiation webhook",
    service: "postcall",
    // Built on another branch (issue 4); runs here once `POST /webhooks/elevenlabs/initiation` exists.
    available: async () => {
      const res = await fetch(`${services.postcall.url}/webhooks/elevenlabs/initiation`, { method: "POST", headers: { authorization: `Bearer ${API_KEY}` }, body: "{}" });
      await res.arrayBuffer();
      return res.status === 404 ? "route `POST /webhooks/elevenlabs/initiation` does not exist in this tree (issue 4 builds it)" : null;
    },
    next: () => ({
      method: "POST",
      path: "/webhooks/elevenlabs/initiation",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ caller_id: "+14155550123", agent_id: "agent_bench", called_number: "+14155550000", call_sid: `CA${contextNext++}` }),
    }),
    compare: ["hello"],
    targets: { hello: { rps: 0.8, p99: 2 } },
  },
  {
    id: "audio",
    label: "(d) `post_call_audio`",
    service: "postcall",
    optIn: true,
    available: async () =>
      "measured by its own script: `npm run bench:audio` streams a 150 MB chunked audio webhook through `wrangler dev` against a plain-multipart and a buffered baseline in the same run (throughput and workerd RSS growth; bench/AUDIO.md). A 32-connection load of 150 MB bodies is not a scenario ElevenLabs produces.",
  },
];

const selected = SCENARIOS.filter((s) => (ONLY ? ONLY.includes(s.id) || ["hello", "floor", "floorBytes"].includes(s.id) : !s.optIn || WITH.includes(s.id)));
const skipped = [];
const active = [];
for (const s of SCENARIOS) {
  if (!selected.includes(s)) {
    if (s.optIn) skipped.push({ s, why: (await s.available?.()) ?? "opt-in" });
    continue;
  }
  const why = s.available ? await s.available() : null;
  if (why && !(s.optIn && WITH.includes(s.id) && s.next)) skipped.push({ s, why });
  else active.push(s);
}

async function runOnce(s, amount) {
  await s.prepare?.(amount);
  const service = services[s.service];
  const cpu0 = cpuSeconds(service.pid);
  const r = await load({ url: service.url, connections: CONNECTIONS, amount, next: s.next });
  const drainSeconds = (await s.after?.(r.ok)) ?? 0;
  // workerd CPU per request, including the background deliveries the requests caused.
  const cpuMs = ((cpuSeconds(service.pid) - cpu0) * 1000) / r.ok;
  if (r.failed > 0) throw new Error(`${s.id}: ${r.failed} of ${r.ok + r.failed} requests failed (non-2xx, errors or timeouts)`);
  // A webhook scenario's rate counts until its deliveries have caught up: a short run could
  // otherwise leave its alarms' work behind and look faster than it can sustain.
  return { ...r, loadRps: r.rps, rps: r.ok / (r.seconds + drainSeconds), drainSeconds, cpuMs };
}

// Warm-up (JIT, Durable Object instances, SQLite pages) and calibration: each round of a scenario
// sends about BENCH_ROUND_SECONDS worth of requests at the rate its warm-up reached.
const amounts = {};
for (const s of active) {
  const w = await runOnce(s, 400);
  amounts[s.id] = Math.max(400, Math.round((w.loadRps ?? w.rps) * ROUND_SECONDS));
  log(`warm-up ${s.id}: ${fmt(w.loadRps ?? w.rps, 0)} req/s -> ${amounts[s.id]} requests per round`);
}

const runs = Object.fromEntries(active.map((s) => [s.id, []]));
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate the order every round so slow drift on a shared machine does not favour one service.
  const order = round % 2 === 1 ? active : [...active].reverse();
  for (const s of order) {
    const r = await runOnce(s, amounts[s.id]);
    runs[s.id].push(r);
    log(`round ${round} ${s.id.padEnd(13)} ${fmt(r.rps, 0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  CPU ${fmt(r.cpuMs, 3)} ms/req  (${r.ok} ok in ${fmt(r.seconds, 1)} s${r.drainSeconds ? `, alarms drained ${fmt(r.drainSeconds, 1)} s later` : ""})`);
  }
}

// ---- results ---------------------------------------------------------------------------------------

const summary = {};
for (const s of active) {
  const rs = runs[s.id];
  summary[s.id] = {
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    cpuMs: median(rs.map((r) => r.cpuMs)),
  };
}
// Ratios are medians of per-round ratios (each scenario against the baseline run in the same round).
const roundRatio = (a, b, key) => median(runs[a].map((r, i) => r[key] / runs[b][i][key]));

const rows = [];
const verdicts = [];
for (const s of active) {
  const m = summary[s.id];
  const cells = [s.label, fmt(m.rps, 0), fmt(m.p50, 0), fmt(m.p99, 0), fmt(m.cpuMs, 3)];
  for (const base of ["floor", "floorBytes", "hello"]) {
    if (!(s.compare ?? []).includes(base) || !runs[base]) {
      cells.push("");
      continue;
    }
    const rr = roundRatio(s.id, base, "rps");
    const pr = roundRatio(s.id, base, "p99");
    const cr = roundRatio(s.id, base, "cpuMs");
    const t = s.targets?.[base];
    let cell = `${ratio(rr)} rps, p99 ${ratio(pr)}, CPU ${ratio(cr)}`;
    if (t?.rps) {
      const ok = rr >= t.rps && pr <= t.p99;
      cell += ok ? " ✅" : " ❌";
      verdicts.push(`${s.id} vs ${base}: rps ${ratio(rr)} (target >= ${t.rps}) and p99 ${ratio(pr)} (target <= ${t.p99}): ${ok ? "met" : "NOT met"}`);
    }
    cells.push(cell);
  }
  rows.push(cells);
}

const table = [
  "| Scenario | req/s | p50 ms | p99 ms | workerd CPU ms/req | vs storage floor | vs floor with the same bytes | vs hello-world |",
  "|---|---:|---:|---:|---:|---|---|---|",
  ...rows.map((c) => `| ${c.join(" | ")} |`),
  ...skipped.map(({ s, why }) => `| ${s.label} | - | - | - | - | not run: ${why} | | |`),
].join("\n");

console.log(`\n${table}\n`);
for (const v of verdicts) console.log(`- ${v}`);

const verifier = process.env.BENCH_SKIP_VERIFIER ? null : await runVerifierBenchmark({ log });
if (verifier) {
  console.log(`\n${verifier.table}\n`);
  const v = verifier.ratios;
  verdicts.push(
    `verifier: ours ÷ SDK constructEvent ${ratio(v.literal)} (target >= 2): ${v.literal >= 2 ? "met" : "NOT met"}; ` +
      `but constructEvent also parses: like for like (verify + parse) ${ratio(v.likeForLike)}, verification alone (estimated) ${ratio(v.verifyOnly)}`,
  );
  console.log(`- ${verdicts.at(-1)}`);
}

const cost = process.env.BENCH_SKIP_COST ? null : await runCostModel({ log, secret: SECRET, minBytes: BODY_BYTES });
if (cost) console.log(`\n${cost.table}\n`);

for (const s of Object.values(services)) await s.dispose();

// ---- bench/RESULTS.md --------------------------------------------------------------------------------

const pkg = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
const cpu = cpus();
const storageNote = services.hello.persistRoot.startsWith("/dev/shm")
  ? "tmpfs (/dev/shm): on a disk, every SQLite commit's fsync blocks workerd's only thread, a cost deployed Workers, whose storage is remote, never pay"
  : `${services.hello.persistRoot.replace(/\/[^/]+$/, "")} (BENCH_STORAGE_DIR or the OS temp directory)`;
const raw = active
  .map((s) => `| ${s.id} | ${runs[s.id].map((r) => `${fmt(r.rps, 0)} / ${r.p50} / ${r.p99} / ${fmt(r.cpuMs, 3)}`).join(" | ")} |`)
  .join("\n");
const md = `# Benchmark results

Written by \`npm run bench\` (bench/run.mjs) on ${new Date().toISOString()}.

- Machine: ${cpu.length} x ${cpu[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform}; Node ${process.version}.
- Versions: wrangler ${pkg("wrangler")}, miniflare ${pkg("miniflare")}, workerd ${pkg("workerd")}, esbuild ${pkg("esbuild")}, autocannon ${pkg("autocannon")}, @elevenlabs/elevenlabs-js ${pkg("@elevenlabs/elevenlabs-js")}.
- Method: every Worker (postcall from \`src/index.ts\`, and the baselines in \`bench/workers/\`) is bundled with esbuild and run
  through **Miniflare's API** (not \`wrangler dev\`, whose inspector proxy adds about 1 ms of Node CPU per D1 query), each in its
  own workerd process on 127.0.0.1, with compatibility date, flags, vars and bindings read from wrangler.toml. Local D1, R2 and
  Durable Object storage live on ${storageNote}. Load: autocannon, ${CONNECTIONS} connections, no pipelining, ${ROUNDS} rounds; every
  round runs every scenario once, in alternating order, with about ${ROUND_SECONDS} s worth of requests each (calibrated by a
  warm-up run). Figures are medians over rounds; ratios are medians of per-round ratios against the baseline measured in the same
  round. Latencies are autocannon's (whole milliseconds, 2xx responses only; every run must have no errors).
- Webhook scenarios (ingest and both floors) acknowledge an event after their Durable Object commits, and deliver it to R2 and
  D1 from an alarm afterwards. After each of their runs the harness waits until every acknowledged event is in D1, and their
  req/s is **acknowledged events / (load time + that wait)**: the rate they sustain with their background work included, so a
  short run cannot leave work behind and look faster. "workerd CPU ms/req" is the CPU time of that service's workerd process
  (user + system, /proc) over the run and the wait, divided by the requests: unlike req/s it hardly depends on other load.
  It includes the local emulation of D1, R2 and Durable Object storage, which deployed Workers do not run on their own CPU.
- Ingest bodies: ${shape.size} bytes (test/fixtures/transcription.json with ${shape.turns} turns), unique conversation ids over
  ${INGEST_USERS} users, signed with node:crypto before each run (never during it). Both floors receive the same bodies.
- Load average when the run started: ${loadAtStart.map((l) => l.toFixed(2)).join(", ")} (1, 5, 15 min) on ${cpu.length} CPUs.
  Absolute numbers drift with other load; compare the ratios and the CPU per request.

## Targets (issue 6)

${verdicts.map((v) => `- ${v}`).join("\n")}

## Load scenarios

${table}

Per round (req/s / p50 ms / p99 ms / workerd CPU ms per request):

| Scenario | ${Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`).join(" | ")} |
|---|${"---|".repeat(ROUNDS)}
${raw}

${verifier ? `## Signature verification inside workerd\n\n${verifier.table}\n\n${verifier.notes}\n` : ""}
${cost ? `## Storage operations per call (instrumented run)\n\n${cost.table}\n\n${cost.notes}\n` : ""}`;
writeFileSync(join(ROOT, "bench", "RESULTS.md"), md);
log(`wrote bench/RESULTS.md (total ${fmt((Date.now() - started) / 1000, 0)} s)`);
