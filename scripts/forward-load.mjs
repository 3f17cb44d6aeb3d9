#!/usr/bin/env node
// `npm run forward-load -- [options]`: forwarding under load, end to end and offline. Starts two local
// receivers (verifying every delivery with `standardwebhooks`), a fresh `wrangler dev` forwarding
// conversation.stored to both, sends signed transcriptions (a share redelivered, some at the same
// moment), then reconciles: every acknowledged event arrived at each destination, under one webhook-id,
// none twice once deduplicated by webhook-id. Exits 1 on any mismatch.
//
//   --events N        distinct events (default 1000)
//   --users N         distinct users (default 100)
//   --duplicates F    share of events also redelivered (default 0.1)
//   --concurrency N   requests in flight (default 16)
//   --port N          wrangler dev port (default 8795; receivers take two free ports)
//   --timeout N       seconds to wait for every delivery after the last send (default 600)
//   --no-forward      the same webhooks with forwarding off (FORWARD_DESTINATIONS=[]): compare the send times
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startReceiver } from "./lib/forward-receiver.mjs";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EVENTS = opt("events", 1000);
const USERS = opt("users", 100);
const DUP_SHARE = opt("duplicates", 0.1);
const CONCURRENCY = opt("concurrency", 16);
const PORT = opt("port", 8795);
const TIMEOUT_S = opt("timeout", 600);
const NO_FORWARD = args.includes("--no-forward");

const SECRET = "whsec_forward_load";
const SIGNING = `whsec_${Buffer.from(randomUUID() + randomUUID()).toString("base64")}`;
const BASE = `http://127.0.0.1:${PORT}`;
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const WRANGLER = "node_modules/wrangler/bin/wrangler.js";
const persist = mkdtempSync(join(tmpdir(), "postcall-forward-load-"));
const fixture = JSON.parse(readFileSync("test/fixtures/transcription.json", "utf8"));

const receivers = { crm: await startReceiver({ secrets: [SIGNING] }), warehouse: await startReceiver({ secrets: [SIGNING] }) };
const destinations = Object.entries(receivers).map(([name, r]) => ({ name, url: `${r.url}/`, events: ["conversation.stored"] }));

const migrate = spawnSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], {
  env: { ...env, CI: "true" },
  encoding: "utf8",
});
if (migrate.status !== 0) throw new Error(`migrations failed:\n${migrate.stderr}`);

let stopping = false;
const dev = spawn(
  process.execPath,
  [
    WRANGLER, "dev", "--port", String(PORT), "--ip", "127.0.0.1", "--inspector-port", String(PORT + 1000), "--persist-to", persist,
    "--log-level", "error", "--show-interactive-dev-session=false",
    "--var", `ELEVENLABS_WEBHOOK_SECRET:${SECRET}`, "--var", "API_KEY:forward-load-key",
    "--var", `FORWARD_SIGNING_SECRET:${SIGNING}`, "--var", `FORWARD_DESTINATIONS:${NO_FORWARD ? "[]" : JSON.stringify(destinations)}`,
  ],
  { env, stdio: ["ignore", "ignore", "pipe"], detached: true },
);
let errText = "";
dev.stderr.on("data", (d) => (errText = (errText + d).slice(-4000)));
dev.on("exit", (code) => {
  if (!stopping) {
    console.error(`wrangler dev exited early (${code}):\n${errText}`);
    process.exit(2);
  }
});
async function cleanup() {
  stopping = true;
  // wrangler dev runs in its own process group (workerd is its child): end that group, by id.
  try {
    process.kill(-dev.pid, "SIGTERM");
  } catch {}
  await Promise.all(Object.values(receivers).map((r) => r.close()));
  rmSync(persist, { recursive: true, force: true });
}
process.on("SIGINT", () => cleanup().then(() => process.exit(130)));

