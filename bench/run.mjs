#!/usr/bin/env node
// `npm run bench`: postcall's scenarios against two baselines measured the same way in the same run,
// plus the verifier micro-benchmark and the storage counts behind docs/cost-and-capacity.md.
// Prints one Markdown table and the targets, and writes bench/results.json (git-ignored). Only
// `npm run bench -- --write` also rewrites bench/RESULTS.md (committed), so a plain run leaves the
// git tree clean. Settings (environment variables):
//   BENCH_ROUNDS (3), BENCH_ROUND_SECONDS (4), BENCH_CONNECTIONS (32), BENCH_ONLY (comma-separated scenario ids),
//   BENCH_WITH (opt-in scenario ids, e.g. "audio"), BENCH_SKIP_COST=1, BENCH_SKIP_VERIFIER=1.
import { execFileSync } from "node:child_process";
import { arch, cpus, loadavg, totalmem } from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, applyMigrations, cpuSeconds, startWorker } from "./lib/workers.mjs";
import { drain } from "./lib/drain.mjs";
import { load } from "./lib/load.mjs";
import { floorContent, signedTranscriptions } from "./lib/payloads.mjs";
import { runVerifierBenchmark } from "./lib/verifier.mjs";
import { runCostModel } from "./lib/cost.mjs";
import { median, fmt, ratio } from "./lib/stats.mjs";
import { recallUnavailable } from "./lib/recall.mjs";
import { RECALL_CALLS, RECALL_TURNS, RECALL_USERS, recallRequest, seedRecallUsers } from "./lib/recall-bench.mjs";

process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== "--write");
if (unknown.length > 0) {
  console.error(`usage: npm run bench [-- --write]   (unknown: ${unknown.join(" ")})`);
  process.exit(2);
}
const WRITE = args.includes("--write");
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
const AGENT_KEY = "bench-agent-key";
const READ_FLOOR_DOC_BYTES = 1024;
// Targets (issue "Core v2", item 4): rps ratios at least, p99 ratios at most, against baselines run
// in the same round; cost targets from the instrumented run.
const P99_MAX = 1.5;
// Issue 21: Durable Object rows written and statements per transcription (recordConversation + alarm).
const COST_TARGETS = { d1RowsWrittenPerTranscription: 10, d1BytesPerConversation: 6144, doRowsWrittenPerTranscription: 30, doSqlStatementsPerTranscription: 15 };
const started = Date.now();
const loadAtStart = loadavg();
const log = (...a) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

// ---- services ---------------------------------------------------------------------------------------

const shape = signedTranscriptions({ secret: SECRET, count: 1, users: 1, minBytes: BODY_BYTES, prefix: "shape" });
log(`payload: ${shape.size} bytes, ${shape.turns} turns`);

