#!/usr/bin/env node
// `npm run load-test -- [options]`: thousands of signed post_call_transcription events against a
// fresh `wrangler dev`, a share of them redelivered (some at the same moment), then a reconciliation
// of what was acknowledged against D1 rows and memory counters. Exits 1 on any mismatch.
//
//   --events N              deliveries to send, duplicates included (default 3000)
//   --users N               distinct users (default 200)
//   --duplicates F          share of deliveries that are redeliveries (default 0.15)
//   --concurrency N         requests in flight (default 32)
//   --port N                wrangler dev port (default 8794)
//   --d1-outage-seconds N   start with D1 unusable (its migrations not applied) and apply them N seconds
//                           into the run: a real outage, with no test seam in the Worker (default 0)
//   --drain-timeout N       seconds to wait for outboxes to reach D1 after the last send (default 900)
//   --shards N              D1 shards (default 1): DB plus DB_1 ... DB_{N-1}, named in D1_SHARDS, every
//                           migration applied to each (a generated copy of wrangler.toml declares them);
//                           the reconciliation reads every shard and checks no conversation is stored twice
//                           and no user's rows are split between shards
//   --keep                  keep the temporary --persist-to directory
//   --dev-log FILE          write wrangler dev's output to FILE (default: discarded)
//
// Everything runs locally: wrangler dev on 127.0.0.1 with a temporary state directory, the Worker's
// real D1, R2 and Durable Objects, and the same retry rule as ElevenLabs (retry on 5xx/408/429).
// Every event is integrated the way the README says: the app reads the user's context when the session
// starts and passes every returned dynamic variable (postcall_user_token included) into the session,
// so each event carries them, and the default USER_ID_TRUST="verified" believes its user id.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EVENTS = opt("events", 3000);
const USERS = opt("users", 200);
const DUP_SHARE = opt("duplicates", 0.15);
const CONCURRENCY = opt("concurrency", 32);
const PORT = opt("port", 8794);
const OUTAGE_S = opt("d1-outage-seconds", 0);
const DRAIN_TIMEOUT_S = opt("drain-timeout", 900);
const SHARDS = opt("shards", 1);
if (!Number.isInteger(SHARDS) || SHARDS < 1 || SHARDS > 8) throw new Error("--shards must be 1 to 8");
const KEEP = args.includes("--keep");
const DEV_LOG = args.includes("--dev-log") ? args[args.indexOf("--dev-log") + 1] : null;

const SECRET = "whsec_load_test";
const API_KEY = "load-test-api-key";
const BASE = `http://127.0.0.1:${PORT}`;
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const WRANGLER = "node_modules/wrangler/bin/wrangler.js";
const persist = mkdtempSync(join(tmpdir(), "postcall-load-"));
const fixture = JSON.parse(readFileSync("test/fixtures/transcription.json", "utf8"));
const TURNS_PER_EVENT = fixture.data.transcript.length;
const SHARD_NAMES = Array.from({ length: SHARDS }, (_, i) => (i === 0 ? "DB" : `DB_${i}`));

// More than one shard: a copy of wrangler.toml beside it (its relative paths keep working) that declares
// the extra D1 bindings and names them all in D1_SHARDS; removed with the state directory.
const CONFIG = SHARDS === 1 ? "wrangler.toml" : `.wrangler-load-test-${process.pid}.toml`;
if (SHARDS > 1) {
  const base = readFileSync("wrangler.toml", "utf8");
  if (!/^D1_SHARDS = "DB"$/m.test(base)) throw new Error('--shards expects wrangler.toml to set D1_SHARDS = "DB"');
  const extra = SHARD_NAMES.slice(1)
    .map((name, i) => `\n[[d1_databases]]\nbinding = "${name}"\ndatabase_name = "postcall-load-${i + 1}"\ndatabase_id = "00000000-0000-0000-0000-00000000000${i + 1}"\nmigrations_dir = "migrations"\n`)
    .join("");
  // Appended at the end: TOML lets an array of tables gain elements anywhere after its first.
  writeFileSync(CONFIG, base.replace(/^D1_SHARDS = "DB"$/m, `D1_SHARDS = "${SHARD_NAMES.join(",")}"`) + extra);
}