for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${BASE}/health`)).ok) break;
  } catch {}
  if (i > 300) throw new Error("wrangler dev did not start");
  await sleep(100);
}

function event(i) {
  const e = structuredClone(fixture);
  e.data.conversation_id = `conv_fwdload_${i}_${randomUUID().slice(0, 8)}`;
  e.data.conversation_initiation_client_data.dynamic_variables.user_id = `fwd-load-user-${i % USERS}`;
  return JSON.stringify(e);
}
const bodies = Array.from({ length: EVENTS }, (_, i) => event(i));
const sends = bodies.map((b, i) => ({ body: b, i }));
for (let i = 0; i < EVENTS; i++) if (Math.random() < DUP_SHARE) sends.push({ body: bodies[i], i });
sends.sort(() => Math.random() - 0.5);

const acknowledged = new Set();
let statuses = {};
async function send({ body, i }) {
  for (let attempt = 0; attempt < 6; attempt++) {
    const t = Math.floor(Date.now() / 1000);
    const sig = createHmac("sha256", SECRET).update(`${t}.${body}`).digest("hex");
    const res = await fetch(`${BASE}/webhooks/elevenlabs`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "ElevenLabs-Signature": `t=${t},v0=${sig}` },
      body,
    });
    await res.arrayBuffer();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status === 200) return acknowledged.add(i);
    if (res.status < 500 && res.status !== 408 && res.status !== 429) return;
    await sleep(200 * 2 ** attempt);
  }
}

const started = Date.now();
let next = 0;
await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
  while (next < sends.length) await send(sends[next++]);
}));
const sentMs = Date.now() - started;
console.log(`sent ${sends.length} deliveries (${EVENTS} events, ${sends.length - EVENTS} redeliveries) in ${(sentMs / 1000).toFixed(1)} s: ${JSON.stringify(statuses)}`);

if (NO_FORWARD) {
  console.log(`forwarding off: ${acknowledged.size} of ${EVENTS} events acknowledged`);
  await cleanup();
  process.exit(acknowledged.size === EVENTS ? 0 : 1);
}

const idOf = (i) => JSON.parse(bodies[i]).data.conversation_id;
const expected = new Set([...acknowledged].map(idOf));
function tally(r) {
  const byConversation = new Map();
  let raw = 0;
  let unverified = 0;
  for (const d of r.received()) {
    if (!d.verified) unverified++;
    if (d.status >= 300) continue;
    raw++;
    const c = d.event?.data?.conversation_id;
    if (!byConversation.has(c)) byConversation.set(c, new Set());
    byConversation.get(c).add(d.id);
  }
  return { byConversation, raw, unverified };
}
const deadline = Date.now() + TIMEOUT_S * 1000;
while (Date.now() < deadline) {
  const done = Object.values(receivers).every((r) => [...expected].every((c) => tally(r).byConversation.has(c)));
  if (done) break;
  await sleep(500);
}
const forwardedMs = Date.now() - started;
await sleep(3000); // anything duplicated by the Queue would show up here

let ok = acknowledged.size === EVENTS;
for (const [name, r] of Object.entries(receivers)) {
  const { byConversation, raw, unverified } = tally(r);
  const missing = [...expected].filter((c) => !byConversation.has(c)).length;
  const extra = [...byConversation.keys()].filter((c) => !expected.has(c)).length;
  const multiIds = [...byConversation.values()].filter((s) => s.size !== 1).length;
  const distinct = [...byConversation.values()].reduce((n, s) => n + s.size, 0);
  console.log(
    `${name}: ${distinct} distinct webhook-ids for ${expected.size} events; missing ${missing}, unexpected ${extra}, ` +
      `events under more than one id ${multiIds}, accepted deliveries ${raw} (${raw - distinct} repeats of a webhook-id), unverified ${unverified}`,
  );
  if (missing || extra || multiIds || unverified || distinct !== expected.size) ok = false;
}
console.log(`all forwarded ${(forwardedMs / 1000).toFixed(1)} s after the first send (the machine may be shared: compare runs, not absolutes)`);
console.log(ok ? "RECONCILED: every event once at each destination" : "MISMATCH");
await cleanup();
process.exit(ok ? 0 : 1);