const services = {};
log("starting Workers under Miniflare (esbuild bundles, settings from wrangler.toml)...");
services.hello = await startWorker({ name: "hello", entry: "bench/workers/hello.ts", storage: false });
const sameBytes = floorContent(BODY_BYTES);
log(`floorBytes stores: ${shape.size} B raw body (DO and R2), ${sameBytes.meta.length} B metadata + ${sameBytes.transcriptBytes} B gzipped transcript (D1 row), ${sameBytes.ftsText.length} B of turn text (FTS document)`);
for (const [name, content] of [["floor", "trivial"], ["floorBytes", "same"]]) {
  services[name] = await startWorker({
    name,
    entry: "bench/workers/floor.ts",
    durableObjects: ["USER_MEMORY"],
    bindings: {
      FLOOR_USERS: String(INGEST_USERS),
      FLOOR_CONTENT: content,
      ...(content === "same"
        ? { FLOOR_META: sameBytes.meta, FLOOR_TRANSCRIPT_B64: sameBytes.transcriptB64, FLOOR_FTS_TEXT: sameBytes.ftsText, FLOOR_SUMMARY: sameBytes.summary ?? "" }
        : {}),
    },
  });
}
services.readFloor = await startWorker({
  name: "read-floor",
  entry: "bench/workers/read-floor.ts",
  durableObjects: ["USER_MEMORY"],
  bindings: { READ_FLOOR_DOC_BYTES: String(READ_FLOOR_DOC_BYTES) },
});
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
// The floors' D1 tables are their own, defined in bench/workers/floor.ts.
const floorDbs = {};
for (const name of ["floor", "floorBytes"]) {
  const res = await fetch(`${services[name].url}/__floor/schema`, { method: "POST" });
  if (res.status !== 200) throw new Error(`${name}: schema: ${res.status} ${await res.text()}`);
  floorDbs[name] = await services[name].mf.getD1Database("DB");
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
// Phone callers for the initiation scenario: as many, with as much history, under their numbers.
const callers = signedTranscriptions({ secret: SECRET, count: CONTEXT_USERS * CONTEXT_HISTORY, users: CONTEXT_USERS, minBytes: BODY_BYTES, prefix: "call", phoneUsers: true });
for (let i = 0; i < callers.count; i += 16) {
  await Promise.all(Array.from({ length: Math.min(16, callers.count - i) }, (_, k) => postSigned(services.postcall.url, callers.request(i + k))));
}
await drain(postcallDb, "conversations", seed.count + callers.count, "seeding callers");
let delivered = seed.count + callers.count;
const contextUser = (i) => seed.userId(i % CONTEXT_USERS);
const caller = (i) => callers.userId(i % CONTEXT_USERS);
// The read floor gets one ~1 KB row for each of the same users.
{
  const res = await fetch(`${services.readFloor.url}/__seed`, { method: "POST", body: JSON.stringify(Array.from({ length: CONTEXT_USERS }, (_, i) => contextUser(i))) });
  if (res.status !== 200) throw new Error(`read floor seeding: ${res.status} ${await res.text()}`);
  const { bytes } = await res.json();
  log(`read floor: ${CONTEXT_USERS} users seeded with a ${bytes} B row each`);
}
const contextBytes = await (async () => {
  const res = await fetch(`${services.postcall.url}/v1/users/${encodeURIComponent(contextUser(0))}/context`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return (await res.arrayBuffer()).byteLength;
})();
const readFloorBytes = await (async () => {
  const res = await fetch(`${services.readFloor.url}/v1/users/${encodeURIComponent(contextUser(0))}/context`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return (await res.arrayBuffer()).byteLength;
})();
log(`context response: postcall ${contextBytes} B, read floor ${readFloorBytes} B`);

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
let readFloorNext = 0;
let initiationNext = 0;
let recallNext = 0;
let recallTokens = null;
let recallDb = null;
const contextRequest = (i) => ({
  method: "GET",
  path: `/v1/users/${encodeURIComponent(contextUser(i))}/context`,
  headers: { authorization: `Bearer ${API_KEY}` },
});

const SCENARIOS = [
  {
    id: "hello",
    kind: "baseline",
    label: "baseline: hello-world Worker, `GET /`",
    service: "hello",
    next: () => ({ method: "GET", path: "/" }),
  },
  {
    id: "floor",
    kind: "baseline",
    label:
      "baseline: storage floor (v2 layout): `POST` 20 KB -> 1 DO RPC (1 SQLite txn: dedupe, profile update, recent row, outbox row, raw body as a blob part; alarm set) -> 200; " +
      "alarm: 1 R2 put + 1 D1 batch (conversation as 1 row with a compressed transcript, 1 contentless FTS5 document, `users` upsert, `audio` lookup), then the outbox row and blob deleted; trivial contents; no verification or parsing",
    service: "floor",
    compare: ["hello"],
    prepare: (amount) => floorPool.prepare(amount),
    next: () => floorPool.next(),
    after: async (ok) => drain(floorDbs.floor, "floor_conversations", (floorDelivered.floor += ok), "floor"),
  },
  {
    id: "floorBytes",
    kind: "baseline",
    label: `baseline: the same storage floor storing as many bytes as postcall v2 (raw body in the DO and R2; a ${sameBytes.meta.length + sameBytes.transcriptBytes} B conversation row with a ${sameBytes.transcriptBytes} B gzipped transcript; the FTS document with the real ${fmt(sameBytes.ftsText.length, 0)} B of turn text)`,
    service: "floorBytes",
    compare: ["floor", "hello"],
    prepare: (amount) => floorBytesPool.prepare(amount),
    next: () => floorBytesPool.next(),
    after: async (ok) => drain(floorDbs.floorBytes, "floor_conversations", (floorDelivered.floorBytes += ok), "floorBytes"),
  },
  {
    id: "readFloor",
    kind: "baseline",
    label: `baseline: read floor: \`GET /v1/users/:id/context\` with \`Authorization: Bearer\` (carried, not checked) -> 1 DO RPC -> 1 SQLite row of ${fmt(READ_FLOOR_DOC_BYTES, 0)} B read -> that JSON; the same ${CONTEXT_USERS} users; no auth, rendering or cache`,
    service: "readFloor",
    compare: ["hello"],
    next: () => contextRequest(readFloorNext++),
  },
  {
    id: "ingest",
    kind: "scenario",
    label: "(a) signed `post_call_transcription` ingest, 20 KB, unique ids, 1,000 users",
    service: "postcall",
    prepare: (amount) => ingestPool.prepare(amount),
    next: () => ingestPool.next(),
    after: async (ok) => drain(postcallDb, "conversations", (delivered += ok), "ingest"),
    compare: ["floor", "floorBytes", "hello"],
    targets: { floor: { rps: 0.8, p99: P99_MAX }, floorBytes: { rps: 0.9 } },
  },
  {
    id: "context",
    kind: "scenario",
    label: `(b) \`GET /v1/users/:id/context\`, ${CONTEXT_USERS} users with ${CONTEXT_HISTORY} calls each`,
    service: "postcall",
    next: () => contextRequest(contextNext++),
    compare: ["readFloor", "hello"],
    targets: { readFloor: { rps: 0.9, p99: P99_MAX } },
  },
  {
    id: "contextCached",
    kind: "scenario",
    label: `(b) the same with \`CONTEXT_CACHE_SECONDS=${CACHE_SECONDS}\` (opt-in, off by default; here each user is read many times a second, so almost every read is a cache hit)`,
    service: "postcallCached",
    next: () => contextRequest(contextNext++),
    compare: ["readFloor", "hello"],
    targets: { readFloor: { p99: P99_MAX } },
  },
  {
    id: "initiation",
    kind: "scenario",
    label: `(c) conversation-initiation webhook, ${CONTEXT_USERS} phone callers (unlinked numbers) with ${CONTEXT_HISTORY} calls each`,
    service: "postcall",
    // Runs once `POST /webhooks/elevenlabs/initiation` exists in the tree.
    available: async () => {
      const res = await fetch(`${services.postcall.url}/webhooks/elevenlabs/initiation`, { method: "POST", headers: { authorization: `Bearer ${API_KEY}` }, body: "{}" });
      await res.arrayBuffer();
      return res.status === 404 ? "route `POST /webhooks/elevenlabs/initiation` does not exist in this tree (issue 4 builds it)" : null;
    },
    next: () => ({
      method: "POST",
      path: "/webhooks/elevenlabs/initiation",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ caller_id: caller(initiationNext), agent_id: "agent_bench", called_number: "+14155550000", call_sid: `CA${initiationNext++}` }),
    }),
    compare: ["readFloor", "hello"],
    targets: { readFloor: { rps: 0.9, p99: P99_MAX } },
  },
  {
    id: "recall",
    kind: "scenario",
    label: `(e) \`POST /tools/recall\` (issue 13), ${RECALL_USERS} users with ${RECALL_CALLS} calls of ${RECALL_TURNS} turns each, two-word queries, limit 5`,
    service: "postcallRecall",
    // Its own postcall instance, started only when the scenario runs: the seeded histories would
    // otherwise sit in the ingest and context scenarios' storage. Runs once the route exists.
    available: async () => {
      // USER_ID_TRUST = "claimed": the seeded calls are dated over the past weeks, and a token minted
      // today cannot vouch for a call that started before it (tokenCovers); recall verifies the fresh token.
      services.postcallRecall ??= await startWorker({
        name: "postcall-recall",
        entry: "src/index.ts",
        bindings: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, AGENT_API_KEY: AGENT_KEY, USER_ID_TRUST: "claimed" },
      });
      recallDb ??= await applyMigrations(services.postcallRecall.mf);
      return recallUnavailable(services.postcallRecall.url, AGENT_KEY);
    },
    setup: async () => {
      const seeded = await seedRecallUsers({ url: services.postcallRecall.url, secret: SECRET, apiKey: API_KEY, agentKey: AGENT_KEY, log });
      await drain(recallDb, "conversations", seeded.conversations, "seeding recall users");
      recallTokens = seeded.tokens;
    },
    next: () => recallRequest(recallNext++, recallTokens, AGENT_KEY),
    compare: ["readFloor", "hello"],
    targets: { readFloor: { rps: 0.7, p99: 2 } },
  },
  {
    id: "audio",
    kind: "scenario",
    label: "(d) `post_call_audio`",
    service: "postcall",
    optIn: true,
    available: async () =>
      "measured by its own script: `npm run bench:audio` streams a 150 MB chunked audio webhook through `wrangler dev` against a plain-multipart and a buffered baseline in the same run (throughput and workerd RSS growth; bench/AUDIO.md). A 32-connection load of 150 MB bodies is not a scenario ElevenLabs produces.",
  },
];