function wrangler(...a) {
  const r = spawnSync(process.execPath, [WRANGLER, ...a], { env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`wrangler ${a.join(" ")} failed:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}
// Applied mid-run for the outage: the outboxes are retrying against the same local SQLite file, so a
// migration can meet "database is locked" (SQLITE_BUSY). wrangler records each migration it applied,
// so trying again continues where it stopped.
function applyMigrations() {
  for (const shard of SHARD_NAMES) {
    for (let attempt = 1; ; attempt++) {
      try {
        wrangler("d1", "migrations", "apply", shard, "--local", "--persist-to", persist, "--config", CONFIG);
        break;
      } catch (err) {
        if (attempt >= 10 || !/SQLITE_BUSY|database is locked/.test(String(err))) throw err;
        console.log(`migrations (${shard}): database busy, retrying (${attempt})`);
        spawnSync("sleep", ["0.5"]);
      }
    }
  }
}

/** The rows `sql` answers in one shard. */
function d1In(shard, sql) {
  const out = wrangler("d1", "execute", shard, "--local", "--persist-to", persist, "--config", CONFIG, "--json", "--command", sql);
  return JSON.parse(out.slice(out.indexOf("[")))[0].results;
}
/** The rows `sql` answers in every shard, each with the index of its shard as `shard`. */
const d1 = (sql) => SHARD_NAMES.flatMap((name, shard) => d1In(name, sql).map((r) => ({ ...r, shard })));

// ---- wrangler dev ------------------------------------------------------------------------------
let dev;
function startDev() {
  dev = spawn(
    process.execPath,
    [
      WRANGLER, "dev", "--config", CONFIG, "--port", String(PORT), "--ip", "127.0.0.1", "--inspector-port", String(PORT + 1000),
      "--persist-to", persist, "--log-level", DEV_LOG ? "log" : "error", "--show-interactive-dev-session=false",
      "--var", `ELEVENLABS_WEBHOOK_SECRET:${SECRET}`, "--var", `API_KEY:${API_KEY}`,
    ],
    { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const log = DEV_LOG ? createWriteStream(DEV_LOG) : null;
  dev.stdout.on("data", (d) => log?.write(d));
  let errText = "";
  dev.stderr.on("data", (d) => {
    log?.write(d);
    errText = (errText + d).slice(-4000);
  });
  dev.on("exit", (code) => {
    if (!stopping) {
      console.error(`wrangler dev exited early (${code}):\n${errText}`);
      process.exit(2);
    }
  });
}
let stopping = false;
function stopDev() {
  stopping = true;
  // The dev server runs in its own process group (workerd is its child): end that group, by id.
  if (dev?.pid) {
    try {
      process.kill(-dev.pid, "SIGTERM");
    } catch {}
  }
}
function cleanup() {
  stopDev();
  if (!KEEP) rmSync(persist, { recursive: true, force: true });
  if (CONFIG !== "wrangler.toml") rmSync(CONFIG, { force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

async function waitHealthy() {
  for (let i = 0; i < 120; i++) {
    try {
      if ((await fetch(`${BASE}/health`)).ok) return;
    } catch {}
    await sleep(500);
  }
  throw new Error("wrangler dev did not become healthy in 60 s");
}

// ---- events ------------------------------------------------------------------------------------
const runId = randomUUID().slice(0, 8);
const userIds = Array.from({ length: USERS }, (_, i) => `load-${runId}-user-${i}`);

/**
 * The README's integration, once per user before the run (a session start): GET the context, keep
 * every dynamic variable it returned. Read while D1 is still down in an outage run: the context
 * comes from the user's Durable Object alone.
 */
async function sessionVariables() {
  const vars = new Map();
  await pool(userIds, 16, async (userId) => {
    const res = await getWithRetry(`${BASE}/v1/users/${encodeURIComponent(userId)}/context`, { Authorization: `Bearer ${API_KEY}` });
    if (!res.ok) throw new Error(`context for ${userId}: HTTP ${res.status}`);
    vars.set(userId, (await res.json()).dynamic_variables);
  });
  return vars;
}

function makeEvent(i, session) {
  const e = structuredClone(fixture);
  const conversationId = `load-${runId}-conv-${i}`;
  const userId = userIds[i % USERS];
  e.data.conversation_id = conversationId;
  const client = e.data.conversation_initiation_client_data;
  client.dynamic_variables = { ...client.dynamic_variables, ...session.get(userId), user_id: userId, system__conversation_id: conversationId };
  e.data.analysis.call_summary_title = `Load test call ${i}`;
  // Sessions that started just now, after their context was read (the token covers them).
  e.data.metadata.start_time_unix_secs = Math.floor(Date.now() / 1000) - (i % 240);
  const text = JSON.stringify(e);
  const t = Math.floor(Date.now() / 1000);
  const v0 = createHmac("sha256", SECRET).update(`${t}.`).update(text).digest("hex");
  // A redelivery reuses these exact bytes and this header, as ElevenLabs' retries do.
  return { conversationId, userId, text, header: `t=${t},v0=${v0}` };
}

/** Distinct events, then redeliveries: some right next to their original (in flight together), some later. */
function plan(session) {
  const distinct = Math.max(1, Math.round(EVENTS * (1 - DUP_SHARE)));
  const events = Array.from({ length: distinct }, (_, i) => makeEvent(i, session));
  const sends = events.map((e) => ({ event: e }));
  for (let d = 0; d < EVENTS - distinct; d++) {
    const event = events[Math.floor(Math.random() * distinct)];
    const first = sends.findIndex((s) => s.event === event);
    // Half right behind the original (in flight at the same time), half somewhere later.
    const at = d % 2 === 0 ? first + 1 : first + 1 + Math.floor(Math.random() * (sends.length - first));
    sends.splice(at, 0, { event, redelivery: true });
  }
  return { events, sends };
}

// ---- sending -----------------------------------------------------------------------------------
const latencies = [];
const serverErrors = [];
const statusCounts = new Map();
let retries = 0;

async function deliver(send) {
  // ElevenLabs' rule: retry after 5xx, 408 or 429 (up to 5 attempts); anything else is final.
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    let status = 0;
    let body = null;
    try {
      const res = await fetch(`${BASE}/webhooks/elevenlabs`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "ElevenLabs-Signature": send.event.header },
        body: send.event.text,
      });
      status = res.status;
      body = await res.json().catch(() => null);
      if (status >= 500 && serverErrors.length < 5) serverErrors.push(`${status} ${JSON.stringify(body)}`);
    } catch {
      status = 0;
    }
    latencies.push(performance.now() - started);
    statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
    const retryable = status === 0 || status >= 500 || status === 408 || status === 429;
    if (!retryable || attempt === 5) return { status, outcome: body?.status ?? null, userId: body?.user_id ?? null, body, ackAt: Date.now() };
    retries++;
    await sleep(250 * 2 ** attempt);
  }
}

/** A GET retried on network errors: the server may close an idle keep-alive socket as it is reused. */
async function getWithRetry(url, headers) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, { headers });
    } catch (err) {
      if (attempt === 5) throw err;
      await sleep(200 * attempt);
    }
  }
}

async function pool(items, n, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i], i);
      }
    }),
  );
  return results;
}

async function healthBaseline(n) {
  const started = performance.now();
  await pool(Array.from({ length: n }), CONCURRENCY, async () => (await fetch(`${BASE}/health`)).arrayBuffer());
  return n / ((performance.now() - started) / 1000);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
};

// ---- run ---------------------------------------------------------------------------------------
const mismatches = [];
try {
  if (OUTAGE_S === 0) applyMigrations();
  startDev();
  await waitHealthy();
  const baseline = await healthBaseline(1000);

  const { events, sends } = plan(await sessionVariables());
  console.log(
    `postcall load test: ${sends.length} deliveries (${events.length} distinct, ${sends.length - events.length} redeliveries) ` +
      `for ${USERS} users, concurrency ${CONCURRENCY}, ${SHARDS} D1 shard${SHARDS === 1 ? "" : "s"}, D1 outage ${OUTAGE_S} s, state in ${persist}`,
  );

  const runStarted = Date.now();
  let d1BackAt = OUTAGE_S === 0 ? runStarted : null;
  const outage =
    OUTAGE_S > 0
      ? sleep(OUTAGE_S * 1000).then(() => {
          applyMigrations();
          d1BackAt = Date.now();
          console.log(`D1 migrations applied ${((d1BackAt - runStarted) / 1000).toFixed(1)} s into the run: D1 is back`);
        })
      : Promise.resolve();

  const results = await pool(sends, CONCURRENCY, (s) => deliver(s));
  const sendSeconds = (Date.now() - runStarted) / 1000;
  await outage;

  // What was acknowledged: a 200 saying stored or duplicate.
  const ackedConversations = new Map(); // conversationId -> userId
  let unverified = 0;
  let stored = 0;
  let duplicate = 0;
  let ackedDuringOutage = 0;
  const unexpected = [];
  results.forEach((r, i) => {
    if (r.status !== 200) return;
    if (r.outcome === "stored") stored++;
    else if (r.outcome === "duplicate") duplicate++;
    else {
      if (unexpected.length < 5) unexpected.push(`${sends[i].event.conversationId}: ${JSON.stringify(r.body)}`);
      return;
    }
    // Every event carries its session's token: each must be believed for its own user.
    if (r.userId !== sends[i].event.userId) unverified++;
    ackedConversations.set(sends[i].event.conversationId, sends[i].event.userId);
    if (d1BackAt === null || r.ackAt < d1BackAt) ackedDuringOutage++;
  });
  const expectedPerUser = new Map(userIds.map((u) => [u, 0]));
  for (const userId of ackedConversations.values()) expectedPerUser.set(userId, expectedPerUser.get(userId) + 1);
  if (unverified > 0) mismatches.push(`${unverified} acknowledged events were not attributed to their session's user (token refused?)`);
  if (stored !== ackedConversations.size) mismatches.push(`"stored" answers (${stored}) != distinct acknowledged events (${ackedConversations.size})`);

  // Wait for the outboxes (Durable Object alarms with backoff) to carry everything into D1.
  const drainStarted = Date.now();
  let d1Rows = new Map();
  let userShards = new Map(); // userId -> the shards holding any of its rows (one, unless split)
  let d1Total = 0;
  for (;;) {
    const rows = d1(`SELECT user_id, count(*) AS n FROM conversations WHERE conversation_id LIKE 'load-${runId}-%' GROUP BY user_id`);
    d1Rows = new Map();
    for (const r of rows) d1Rows.set(r.user_id, (d1Rows.get(r.user_id) ?? 0) + r.n);
    userShards = new Map();
    for (const r of rows) userShards.set(r.user_id, [...(userShards.get(r.user_id) ?? []), r.shard]);
    d1Total = rows.reduce((n, r) => n + r.n, 0);
    if (d1Total >= ackedConversations.size) break;
    if ((Date.now() - drainStarted) / 1000 > DRAIN_TIMEOUT_S) break;
    await sleep(3000);
  }
  const drainSeconds = (Date.now() - drainStarted) / 1000;

  const ids = [...ackedConversations.keys()];
  const present = new Set();
  let storedTwice = 0;
  for (let i = 0; i < ids.length; i += 400) {
    const chunk = ids.slice(i, i + 400).map((id) => `'${id}'`).join(",");
    for (const r of d1(`SELECT conversation_id FROM conversations WHERE conversation_id IN (${chunk})`)) {
      if (present.has(r.conversation_id)) storedTwice++;
      present.add(r.conversation_id);
    }
  }
  const split = [...userShards.entries()].filter(([, shards]) => shards.length > 1);
  const usedShards = new Set([...userShards.values()].flat());
  if (storedTwice > 0) mismatches.push(`${storedTwice} conversations stored in more than one shard`);
  if (split.length > 0) mismatches.push(`${split.length} users' rows split between shards (e.g. ${split[0][0]}: ${split[0][1].join(", ")})`);
  if (SHARDS > 1 && USERS >= 20 * SHARDS && usedShards.size < SHARDS) mismatches.push(`only ${usedShards.size} of ${SHARDS} shards hold any user's rows`);
  const missing = ids.filter((id) => !present.has(id));
  const extra = d1Total - present.size;
  // A conversation is one D1 row (migration 0004): its turns are counted by the row's turn_count.
  const turns = d1(`SELECT coalesce(sum(turn_count), 0) AS n FROM conversations WHERE conversation_id LIKE 'load-${runId}-%'`).reduce((n, r) => n + r.n, 0);

  let usersD1Ok = 0;
  let usersMemoryOk = 0;
  const memoryMismatches = [];
  await pool(userIds, 16, async (userId) => {
    const expected = expectedPerUser.get(userId);
    if ((d1Rows.get(userId) ?? 0) === expected) usersD1Ok++;
    else mismatches.push(`D1 rows for ${userId}: ${d1Rows.get(userId) ?? 0}, expected ${expected}`);
    const res = await getWithRetry(`${BASE}/v1/users/${encodeURIComponent(userId)}/context`, { Authorization: `Bearer ${API_KEY}` });
    const count = res.ok ? (await res.json()).dynamic_variables.call_count : `HTTP ${res.status}`;
    if (count === expected) usersMemoryOk++;
    else memoryMismatches.push(`call_count for ${userId}: ${count}, expected ${expected}`);
  });
  mismatches.push(...memoryMismatches);
  if (missing.length > 0) mismatches.push(`${missing.length} acknowledged conversations missing from D1 (e.g. ${missing.slice(0, 3).join(", ")})`);
  if (turns !== present.size * TURNS_PER_EVENT) mismatches.push(`turns: ${turns}, expected ${present.size * TURNS_PER_EVENT}`);

  const statuses = [...statusCounts.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(" ");
  const rows = [
    ["deliveries sent (incl. redeliveries)", sends.length],
    ["HTTP answers by status", statuses],
    ["client retries (5xx/408/429/network)", retries],
    ["acknowledged: stored", stored],
    ["acknowledged: duplicate", duplicate],
    ["acknowledged for another user than the session's", unverified],
    ["acknowledged while D1 was down", OUTAGE_S > 0 ? ackedDuringOutage : "n/a"],
    ["distinct acknowledged conversations", ackedConversations.size],
    ["D1 conversations (this run)", d1Total],
    ...(SHARDS > 1
      ? [
          ["D1 conversations by shard", SHARD_NAMES.map((name) => `${name}:${d1In(name, `SELECT count(*) AS n FROM conversations WHERE conversation_id LIKE 'load-${runId}-%'`)[0].n}`).join(" ")],
          ["stored in more than one shard", storedTwice],
          ["users whose rows are split between shards", split.length],
        ]
      : []),
    ["acknowledged but missing from D1", missing.length],
    ["in D1 but never acknowledged", extra],
    [`D1 turns (expected ${TURNS_PER_EVENT} per conversation)`, turns],
    ["users whose D1 rows match", `${usersD1Ok}/${USERS}`],
    ["users whose call_count matches", `${usersMemoryOk}/${USERS}`],
    ["send phase", `${sendSeconds.toFixed(1)} s, ${(sends.length / sendSeconds).toFixed(0)} req/s`],
    ["baseline GET /health, same server", `${baseline.toFixed(0)} req/s`],
    ["webhook latency p50 / p95 / p99", `${pct(latencies, 50).toFixed(1)} / ${pct(latencies, 95).toFixed(1)} / ${pct(latencies, 99).toFixed(1)} ms`],
    ["drain wait after the last send", `${drainSeconds.toFixed(1)} s`],
  ];
  if (serverErrors.length > 0) rows.push(["first 5xx answers (retried)", serverErrors.join("; ")]);
  if (unexpected.length > 0) rows.push(["200 answers neither stored nor duplicate", unexpected.join("; ")]);
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log("\n" + rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n"));
  if (mismatches.length > 0) {
    console.log(`\nMISMATCH (${mismatches.length}):\n  ${mismatches.slice(0, 20).join("\n  ")}`);
  } else {
    console.log("\nOK: every acknowledged event is in D1 exactly once and counted exactly once in memory.");
  }
} catch (err) {
  console.error(err);
  mismatches.push(String(err));
} finally {
  cleanup();
}
process.exit(mismatches.length > 0 ? 1 : 0);
