#!/usr/bin/env node
// Measures the initiation webhook (it sits on a ringing phone) against baselines from the same run:
// GET /health (no storage) and GET /v1/users/:id/context (one Durable Object read). Cases:
// a withheld caller (no storage call), an unlinked known number (one call), a number linked to an app
// user (two calls). Prints requests/s and latency percentiles; compare ratios, not absolute numbers.
//
//   npm start -- --port 8793 &          # or any running postcall
//   node scripts/bench-initiation.mjs --url http://localhost:8793 [--seconds 5] [--rounds 3] [--concurrency 16]
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const base = (args.url ?? "http://localhost:8787").replace(/\/+$/, "");
const seconds = Number(args.seconds ?? 5);
const concurrency = Number(args.concurrency ?? 16);
const vars = Object.fromEntries(
  readFileSync(".dev.vars", "utf8")
    .split("\n")
    .map((l) => /^\s*([A-Z_]+)\s*=\s*"?([^"\n]*)"?/.exec(l))
    .filter(Boolean)
    .map((m) => [m[1], m[2].split(",")[0].trim()]),
);
const apiKey = args["api-key"] ?? vars.API_KEY;
const secret = args.secret ?? vars.ELEVENLABS_WEBHOOK_SECRET;
const auth = { Authorization: `Bearer ${apiKey}` };

async function signed(event) {
  const body = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const sig = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  const res = await fetch(`${base}/webhooks/elevenlabs`, { method: "POST", headers: { "Content-Type": "application/json", "ElevenLabs-Signature": `t=${t},v0=${sig}` }, body });
  if (!res.ok) throw new Error(`seed failed: ${res.status} ${await res.text()}`);
}

function call(number, userId) {
  const e = JSON.parse(readFileSync(new URL("../test/fixtures/transcription.json", import.meta.url), "utf8"));
  e.data.conversation_id = `bench_${randomUUID()}`;
  e.data.metadata.start_time_unix_secs = Math.floor(Date.now() / 1000) - 600;
  e.data.metadata.phone_call = { type: "twilio", direction: "inbound", external_number: number, agent_number: "+14155550000" };
  const v = e.data.conversation_initiation_client_data.dynamic_variables;
  if (userId) v.user_id = userId;
  else delete v.user_id;
  return e;
}

const run = `${Date.now() % 1e7}`.padStart(7, "0");
const unlinked = `+1415${run}`;
const linked = `+1416${run}`;
const appUser = `bench-user-${run}`;
await signed(call(unlinked, null));
await signed(call(linked, appUser));
await new Promise((r) => setTimeout(r, 1500)); // let the link reach the number's object (outbox alarm)

const initiation = (callerId) => () =>
  fetch(`${base}/webhooks/elevenlabs/initiation`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ caller_id: callerId, agent_id: "a", called_number: "+14155550000", call_sid: "CA1" }) });
const cases = [
  ["GET /health (baseline)", () => fetch(`${base}/health`)],
  ["GET context, known user (1 DO read)", () => fetch(`${base}/v1/users/${appUser}/context`, { headers: auth })],
  ["initiation, withheld caller (0 DO calls)", initiation("anonymous")],
  ["initiation, unlinked number (1 DO call)", initiation(unlinked)],
  ["initiation, linked number (2 DO calls)", initiation(linked)],
];

const check = await (await initiation(linked)()).json();
if (check.user_id !== appUser) throw new Error(`linked number did not resolve: ${JSON.stringify(check)}`);

async function measure(fn, secs) {
  const latencies = [];
  const end = Date.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        const res = await fn();
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const p = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
  return { rps: latencies.length / secs, latencies };
}

// The machine may be shared: cases are interleaved over several rounds so that each sees similar load.
const rounds = Number(args.rounds ?? 3);
console.log(`${base}, ${rounds} rounds x ${seconds}s per case, concurrency ${concurrency}`);
for (const [, fn] of cases) await measure(fn, 0.5); // warm-up, not reported
const results = cases.map(() => ({ count: 0, latencies: [] }));
for (let round = 0; round < rounds; round++) {
  for (const [i, [, fn]] of cases.entries()) {
    const r = await measure(fn, seconds);
    results[i].count += r.latencies.length;
    results[i].latencies.push(...r.latencies);
  }
}
const rps = results.map((r) => r.count / (rounds * seconds));
for (const [i, [name]] of cases.entries()) {
  const l = results[i].latencies.sort((a, b) => a - b);
  const p = (q) => l[Math.min(l.length - 1, Math.floor(q * l.length))].toFixed(1);
  console.log(`${name.padEnd(44)} ${rps[i].toFixed(0).padStart(6)} req/s  (${(rps[i] / rps[0]).toFixed(2)} of baseline)  p50 ${p(0.5)} ms  p99 ${p(0.99)} ms`);
}
