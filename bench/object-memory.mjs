#!/usr/bin/env node
// `node bench/object-memory.mjs`: how much memory one user's Durable Object uses, and why long local
// runs with thousands of objects ended in SQLITE_NOMEM (docs/cost-and-capacity.md, "Memory per object").
//
// What it measures, in one Miniflare workerd process (objects kept alive with unsafePreventEviction,
// so that what is measured is what live objects hold):
// - SQLite heap: workerd caps the SQLite heap of the WHOLE PROCESS (every object's connection, and
//   D1's and R2's simulators) at 512 MiB (sqlite3_hard_heap_limit64; the autogate
//   `increase-sqlite-hard-heap-limit`, off unless WORKERD_ALL_AUTOGATES=1, raises it to 8 GiB). An
//   allocation past it fails with SQLITE_NOMEM. The probe measures the headroom left under that cap
//   with one D1 query holding N group_concat() results of ~1 MB each (binary search on N; D1's
//   simulator shares the process's SQLite heap), so "used" = headroom on an idle process minus
//   headroom now, to about 1 MB.
// - JS heap of postcall's isolate (the Worker and its objects), via the inspector (used size, no GC).
// - workerd RSS (which workerd does not cap locally: TOOLCHAIN.md), and the object's SQLite file
//   plus WAL on disk.
//
// Parts (OM_PART, default "heavy,many"):
// - heavy: ONE user, OM_CONVERSATIONS (500) bench payloads (20 KB, 53 turns, distinct text), then
//   OM_BIG (40) worst-case calls (200 turns x 2,000 chars: the most one call puts in the recall index,
//   400 KB) past LIMITS.recallBytesPerMemory (8 MB), then OM_QUERIES (50) recall queries.
// - many: OM_USERS (300) users x OM_PER_USER (5) bench payloads, with and without the recall index
//   (a copy of src/ whose indexConversation returns at once), SQLite heap per live object; with
//   OM_BASE_REF=<git ref>, also that commit's src/ (e.g. 1a60267, the tree before the recall index).
// - reproduce: OM_REPRO_USERS (1600) users x OM_REPRO_PER_USER (3) bench payloads, every object kept
//   alive in one process, past the 512 MiB cap; counts SQLITE_NOMEM in workerd's output and the
//   requests that failed (about a minute; not in the default run). With WORKERD_ALL_AUTOGATES=1
//   (cap 8 GiB) the same run has none.
// Every part runs at nice 10 if you start it so (`nice -n 10 node bench/object-memory.mjs`).
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