const selected = SCENARIOS.filter((s) => (ONLY ? ONLY.includes(s.id) || s.kind === "baseline" : !s.optIn || WITH.includes(s.id)));
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
for (const s of skipped) if (!s.s.optIn) log(`skipping ${s.s.id}: ${s.why}`);
for (const s of active) await s.setup?.();

async function runOnce(s, amount) {
  await s.prepare?.(amount);
  const service = services[s.service];
  const cpu0 = cpuSeconds(service.pid);
  const r = await load({ url: service.url, connections: CONNECTIONS, amount, next: s.next });
  const drainSeconds = (await s.after?.(r.ok)) ?? 0;
  // workerd CPU per request, including the background deliveries the requests caused.
  const cpuMs = ((cpuSeconds(service.pid) - cpu0) * 1000) / r.ok;
  if (r.failed > 0) throw new Error(`${s.id}: ${r.failed} of ${r.ok + r.failed} requests failed (non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts})`);
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

const BASELINES = [
  ["floor", "vs storage floor"],
  ["floorBytes", "vs floor with the same bytes"],
  ["readFloor", "vs read floor"],
  ["hello", "vs hello-world"],
];
const NAMES = { floor: "storage floor", floorBytes: "floorBytes", readFloor: "read floor", hello: "hello-world" };
const rows = [];
const ratios = [];
const targets = [];
const verdicts = [];
const check = (value, t, metric) => (metric === "rps" ? value >= t : value <= t);
for (const s of active) {
  const m = summary[s.id];
  const cells = [s.label, fmt(m.rps, 0), fmt(m.p50, 0), fmt(m.p99, 0), fmt(m.cpuMs, 3)];
  for (const [base] of BASELINES) {
    if (!(s.compare ?? []).includes(base) || !runs[base]) {
      cells.push("");
      continue;
    }
    const value = { rps: roundRatio(s.id, base, "rps"), p99: roundRatio(s.id, base, "p99"), cpu: roundRatio(s.id, base, "cpuMs") };
    const t = s.targets?.[base];
    const entry = { scenario: s.id, baseline: base, rps: value.rps, p99: value.p99, cpu: value.cpu, targets: null, met: null };
    let cell = `${ratio(value.rps)} rps, p99 ${ratio(value.p99)}, CPU ${ratio(value.cpu)}`;
    if (t) {
      entry.targets = {};
      const parts = [];
      for (const metric of ["rps", "p99"]) {
        if (t[metric] === undefined) continue;
        const met = check(value[metric], t[metric], metric);
        const op = metric === "rps" ? ">=" : "<=";
        entry.targets[metric] = { comparison: op, target: t[metric], met };
        targets.push({ id: `${s.id}.${metric}_vs_${base}`, scenario: s.id, baseline: base, metric: `${metric}_ratio`, comparison: op, target: t[metric], value: value[metric], met });
        parts.push(`${metric} ${ratio(value[metric])} (target ${op} ${t[metric]}): ${met ? "met" : "NOT met"}`);
      }
      entry.met = Object.values(entry.targets).every((x) => x.met);
      cell += entry.met ? " ✅" : " ❌";
      verdicts.push(`${s.id} vs ${NAMES[base]}: ${parts.join("; ")}`);
    }
    ratios.push(entry);
    cells.push(cell);
  }
  rows.push(cells);
}

const table = [
  `| Scenario | req/s | p50 ms | p99 ms | workerd CPU ms/req | ${BASELINES.map(([, h]) => h).join(" | ")} |`,
  `|---|---:|---:|---:|---:|${"---|".repeat(BASELINES.length)}`,
  ...rows.map((c) => `| ${c.join(" | ")} |`),
  ...skipped.map(({ s, why }) => `| ${s.label} | - | - | - | - | not run: ${why} |${" |".repeat(BASELINES.length - 1)}`),
].join("\n");

console.log(`\n${table}\n`);
for (const v of verdicts) console.log(`- ${v}`);

const verifier = process.env.BENCH_SKIP_VERIFIER ? null : await runVerifierBenchmark({ log });
let verifierNote = null;
if (verifier) {
  console.log(`\n${verifier.table}\n`);
  const v = verifier.ratios;
  verifierNote =
    `verifier (issue 6's comparison, for information): ours ÷ SDK constructEvent ${ratio(v.literal)}; ` +
    `but constructEvent also parses: like for like (verify + parse) ${ratio(v.likeForLike)}, verification alone (estimated) ${ratio(v.verifyOnly)}`;
  console.log(`- ${verifierNote}`);
}

const cost = process.env.BENCH_SKIP_COST ? null : await runCostModel({ log, secret: SECRET, minBytes: BODY_BYTES });
let costFigures = null;
if (cost) {
  console.log(`\n${cost.table}\n`);
  const m = cost.measured;
  const perEvent = (perThousand) => perThousand / 1000;
  costFigures = {
    transcriptions: m.calls,
    users: m.users,
    payloadBytes: m.payloadBytes,
    turns: m.turns,
    d1RowsWrittenPerTranscription: perEvent(m.d1RowsWritten),
    d1RowsReadPerTranscription: perEvent(m.d1RowsRead),
    d1BatchesPerTranscription: perEvent(m.d1Batches),
    d1StatementsPerTranscription: perEvent(m.d1Statements),
    d1UnmeteredCallsPerTranscription: perEvent(m.d1Unmetered),
    d1BytesPerConversation: m.d1BytesPerConversation,
    doRequestsPerTranscription: perEvent(m.doRequests),
    doRequestsByMethodPerTranscription: Object.fromEntries(Object.entries(m.doRequestsByMethod).map(([k, v]) => [k, perEvent(v)])),
    doSqlStatementsPerTranscription: perEvent(m.doSqlStatements),
    doRowsReadPerTranscription: perEvent(m.doRowsRead),
    doRowsWrittenPerTranscription: perEvent(m.doRowsWritten),
    doSetAlarmPerTranscription: perEvent(m.doSetAlarm),
    doSqlByClassPerTranscription: Object.fromEntries(
      Object.entries(m.doSqlByClass).map(([cls, c]) => [cls, { statements: perEvent(c.statements), rowsRead: perEvent(c.rowsRead), rowsWritten: perEvent(c.rowsWritten) }]),
    ),
    doHeavyUserPerTranscription: m.heavyUserPerEvent,
    doBytesTypicalUser: m.doBytesTypicalUser,
    doGrowth: m.doGrowth,
    r2ClassAPerTranscription: perEvent(m.r2ClassA),
    r2ClassBPerTranscription: perEvent(m.r2ClassB),
    r2OpsByNamePerTranscription: Object.fromEntries(Object.entries(m.r2OpsByName).map(([k, v]) => [k, perEvent(v)])),
    r2BytesWrittenPerTranscription: perEvent(m.r2BytesPut),
    r2BytesPerConversation: m.r2BytesPerConversation,
    contextRead: Object.fromEntries(Object.entries(m.context).map(([k, v]) => [k, perEvent(v)])),
    audioEvent: {
      events: m.audio.events,
      audioBytes: m.audio.audioBytes,
      doRequestsByMethod: Object.fromEntries(Object.entries(m.audio.doRequestsByMethod).map(([k, v]) => [k, perEvent(v)])),
      doSqlByClass: Object.fromEntries(
        Object.entries(m.audio.doSqlByClass).map(([cls, c]) => [cls, { statements: perEvent(c.statements), rowsRead: perEvent(c.rowsRead), rowsWritten: perEvent(c.rowsWritten) }]),
      ),
      doSetAlarm: perEvent(m.audio.doSetAlarm),
      d1RowsWritten: perEvent(m.audio.d1RowsWritten),
      r2ClassA: perEvent(m.audio.r2ClassA),
    },
    ledgerBytesWithOneAudioLink: m.audio.ledgerBytesWithOneAudioLink,
    emptyObjectBytes: m.audio.emptyObjectBytes,
  };
  for (const [key, limit, what, unit] of [
    ["d1RowsWrittenPerTranscription", COST_TARGETS.d1RowsWrittenPerTranscription, "D1 rows written per transcription", "rows"],
    ["d1BytesPerConversation", COST_TARGETS.d1BytesPerConversation, "D1 bytes per conversation, search index included", "bytes"],
    ["doRowsWrittenPerTranscription", COST_TARGETS.doRowsWrittenPerTranscription, "Durable Object SQL rows written per transcription, recall index included", "rows"],
    ["doSqlStatementsPerTranscription", COST_TARGETS.doSqlStatementsPerTranscription, "Durable Object SQL statements per transcription", "statements"],
  ]) {
    const value = costFigures[key];
    const met = value <= limit;
    targets.push({ id: `cost.${key}`, scenario: "cost", baseline: null, metric: key, comparison: "<=", target: limit, value, unit, met });
    verdicts.push(`cost: ${what}: ${fmt(value, key === "d1BytesPerConversation" ? 0 : 1)} ${unit} (target <= ${fmt(limit, 0)}): ${met ? "met" : "NOT met"}`);
    console.log(`- ${verdicts.at(-1)}`);
  }
}

for (const s of Object.values(services)) await s.dispose();

const metCount = targets.filter((t) => t.met).length;
console.log(`\nTargets (Core v2, Recall): ${metCount} of ${targets.length} met`);
for (const v of verdicts) console.log(`- ${v}`);

// ---- bench/results.json (every run, git-ignored) and bench/RESULTS.md (only with --write) ----------

const pkg = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
const git = (...a) => {
  try {
    return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
};
const cpu = cpus();
const versions = {
  wrangler: pkg("wrangler"),
  miniflare: pkg("miniflare"),
  workerd: pkg("workerd"),
  esbuild: pkg("esbuild"),
  autocannon: pkg("autocannon"),
  "@elevenlabs/elevenlabs-js": pkg("@elevenlabs/elevenlabs-js"),
};
const generatedAt = new Date().toISOString();
const results = {
  schema: "postcall-bench-results/1",
  generatedAt,
  command: { argv: process.argv.slice(2), wroteResultsMd: WRITE },
  git: { commit: git("rev-parse", "HEAD"), branch: git("rev-parse", "--abbrev-ref", "HEAD"), dirty: (git("status", "--porcelain", "--", "src", "bench") ?? "") !== "" },
  settings: { rounds: ROUNDS, roundSeconds: ROUND_SECONDS, connections: CONNECTIONS, only: ONLY ?? null, with: WITH, storageDir: services.hello.persistRoot.replace(/\/[^/]+$/, "") },
  machine: {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? null,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: process.platform,
    arch: arch(),
    node: process.version,
    loadAverageAtStart: loadAtStart,
  },
  versions,
  payload: {
    ingestBodyBytes: shape.size,
    turns: shape.turns,
    ingestUsers: INGEST_USERS,
    contextUsers: CONTEXT_USERS,
    postcallContextResponseBytes: contextBytes,
    readFloorResponseBytes: readFloorBytes,
    floorBytesContent: { conversationMetaBytes: sameBytes.meta.length, transcriptGzipBytes: sameBytes.transcriptBytes, ftsTextBytes: sameBytes.ftsText.length },
  },
  scenarios: Object.fromEntries(
    active.map((s) => [
      s.id,
      {
        kind: s.kind,
        label: s.label,
        rps: summary[s.id].rps,
        p50Ms: summary[s.id].p50,
        p99Ms: summary[s.id].p99,
        cpuMsPerReq: summary[s.id].cpuMs,
        rounds: runs[s.id].map((r) => ({ rps: r.rps, loadRps: r.loadRps, p50Ms: r.p50, p99Ms: r.p99, cpuMsPerReq: r.cpuMs, ok: r.ok, seconds: r.seconds, drainSeconds: r.drainSeconds })),
      },
    ]),
  ),
  skipped: skipped.map(({ s, why }) => ({ id: s.id, label: s.label, why })),
  ratios,
  targets,
  targetsMet: { met: metCount, total: targets.length },
  verifier: verifier ? { opsPerSecond: verifier.ops, ratios: verifier.ratios } : null,
  cost: costFigures,
};
// Keys this run does not write (e.g. `recallEval` from `npm run recall:eval`) are kept.
const previous = (() => {
  try {
    return JSON.parse(readFileSync(join(ROOT, "bench", "results.json"), "utf8"));
  } catch {
    return {};
  }
})();
writeFileSync(join(ROOT, "bench", "results.json"), `${JSON.stringify({ ...previous, ...results }, null, 2)}\n`);
log("wrote bench/results.json");

if (!WRITE) {
  log(`bench/RESULTS.md left as it is (npm run bench -- --write rewrites it); total ${fmt((Date.now() - started) / 1000, 0)} s`);
} else {
  const storageNote = services.hello.persistRoot.startsWith("/dev/shm")
    ? "tmpfs (/dev/shm): on a disk, every SQLite commit's fsync blocks workerd's only thread, a cost deployed Workers, whose storage is remote, never pay"
    : `${services.hello.persistRoot.replace(/\/[^/]+$/, "")} (BENCH_STORAGE_DIR or the OS temp directory)`;
  const raw = active
    .map((s) => `| ${s.id} | ${runs[s.id].map((r) => `${fmt(r.rps, 0)} / ${r.p50} / ${r.p99} / ${fmt(r.cpuMs, 3)}`).join(" | ")} |`)
    .join("\n");
  const md = `# Benchmark results

Written by \`npm run bench -- --write\` (bench/run.mjs) on ${generatedAt}${results.git.commit ? ` at ${results.git.commit.slice(0, 7)}${results.git.dirty ? " (with uncommitted changes in src/ or bench/)" : ""}` : ""}. Every \`npm run bench\` writes the same figures to \`bench/results.json\` (git-ignored).

- Machine: ${cpu.length} x ${cpu[0]?.model ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform}; Node ${process.version}.
- Versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(", ")}.
- Method: every Worker (postcall from \`src/index.ts\`, and the baselines in \`bench/workers/\`) is bundled with esbuild and run
  through **Miniflare's API** (not \`wrangler dev\`, whose inspector proxy adds about 1 ms of Node CPU per D1 query), each in its
  own workerd process on 127.0.0.1, with compatibility date, flags, vars and bindings read from wrangler.toml. Local D1, R2 and
  Durable Object storage live on ${storageNote}. Load: autocannon, ${CONNECTIONS} connections, no pipelining, ${ROUNDS} rounds; every
  round runs every scenario once, in alternating order, with about ${ROUND_SECONDS} s worth of requests each (calibrated by a
  warm-up run). Figures are medians over rounds; ratios are medians of per-round ratios against the baseline measured in the same
  round. Latencies are autocannon's (whole milliseconds, 2xx responses only; every run must have no errors).
- Baselines: **hello-world** (the bare runtime); the **storage floor** (bench/workers/floor.ts): exactly the v2 layout's storage
  round trips for a transcription (one DO RPC whose one SQLite transaction writes dedupe, profile, recent, outbox and blob rows
  and sets the alarm; the alarm's one R2 put and one D1 batch of four statements: conversation row, contentless FTS5 document,
  \`users\` upsert, \`audio\` lookup), with trivial contents; **floorBytes**, the same storing as many bytes as v2 would; the
  **read floor** (bench/workers/read-floor.ts): one DO RPC reading one ${fmt(READ_FLOOR_DOC_BYTES, 0)} B SQLite row per context request,
  the \`Authorization\` header carried but not checked (postcall's context answer here: ${contextBytes} B).
- Webhook scenarios (ingest and both storage floors) acknowledge an event after their Durable Object commits, and deliver it to R2 and
  D1 from an alarm afterwards. After each of their runs the harness waits until every acknowledged event is in D1, and their
  req/s is **acknowledged events / (load time + that wait)**: the rate they sustain with their background work included, so a
  short run cannot leave work behind and look faster. "workerd CPU ms/req" is the CPU time of that service's workerd process
  (user + system, /proc) over the run and the wait, divided by the requests: unlike req/s it hardly depends on other load.
  It includes the local emulation of D1, R2 and Durable Object storage, which deployed Workers do not run on their own CPU.
- Ingest bodies: ${shape.size} bytes (test/fixtures/transcription.json with ${shape.turns} turns), unique conversation ids over
  ${INGEST_USERS} users, signed with node:crypto before each run (never during it). Both storage floors receive the same bodies.
- Load average when the run started: ${loadAtStart.map((l) => l.toFixed(2)).join(", ")} (1, 5, 15 min) on ${cpu.length} CPUs.
  Absolute numbers drift with other load; compare the ratios and the CPU per request.

## Targets (Core v2, Recall): ${metCount} of ${targets.length} met

${verdicts.map((v) => `- ${v}`).join("\n")}

## Load scenarios

${table}

Per round (req/s / p50 ms / p99 ms / workerd CPU ms per request):

| Scenario | ${Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`).join(" | ")} |
|---|${"---|".repeat(ROUNDS)}
${raw}

${verifier ? `## Signature verification inside workerd\n\n${verifier.table}\n\n${verifier.notes}\n\n- ${verifierNote}\n` : ""}
${cost ? `## Storage operations per call (instrumented run)\n\n${cost.table}\n\n${cost.notes}\n` : ""}`;
  writeFileSync(join(ROOT, "bench", "RESULTS.md"), md);
  log(`wrote bench/RESULTS.md (total ${fmt((Date.now() - started) / 1000, 0)} s)`);
}
