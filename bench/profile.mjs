#!/usr/bin/env node
// `npm run bench:profile`: a CPU profile of postcall's isolate (the Worker and its Durable Objects run
// in one isolate in workerd) while it ingests signed transcriptions, then the functions that cost the
// most, by self time and by inclusive time for postcall's own code. Writes bench/.build/ingest.cpuprofile
// (open it in Chrome DevTools > Performance). Settings: PROFILE_REQUESTS (3000), PROFILE_SCENARIO
// (ingest | context | initiation | recall: bench/lib/recall-bench.mjs's users and queries).
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT, applyMigrations, startWorker } from "./lib/workers.mjs";
import { signedTranscriptions } from "./lib/payloads.mjs";
import { load } from "./lib/load.mjs";
import { fmt } from "./lib/stats.mjs";
import { drain } from "./lib/drain.mjs";
import { recallRequest, seedRecallUsers } from "./lib/recall-bench.mjs";

process.env.WRANGLER_SEND_METRICS = "false";
const REQUESTS = Number(process.env.PROFILE_REQUESTS ?? 3000);
const SCENARIO = process.env.PROFILE_SCENARIO ?? "ingest";
const SECRET = "whsec_bench_secret";
const API_KEY = "bench-api-key";
const AGENT_KEY = "bench-agent-key";

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const inspectorPort = await freePort();
// USER_ID_TRUST "claimed" for the recall scenario, as the bench runs it (its seeded calls predate the tokens).
const bindings = { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, AGENT_API_KEY: AGENT_KEY, ...(SCENARIO === "recall" ? { USER_ID_TRUST: "claimed" } : {}) };
const w = await startWorker({ name: "postcall", entry: "src/index.ts", bindings, inspectorPort });
const db = await applyMigrations(w.mf);

const pool = signedTranscriptions({ secret: SECRET, count: 2 * REQUESTS + 200, users: 1000, minBytes: 20_000, prefix: "prof" });
let i = 0;
const ingest = () => {
  const { body, signature } = pool.request(i++);
  return { method: "POST", path: "/webhooks/elevenlabs", headers: { "content-type": "application/json", "elevenlabs-signature": signature }, body };
};
let c = 0;
const context = () => ({ method: "GET", path: `/v1/users/${pool.userId(c++ % 1000)}/context`, headers: { authorization: `Bearer ${API_KEY}` } });
// Callers whose numbers have no memory of their own: the answer is the defaults (one RPC, no SQL after the first).
const initiation = () => ({
  method: "POST",
  path: "/webhooks/elevenlabs/initiation",
  headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
  body: JSON.stringify({ caller_id: `+1415${String(c++ % 1000).padStart(7, "0")}`, agent_id: "agent_bench", called_number: "+14155550000", call_sid: `CA${c}` }),
});
let recallTokens = null;
const recall = () => recallRequest(c++, recallTokens, AGENT_KEY);
const scenarios = { ingest, context, initiation, recall };

// Warm up (and, for context, give the users a history; for recall, seed its users), then profile.
if (SCENARIO === "recall") {
  const seeded = await seedRecallUsers({ url: w.url, secret: SECRET, apiKey: API_KEY, agentKey: AGENT_KEY, log: console.log });
  await drain(db, "conversations", seeded.conversations, "seeding recall users");
  recallTokens = seeded.tokens;
  await load({ url: w.url, connections: 32, amount: 500, next: recall });
} else {
  await load({ url: w.url, connections: 32, amount: REQUESTS, next: ingest });
}

const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
const target = targets.find((t) => t.title?.includes("postcall")) ?? targets[0];
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((r, j) => ((ws.onopen = r), (ws.onerror = j)));
let id = 0;
const pending = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) pending.get(msg.id)(msg);
};
const send = (method, params = {}) =>
  new Promise((resolve) => {
    pending.set(++id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 50 });
await send("Profiler.start");
const r = await load({ url: w.url, connections: 32, amount: REQUESTS, next: scenarios[SCENARIO] ?? ingest });
const { result } = await send("Profiler.stop");
ws.close();
const profile = result.profile;
mkdirSync(join(ROOT, "bench", ".build"), { recursive: true });
writeFileSync(join(ROOT, "bench", ".build", `${SCENARIO}.cpuprofile`), JSON.stringify(profile));
console.log(`${SCENARIO}: ${REQUESTS} requests, ${fmt(r.rps, 0)} req/s under the profiler (slower than without it)`);

// Self time per node, then per function; inclusive time for postcall's own functions.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const ch of n.children ?? []) parent.set(ch, n.id);
const self = new Map();
const deltas = profile.timeDeltas;
for (let k = 0; k < profile.samples.length; k++) self.set(profile.samples[k], (self.get(profile.samples[k]) ?? 0) + (deltas[k] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const name = (n) => {
  const f = n.callFrame;
  const file = f.url ? f.url.split("/").slice(-1)[0] : "";
  return `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
};
const selfByFn = new Map();
const inclByFn = new Map();
for (const [nodeId, t] of self) {
  const n = byId.get(nodeId);
  selfByFn.set(name(n), (selfByFn.get(name(n)) ?? 0) + t);
  const seen = new Set();
  for (let cur = nodeId; cur !== undefined; cur = parent.get(cur)) {
    const key = name(byId.get(cur));
    if (seen.has(key)) continue;
    seen.add(key);
    inclByFn.set(key, (inclByFn.get(key) ?? 0) + t);
  }
}
const pct = (t) => `${fmt((100 * t) / total, 1)}%`;
const perReq = (t) => `${fmt(t / REQUESTS, 1)} µs/req`;
console.log(`\nTop self time (${fmt(total / 1000, 0)} ms sampled):`);
for (const [k, t] of [...selfByFn].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(t).padStart(6)}  ${perReq(t).padStart(14)}  ${k}`);
console.log("\nInclusive time, named functions (first 40):");
for (const [k, t] of [...inclByFn].filter(([k]) => !k.startsWith("(")).sort((a, b) => b[1] - a[1]).slice(0, 40)) {
  console.log(`  ${pct(t).padStart(6)}  ${perReq(t).padStart(14)}  ${k}`);
}
await w.dispose();
void db;