if (typeof globalThis.WebSocket === "undefined") {
  // Node 20 needs the flag for the inspector client below.
  const r = spawnSync(process.execPath, ["--experimental-websocket", ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

const { ROOT, applyMigrations, startWorker } = await import("./lib/workers.mjs");
const { paddedTranscription, signatureHeader, signedTranscriptions, userToken } = await import("./lib/payloads.mjs");
const { distinctText } = await import("./lib/text.mjs");
const { recall } = await import("./lib/recall.mjs");
const { load } = await import("./lib/load.mjs");

process.env.WRANGLER_SEND_METRICS = "false";
const SECRET = "whsec_bench_secret";
const API_KEY = "bench-api-key";
const PARTS = (process.env.OM_PART ?? "heavy,many").split(",");
const env = (name, dflt) => Number(process.env[name] ?? dflt);
const MiB = 1024 * 1024;
const mb = (bytes) => Math.round((bytes / MiB) * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** src/ with the recall index switched off (indexConversation returns before writing), for attribution. */
function noIndexEntry() {
  const dir = join(ROOT, "bench", ".build", "object-memory-noindex");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, "src"), join(dir, "src"), { recursive: true });
  const files = readdirSync(join(dir, "src"), { recursive: true }).filter((f) => f.endsWith(".ts"));
  const re = /(export function indexConversation\([^)]*\)[^{]*\{)/;
  const file = files.map((f) => join(dir, "src", f)).find((f) => re.test(readFileSync(f, "utf8")));
  if (!file) throw new Error("no `export function indexConversation(` under src/: update bench/object-memory.mjs");
  writeFileSync(file, readFileSync(file, "utf8").replace(re, "$1\n  return 0;"));
  return join("bench", ".build", "object-memory-noindex", "src", "index.ts");
}

/** src/ as it was at a git ref (as bench/ab.mjs builds its other side). */
function refEntry(ref) {
  const sha = spawnSync("git", ["rev-parse", "--short", ref], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
  if (!sha) throw new Error(`unknown git ref ${ref}`);
  const dir = join(ROOT, "bench", ".build", `object-memory-${sha}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  spawnSync("sh", ["-c", `git archive ${sha} src | tar -x -C ${JSON.stringify(dir)}`], { cwd: ROOT, stdio: "inherit" });
  return [`src at ${sha}`, join("bench", ".build", `object-memory-${sha}`, "src", "index.ts")];
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** One postcall workerd with its objects kept alive, its output scanned for SQLITE_NOMEM. */
async function start(name, { entry = "src/index.ts", preventEviction = true, inspector = false, probe: probing = true } = {}) {
  const counts = { nomem: 0, errorLines: 0, firstNomem: null, firstError: null, probe: probing };
  const inspectorPort = inspector ? await freePort() : undefined;
  const w = await startWorker({
    name,
    entry,
    bindings: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY },
    inspectorPort,
    ...(preventEviction ? { durableObjects: { USER_MEMORY: { className: "UserMemory", useSQLite: true, unsafePreventEviction: true } } } : {}),
    miniflareOptions: {
      handleRuntimeStdio(stdout, stderr) {
        for (const s of [stdout, stderr]) {
          s.on("data", (chunk) => {
            const text = chunk.toString();
            const n = (text.match(/SQLITE_NOMEM/g) ?? []).length;
            counts.nomem += n;
            if (n > 0 && counts.firstNomem === null) counts.firstNomem = text.split("\n").find((l) => l.includes("SQLITE_NOMEM")).slice(0, 300);
            if (/error/i.test(text)) {
              counts.errorLines++;
              counts.firstError ??= text.split("\n").find((l) => /error/i.test(l)).slice(0, 300);
            }
          });
        }
      },
    },
  });
  const db = await applyMigrations(w.mf);
  const probe = headroomProbe(db);
  console.error(`[${name}] probing idle SQLite headroom`);
  const base = probing ? await probe.units() : NaN; // idle: the whole cap, less what the simulators hold
  const unitBytes = (512 * MiB) / base; // calibrated against workerd's 512 MiB cap
  console.error(`[${name}] idle headroom ${base} units`);
  const isolate = inspector ? await inspectorClient(inspectorPort, name) : null;
  return {
    ...w,
    db,
    counts,
    /** SQLite heap in use in the process above the idle start, in bytes (about 1 MB resolution). */
    sqliteUsed: async () => (base - (await probe.units())) * unitBytes,
    rss: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${w.pid}/status`, "utf8"))[1]) * 1024,
    jsHeap: isolate ? () => isolate.heapUsed() : async () => NaN,
    close: async () => {
      isolate?.close();
      await w.dispose();
    },
  };
}

/**
 * Headroom under the process's SQLite heap cap, in units of one group_concat() of 1,000 x ~1 KB
 * (about 1.1 MB each): the largest N for which one query can hold N of them at once.
 */
function headroomProbe(db, max = 700) {
  // One statement text whatever N is (?1 = N; group_concat skips the NULLs past it), so the probe adds a
  // single prepared statement to the simulator's statement cache instead of one per N tried.
  const aggs = Array.from({ length: max }, (_, j) => `length(group_concat(CASE WHEN ?1 > ${j} THEN x || '${j}' END, ''))`);
  const cols = [];
  for (let g = 0; g < aggs.length; g += 50) cols.push(`coalesce(${aggs.slice(g, g + 50).join(" + ")}, 0)`); // expression depth <= 100
  const sql = `WITH RECURSIVE r(i, x) AS (SELECT 1, hex(randomblob(500)) UNION ALL SELECT i + 1, hex(randomblob(500)) FROM r WHERE i < 1000) SELECT ${cols.join(", ")} FROM r`;
  const fits = async (n) => {
    try {
      await db.prepare(sql).bind(n).raw();
      return true;
    } catch (err) {
      if (/NOMEM|out of memory/i.test(String(err?.message))) return false;
      throw err;
    }
  };
  return {
    async units() {
      await fits(0); // the statement itself, prepared and cached before the search
      let lo = 0;
      let hi = max;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (await fits(mid)) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    },
  };
}

/** Runtime.getHeapUsage of postcall's isolate (the Worker and its objects share it locally). */
async function inspectorClient(port, name) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = targets.find((t) => t.title?.includes(name)) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) pending.get(msg.id)(msg.result);
  };
  const send = (method, params = {}) => new Promise((resolve) => (pending.set(++id, resolve), ws.send(JSON.stringify({ id, method, params }))));
  return {
    // workerd's inspector never answers HeapProfiler.collectGarbage: this is the used size as it is
    // (garbage included, so an upper bound of what the isolate must keep).
    heapUsed: async () => (await send("Runtime.getHeapUsage")).usedSize,
    close: () => ws.close(),
  };
}

