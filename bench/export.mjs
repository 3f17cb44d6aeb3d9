#!/usr/bin/env node
// `npm run bench:export`: the memory of GET /v1/users/:userId/export for users of 1,000 and 10,000
// calls (each with a 4 KB transcript), through Miniflare's API like `npm run bench` (not wrangler
// dev, whose inspector mirrors every D1 answer and grows with them: see bench/lib/workers.mjs). The
// Worker's workerd process is sampled every 25 ms while the whole export is read; if the body were
// built in memory, workerd would grow by at least the body's size (tens of MB). A control Worker
// (bench/workers/export-reads.ts) makes only the export's D1 reads and sends nothing: what it grows
// by is the local D1 simulation's cost (it runs in the same workerd process), not the export's.
//
//   npm run bench:export          BENCH_EXPORT_SIZES=1000,10000,30000 BENCH_EXPORT_REPEAT=2 npm run bench:export
import { readFileSync } from "node:fs";
import { applyMigrations, startWorker } from "./lib/workers.mjs";

const SIZES = (process.env.BENCH_EXPORT_SIZES ?? "1000,10000").split(",").map(Number);
const REPEAT = Number(process.env.BENCH_EXPORT_REPEAT ?? 1);
const API_KEY = "bench-export-key";
let base = "";

/** One SQL statement that stores `n` conversations of `user`, each with a 4 KB transcript (format 0: plain JSON). */
const seed = (user, n) => `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${n - 1})
INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, started_at, duration_secs, title, summary, turn_count, transcript, transcript_key, received_at)
SELECT printf('${user}_c%06d', i), '${user}', 'user_id', 'agent_bench', 1764000000 + i * 60, 95, printf('Call %d', i), 'A benchmark call.', 2,
  CAST(printf('[[0,"agent","Hello, this is call %d",0,null,null],[1,"user","%s",3,null,null]]', i, hex(randomblob(2048))) AS BLOB), 'bench', 1764000000
FROM n;`;

/** Resident memory of the process in KB: anonymous (the heap: what the Worker's code can grow) and in all. */
function rss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { anon: kb("RssAnon"), all: kb("VmRSS") };
}

async function exportOnce(user, workerd, url = `${base}/v1/users/${user}/export`) {
  const before = rss(workerd);
  const peak = { ...before };
  const sample = () => {
    const now = rss(workerd);
    peak.anon = Math.max(peak.anon, now.anon);
    peak.all = Math.max(peak.all, now.all);
  };
  const timer = setInterval(sample, 25);
  const started = Date.now();
  const res = await fetch(url, { headers: { Authorization: `Bearer ${API_KEY}` } });
  if (!res.ok) throw new Error(`export ${user}: HTTP ${res.status} ${await res.text()}`);
  let bytes = 0;
  let lines = 0;
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    bytes += chunk.byteLength;
    const text = tail + decoder.decode(chunk, { stream: true });
    const parts = text.split("\n");
    tail = parts.pop();
    lines += parts.length;
  }
  clearInterval(timer);
  sample();
  return { bytes, lines, ms: Date.now() - started, before, peak };
}

let worker;
let control;
try {
  worker = await startWorker({ name: "export", entry: "src/index.ts", bindings: { API_KEY, ELEVENLABS_WEBHOOK_SECRET: "whsec_bench" } });
  base = worker.url;
  const workerd = worker.pid;
  if (workerd === null) throw new Error("could not tell which workerd process runs the Worker");
  const db = await applyMigrations(worker.mf);
  for (const n of new Set(SIZES)) await db.prepare(seed(`bench_${n}`, n)).run();
  await db.prepare(seed("bench_warmup", 200)).run();
  // Warm the process first (a cold workerd grows on its first large responses whatever the code does).
  await exportOnce("bench_warmup", workerd);
  await exportOnce(`bench_${SIZES[0]}`, workerd);

  console.log(`\nGET /v1/users/:id/export through Miniflare (workerd RSS sampled every 25 ms; ${new Date().toISOString()})\n`);
  console.log("| calls | export body | records | time | workerd RSS before | peak during | growth | of which anonymous (heap) |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const n of SIZES.flatMap((x) => Array(REPEAT).fill(x))) {
    const r = await exportOnce(`bench_${n}`, workerd);
    const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
    console.log(
      `| ${n} | ${(r.bytes / 1e6).toFixed(1)} MB | ${r.lines} | ${(r.ms / 1000).toFixed(1)} s | ${mb(r.before.all)} | ${mb(r.peak.all)} | ${mb(r.peak.all - r.before.all)} | ${mb(r.peak.anon - r.before.anon)} |`,
    );
  }
  await worker.dispose();
  worker = undefined;

  // The control: the same D1 reads in one request, nothing sent back.
  control = await startWorker({ name: "export-reads", entry: "bench/workers/export-reads.ts", durableObjects: {} });
  const cdb = await applyMigrations(control.mf);
  for (const n of new Set(SIZES)) await cdb.prepare(seed(`bench_${n}`, n)).run();
  await cdb.prepare(seed("bench_warmup", 200)).run();
  await exportOnce("bench_warmup", control.pid, `${control.url}/?user=bench_warmup`);
  console.log("\nControl: only the export's D1 reads, in one request, nothing sent (bench/workers/export-reads.ts)\n");
  console.log("| calls | time | workerd RSS before | peak during | growth | of which anonymous (heap) |");
  console.log("|---:|---:|---:|---:|---:|---:|");
  for (const n of SIZES.flatMap((x) => Array(REPEAT).fill(x))) {
    let r;
    try {
      r = await exportOnce(`bench_${n}`, control.pid, `${control.url}/?user=bench_${n}`);
    } catch (err) {
      // Seen on this machine: the control's workerd exits during a second long request of 10,000 walks.
      console.log(`| ${n} | control failed: ${err instanceof Error ? err.message : err} | | | | |`);
      break;
    }
    const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
    console.log(`| ${n} | ${(r.ms / 1000).toFixed(1)} s | ${mb(r.before.all)} | ${mb(r.peak.all)} | ${mb(r.peak.all - r.before.all)} | ${mb(r.peak.anon - r.before.anon)} |`);
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  await worker?.dispose();
  await control?.dispose();
}
