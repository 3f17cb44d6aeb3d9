#!/usr/bin/env node
// `npm run bench:ab -- <git-ref>`: the working tree's postcall against the same service built from
// <git-ref> (its src/ and wrangler.toml), in alternating rounds in one run, for the ingest, context and initiation scenarios.
// Shows whether a change made the service faster when absolute numbers drift too much to compare
// two separate runs. Settings: AB_ROUNDS (5), AB_REQUESTS (1500 per ingest run, 5x that for context),
// AB_USERS (500: new users per ingest run).
//
// Every object of a variant lives in that variant's one workerd process, and workerd caps the SQLite
// heap of a whole process at 512 MiB: each live user object holds about 0.45 MB of it with a few calls
// (more as its history grows: about 1 MB at 50 calls, 4.6 MB at its bounds), and objects stay live
// until about 10 s after their last request. With 1,000 new users per run plus the 200 context and 200
// phone objects, a run came close enough to the cap for SQLITE_NOMEM (bench/object-memory.mjs,
// docs/cost-and-capacity.md "Memory per object"); keep AB_USERS x (memory per user) well under it.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, applyMigrations, cpuSeconds, startWorker } from "./lib/workers.mjs";
import { drain } from "./lib/drain.mjs";
import { signedTranscriptions } from "./lib/payloads.mjs";
import { load } from "./lib/load.mjs";
import { fmt, median, ratio } from "./lib/stats.mjs";

process.env.WRANGLER_SEND_METRICS = "false";
const ref = process.argv[2];
if (!ref) {
  console.error("usage: npm run bench:ab -- <git-ref>");
  process.exit(2);
}
const ROUNDS = Number(process.env.AB_ROUNDS ?? 5);
const REQUESTS = Number(process.env.AB_REQUESTS ?? 1500);
const USERS = Number(process.env.AB_USERS ?? 500);
const SECRET = "whsec_bench_secret";
const API_KEY = "bench-api-key";

const sha = execFileSync("git", ["rev-parse", "--short", ref], { cwd: ROOT, encoding: "utf8" }).trim();
const dir = join(ROOT, "bench", ".build", `ab-${sha}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
execFileSync("sh", ["-c", `git archive ${sha} src wrangler.toml | tar -x -C ${JSON.stringify(dir)}`], { cwd: ROOT });
// wrangler checks that [assets] directory exists; the bench serves no assets (bench/lib/workers.mjs).
mkdirSync(join(dir, "public"), { recursive: true });

const bindings = { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY };
const variants = {
  // With its own wrangler.toml: its Durable Object classes and bindings (before Core v3, UserMemory alone).
  [sha]: await startWorker({ name: `before-${sha}`, entry: join("bench", ".build", `ab-${sha}`, "src", "index.ts"), config: join("bench", ".build", `ab-${sha}`, "wrangler.toml"), bindings }),
  working: await startWorker({ name: "working-tree", entry: "src/index.ts", bindings }),
};
for (const v of Object.values(variants)) {
  v.db = await applyMigrations(v.mf);
  v.delivered = 0;
}

/** A load run plus, for ingest, the wait for its deliveries; CPU per request covers both. */
async function measured(v, amount, next, ingest) {
  const cpu0 = cpuSeconds(v.pid);
  const r = await load({ url: v.url, connections: 32, amount, next });
  if (r.failed) throw new Error(`${v.name}: ${r.failed} of ${amount} ${ingest ? "ingest" : "read"} requests failed (non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts})`);
  // As in run.mjs: an ingest run lasts until its deliveries are in D1.
  const drained = ingest ? await drain(v.db, "conversations", (v.delivered += r.ok), v.name) : 0;
  return { ...r, rps: r.ok / (r.seconds + drained), cpuMs: ((cpuSeconds(v.pid) - cpu0) * 1000) / r.ok };
}

let seq = 0;
function ingestRun() {
  const pool = signedTranscriptions({ secret: SECRET, count: REQUESTS + 200, users: USERS, minBytes: 20_000, prefix: `ab${++seq}` });
  let i = 0;
  return () => {
    const { body, signature } = pool.request(i++);
    return { method: "POST", path: "/webhooks/elevenlabs", headers: { "content-type": "application/json", "elevenlabs-signature": signature }, body };
  };
}
// Context users get a history from the first (warm-up) ingest pool, which every variant receives.
const users = signedTranscriptions({ secret: SECRET, count: 1, users: USERS, minBytes: 20_000, prefix: "ab1" });
let c = 0;
const contextNext = () => ({ method: "GET", path: `/v1/users/${users.userId(c++ % 200)}/context`, headers: { authorization: `Bearer ${API_KEY}` } });
// Rings from 200 numbers (no memory of their own: the first-time answer after one read each).
const initiationNext = () => ({
  method: "POST",
  path: "/webhooks/elevenlabs/initiation",
  headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
  body: JSON.stringify({ caller_id: `+1415${String(c++ % 200).padStart(7, "0")}`, agent_id: "agent_ab", called_number: "+14155550000", call_sid: `CA${c}` }),
});

const results = {};
for (const [name, v] of Object.entries(variants)) {
  seq = 0;
  await measured(v, REQUESTS, ingestRun(), true);
  await measured(v, REQUESTS, contextNext, false);
  await measured(v, REQUESTS, initiationNext, false);
  results[name] = { ingest: [], context: [], initiation: [] };
}
for (let r = 0; r < ROUNDS; r++) {
  const names = Object.keys(variants);
  for (const name of r % 2 ? names.reverse() : names) {
    const v = variants[name];
    results[name].ingest.push(await measured(v, REQUESTS, ingestRun(), true));
    results[name].context.push(await measured(v, REQUESTS * 5, contextNext, false));
    results[name].initiation.push(await measured(v, REQUESTS * 5, initiationNext, false));
  }
}
for (const scenario of ["ingest", "context", "initiation"]) {
  const [a, b] = Object.keys(variants);
  const per = (key) => median(results[b][scenario].map((x, k) => x[key] / results[a][scenario][k][key]));
  const m = (n, key) => median(results[n][scenario].map((x) => x[key]));
  const line = (n) => `${n}: ${fmt(m(n, "rps"), 0)} req/s, p99 ${m(n, "p99")} ms, CPU ${fmt(m(n, "cpuMs"), 3)} ms/req`;
  console.log(`${scenario.padEnd(8)} ${line(a)} | ${line(b)} | working/${a}: rps ${ratio(per("rps"))}, CPU ${ratio(per("cpuMs"))}`);
}
for (const v of Object.values(variants)) await v.dispose();