/** Bytes of the user objects' SQLite files (database + WAL) under the worker's storage. */
function objectFileBytes(w) {
  let total = 0;
  const dir = join(w.persistRoot, "do");
  for (const f of readdirSync(dir, { recursive: true })) {
    if (!/[0-9a-f]{64}\.sqlite(-wal)?$/.test(f)) continue;
    total += statSync(join(dir, f)).size;
  }
  return total;
}

/** Waits until D1 holds `expected` conversations; past the cap even this count can fail with SQLITE_NOMEM. */
async function waitDelivered(w, expected, timeoutMs = 300_000) {
  const t0 = Date.now();
  let n = null;
  for (;;) {
    try {
      n = (await w.db.prepare("SELECT count(*) AS n FROM conversations").first()).n;
    } catch (err) {
      if (!/NOMEM/.test(String(err?.message))) throw err;
      w.counts.nomemInBench = (w.counts.nomemInBench ?? 0) + 1;
    }
    if ((n !== null && n >= expected) || Date.now() - t0 > timeoutMs) return n;
    await sleep(250);
  }
}

async function post(w, body, signature) {
  const res = await fetch(`${w.url}/webhooks/elevenlabs`, { method: "POST", headers: { "content-type": "application/json", "elevenlabs-signature": signature }, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`webhook ${res.status}: ${text.slice(0, 300)}`);
}

const report = { machine: { node: process.version }, parts: {} };

// ---- heavy: one user ------------------------------------------------------------------------------
if (PARTS.includes("heavy")) {
  const CONVERSATIONS = env("OM_CONVERSATIONS", 500);
  const BIG = env("OM_BIG", 40);
  const QUERIES = env("OM_QUERIES", 50);
  const w = await start("om-heavy", { inspector: true });
  const pool = signedTranscriptions({ secret: SECRET, count: CONVERSATIONS, users: 1, minBytes: 20_000, prefix: "heavy", distinct: true });
  const userId = pool.userId(0);
  const rows = [];
  const idle = { rss: w.rss(), js: await w.jsHeap() };
  const snapshot = async (label, delivered) => {
    await waitDelivered(w, delivered);
    const memory = await (await fetch(`${w.url}/v1/users/${encodeURIComponent(userId)}/memory`, { headers: { authorization: `Bearer ${API_KEY}` } })).json();
    const row = {
      label,
      conversations: delivered,
      indexedConversations: memory.recall_index?.conversations ?? 0,
      indexTextMB: mb(memory.recall_index?.text_bytes ?? 0),
      objectFilesMB: mb(objectFileBytes(w)),
      sqliteHeapMB: mb(await w.sqliteUsed()),
      jsHeapMB: mb(await w.jsHeap()),
      rssAboveIdleMB: mb(w.rss() - idle.rss),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  };
  const checkpoints = new Set([1, 10, 50, 100, 250, 500, CONVERSATIONS].filter((n) => n <= CONVERSATIONS));
  for (let i = 0; i < CONVERSATIONS; i++) {
    const { body, signature } = pool.request(i);
    await post(w, body, signature);
    if (checkpoints.has(i + 1)) await snapshot("bench payload (53 turns)", i + 1);
  }
  // Worst case per call: 200 turns of 2,000 characters, all indexed (LIMITS.recallTurnsPerConversation, recallDocChars).
  const startedAt = Math.floor(Date.now() / 1000) - 1800;
  const token = userToken(SECRET, userId, startedAt - 1800);
  for (let b = 0; b < BIG; b++) {
    const event = paddedTranscription(20_000, { conversationId: `conv_big_${String(b).padStart(6, "0")}`, userId, startedAt: startedAt + b, token });
    const template = event.data.transcript;
    event.data.transcript = Array.from({ length: 200 }, (_, t) => ({ ...template[t % template.length], message: distinctText(1e6 + b * 1000 + t, 2000), time_in_call_secs: t * 4 }));
    const body = Buffer.from(JSON.stringify(event));
    await post(w, body, signatureHeader(SECRET, body));
    if ((b + 1) % 10 === 0 || b + 1 === BIG) await snapshot(`worst-case call (200 x 2,000 chars, ${mb(body.length)} MB body)`, CONVERSATIONS + b + 1);
  }
  const words = ["refund delivery", "password reset", "tracking package", "battery charger", "insurance claim", "appointment monday", "cracked screen", "billing plan"];
  const ms = [];
  let hits = 0;
  for (let q = 0; q < QUERIES; q++) {
    const r = await recall(w.url, API_KEY, { query: words[q % words.length], token, conversationId: `conv_live_${q}`, limit: 5 });
    if (r.status !== 200) throw new Error(`recall ${r.status}: ${r.text.slice(0, 200)}`);
    hits += r.body?.results?.length ?? 0;
    ms.push(r.ms);
  }
  await snapshot(`after ${QUERIES} recall queries (${hits} results, median ${Math.round(ms.sort((a, b) => a - b)[ms.length >> 1])} ms)`, CONVERSATIONS + BIG);
  report.parts.heavy = { userId, rows, nomem: w.counts.nomem };
  await w.close();
}

// ---- many: SQLite heap per live object, with and without the recall index ---------------------------------
async function ingestMany(w, users, perUser, prefix) {
  const pool = signedTranscriptions({ secret: SECRET, count: users * perUser, users, minBytes: 20_000, prefix });
  let i = 0;
  const r = await load({
    url: w.url,
    connections: 32,
    amount: pool.count,
    next: () => {
      const { body, signature } = pool.request(i++);
      return { method: "POST", path: "/webhooks/elevenlabs", headers: { "content-type": "application/json", "elevenlabs-signature": signature }, body };
    },
  });
  const delivered = await waitDelivered(w, r.ok, w.counts.probe === false ? 30_000 : 120_000);
  return { ok: r.ok, failed: r.failed, rps: Math.round(r.rps), delivered };
}

if (PARTS.includes("many")) {
  const USERS = env("OM_USERS", 300);
  const PER = env("OM_PER_USER", 5);
  const out = {};
  const variants = [["recall index", "src/index.ts"], ["no recall index", noIndexEntry()]];
  if (process.env.OM_BASE_REF) variants.push(refEntry(process.env.OM_BASE_REF));
  for (const [k, [variant, entry]] of variants.entries()) {
    const w = await start(`om-many-${k}`, { entry });
    const rss0 = w.rss();
    const run = await ingestMany(w, USERS, PER, "many");
    const used = await w.sqliteUsed();
    out[variant] = {
      ...run,
      sqliteHeapMB: mb(used),
      sqliteHeapPerObjectKB: Math.round(used / USERS / 1024),
      rssPerObjectKB: Math.round((w.rss() - rss0) / USERS / 1024),
      objectFilesPerObjectKB: Math.round(objectFileBytes(w) / USERS / 1024),
      liveObjectsTo512MiB: Math.round((512 * MiB) / (used / USERS)),
      nomem: w.counts.nomem,
      workerdErrorLines: w.counts.errorLines,
      firstError: w.counts.firstError,
    };
    console.log(variant, JSON.stringify(out[variant]));
    await w.close();
  }
  // The same without unsafePreventEviction: idle objects close their databases (here after about 10 s).
  const w = await start("om-many-evict", { preventEviction: false });
  await ingestMany(w, USERS, PER, "evict");
  await sleep(20_000);
  out["recall index, 20 s idle, eviction on"] = { sqliteHeapMB: mb(await w.sqliteUsed()) };
  console.log("after 20 s idle (eviction on)", JSON.stringify(out["recall index, 20 s idle, eviction on"]));
  await w.close();
  report.parts.many = { users: USERS, perUser: PER, ...out };
}

// ---- reproduce: live objects past the cap ---------------------------------------------------------------
if (PARTS.includes("reproduce")) {
  const USERS = env("OM_REPRO_USERS", 1600);
  const PER = env("OM_REPRO_PER_USER", 3);
  const w = await start("om-repro", { probe: false });
  const run = await ingestMany(w, USERS, PER, "repro");
  report.parts.reproduce = {
    users: USERS,
    perUser: PER,
    ...run,
    nomemInWorkerdOutput: w.counts.nomem,
    nomemInD1Reads: w.counts.nomemInBench ?? 0,
    firstNomem: w.counts.firstNomem,
    rssMB: mb(w.rss()),
    autogates: process.env.WORKERD_ALL_AUTOGATES ?? null,
  };
  console.log("reproduce", JSON.stringify(report.parts.reproduce));
  await w.close();
}

mkdirSync(join(ROOT, "bench", ".build"), { recursive: true });
writeFileSync(join(ROOT, "bench", ".build", "object-memory.json"), JSON.stringify(report, null, 2));
console.log(`wrote bench/.build/object-memory.json`);
