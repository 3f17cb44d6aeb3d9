#!/usr/bin/env node
// `npm run bench:audio`: streams a ~150 MB chunked, signed post_call_audio webhook through
// `wrangler dev` and measures throughput and the growth of the workerd process's resident memory,
// next to two baselines run the same way in the same run (bench/baseline/index.js):
//   - plain multipart: the raw body piped into R2 multipart parts, no verification or decoding;
//   - buffered: the whole body read, verified, JSON.parse'd, fromBase64'd and put in one go.
// Targets (issue 3): postcall grows by <= 48 MB (median, warm process) and reaches >= 70% of plain
// multipart's throughput (median of alternating rounds).
//
//   npm run bench:audio                      # defaults: 150 MB body, 3 rounds
//   npm run bench:audio -- --mb 150 --rounds 5 --backfill-mb 60
//
// It also measures the audio backfill path (issue 14): postcall fetching a --backfill-mb MP3 (default 60)
// from a stand-in for ElevenLabs' API (a Node server in this process, on 127.0.0.1) into R2 through
// POST /v1/conversations/:id/audio/backfill, with the same RSS measure and target as the webhook.
//
// Only 127.0.0.1 is contacted. Every wrangler process it starts is stopped (by its process group id)
// before it exits; local state goes to a temporary directory that is removed at the end.
import { spawn, spawnSync } from "node:child_process";
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { once } from "node:events";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const BODY_MB = Number(args.mb ?? 150);
const ROUNDS = Number(args.rounds ?? 3);
const MAIN_PORT = Number(args.port ?? 8792);
const BASELINE_PORT = Number(args["baseline-port"] ?? 8791);
const BACKFILL_MB = Number(args["backfill-mb"] ?? 60);
const XI_KEY = "bench-xi-key";
const SECRET = "whsec_bench_secret";
const API_KEY = "bench-api-key";
const DEADLINE_MS = 20 * 60 * 1000;
const WRANGLER = ["node_modules/wrangler/bin/wrangler.js"];
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
const MB = 1e6;

const state = mkdtempSync(join(tmpdir(), "postcall-bench-audio-"));
const started = [];
const deadline = setTimeout(() => {
  console.error(`bench:audio: gave up after ${DEADLINE_MS / 60000} minutes`);
  cleanup();
  process.exit(2);
}, DEADLINE_MS);

function cleanup() {
  for (const child of started) stop(child);
  rmSync(state, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

// ---- processes ------------------------------------------------------------------------------------

function startWrangler(name, config, port, persist) {
  const child = spawn(
    process.execPath,
    [
      ...WRANGLER, "dev", "-c", config, "--port", String(port), "--ip", "127.0.0.1", "--persist-to", persist, "--log-level", "warn",
      "--var", `ELEVENLABS_WEBHOOK_SECRET:${SECRET}`, "--var", `API_KEY:${API_KEY}`,
      ...(name === "postcall" ? ["--var", `ELEVENLABS_API_BASE:http://127.0.0.1:${fakeApiPort}`, "--var", `ELEVENLABS_API_KEY:${XI_KEY}`] : []),
    ],
    { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  child.label = name;
  child.stderr.on("data", (d) => process.stderr.write(`[${name}] ${d}`));
  child.stdout.on("data", () => {});
  started.push(child);
  return child;
}

function stop(child) {
  if (child.exitCode !== null || child.killed) return;
  try {
    process.kill(-child.pid, "SIGTERM"); // its own process group: wrangler and the workerd it started
  } catch {}
  child.killed = true;
}

async function waitReady(port) {
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nothing answered on port ${port}`);
}

/** The workerd process under `rootPid` (wrangler starts it as a child). */
function workerdOf(rootPid) {
  const children = new Map();
  const comm = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      comm.set(Number(d), stat.slice(stat.indexOf("(") + 1, close));
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {}
  }
  const queue = [rootPid];
  const found = [];
  while (queue.length) {
    const pid = queue.shift();
    if (comm.get(pid) === "workerd") found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  if (found.length === 0) throw new Error(`no workerd under ${rootPid}`);
  return found.sort((a, b) => statusKb(b, "VmRSS") - statusKb(a, "VmRSS"))[0];
}

function statusKb(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

// ---- the body -------------------------------------------------------------------------------------

const audioBytes = Math.floor((BODY_MB * MB * 3) / 4);
console.log(`Preparing ${(audioBytes / MB).toFixed(1)} MB of audio (${BODY_MB} MB of base64)...`);
const audio = randomBytes(audioBytes);
audio.write("ID3", 0, "latin1");
const audioSha = createHash("sha256").update(audio).digest("hex");
const b64 = Buffer.from(audio.toString("base64"), "latin1");

/** A signed body, conversation id after the audio (the order that forces streaming to a random key). */
function makeEvent() {
  const conversationId = `bench_${randomUUID()}`;
  const t = Math.floor(Date.now() / 1000);
  const prefix = Buffer.from(`{"type":"post_call_audio","event_timestamp":${t},"data":{"agent_id":"agent_bench","full_audio":"`);
  const suffix = Buffer.from(`","conversation_id":"${conversationId}"}}`);
  const mac = createHmac("sha256", SECRET).update(`${t}.`).update(prefix).update(b64).update(suffix).digest("hex");
  return { conversationId, parts: [prefix, b64, suffix], bytes: prefix.length + b64.length + suffix.length, header: `t=${t},v0=${mac}` };
}

/** POSTs the body chunked (no Content-Length), as ElevenLabs does, and times it to the last response byte. */
function post(port, path, event) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = httpRequest(
      { host: "127.0.0.1", port, path, method: "POST", headers: { "Content-Type": "application/json", "ElevenLabs-Signature": event.header, Expect: "" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode, text, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
      },
    );
    req.on("error", reject);
    (async () => {
      const CHUNK = 64 * 1024;
      for (const part of event.parts) {
        for (let off = 0; off < part.length; off += CHUNK) {
          if (!req.write(part.subarray(off, off + CHUNK))) await once(req, "drain");
        }
      }
      req.end();
    })().catch(reject);
  });
}

/** One measured upload: throughput and the peak RSS growth of the target's workerd. */
async function measure(target, event) {
  const pid = target.workerd;
  const before = statusKb(pid, "VmRSS");
  writeFileSync(`/proc/${pid}/clear_refs`, "5"); // resets VmHWM, the kernel's exact peak RSS
  let sampledPeak = before;
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, statusKb(pid, "VmRSS"));
  }, 20);
  const res = await post(target.port, target.path, event);
  clearInterval(sampler);
  const peak = Math.max(statusKb(pid, "VmHWM"), sampledPeak);
  if (res.status !== 200) throw new Error(`${target.name}: HTTP ${res.status} ${res.text}`);
  return { mbPerSec: event.bytes / MB / res.seconds, seconds: res.seconds, growthMb: ((peak - before) * 1024) / MB, beforeMb: (before * 1024) / MB, response: res.text };
}

/** The stored audio, read back through the API and hashed: byte-exact or the run fails. */
async function checkStored(conversationId) {
  const res = await fetch(`http://127.0.0.1:${MAIN_PORT}/v1/conversations/${conversationId}/audio`, { headers: { Authorization: `Bearer ${API_KEY}` } });
  if (res.status !== 200) throw new Error(`GET audio: HTTP ${res.status}`);
  const hash = createHash("sha256");
  for await (const chunk of res.body) hash.update(chunk);
  const got = hash.digest("hex");
  if (got !== audioSha) throw new Error(`stored audio differs: ${got} != ${audioSha}`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---- the backfill path: a stand-in for ElevenLabs' API --------------------------------------------

const backfillAudio = randomBytes(Math.floor(BACKFILL_MB * MB));
backfillAudio.write("ID3", 0, "latin1");
const backfillSha = createHash("sha256").update(backfillAudio).digest("hex");
const fakeApi = createServer((req, res) => {
  if (req.headers["xi-api-key"] !== XI_KEY || !/^\/v1\/convai\/conversations\/[^/]+\/audio$/.test(req.url ?? "")) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": "audio/mpeg" }); // chunked, as a stream
  let off = 0;
  const pump = () => {
    while (off < backfillAudio.length) {
      const chunk = backfillAudio.subarray(off, off + 64 * 1024);
      off += chunk.length;
      if (!res.write(chunk)) return res.once("drain", pump);
    }
    res.end();
  };
  pump();
});
await new Promise((resolve) => fakeApi.listen(0, "127.0.0.1", resolve));
const fakeApiPort = fakeApi.address().port;

/** One measured backfill of the stand-in's MP3: its time and the peak RSS growth of postcall's workerd. */
async function measureBackfill(target) {
  const conversationId = `bench_bf_${randomUUID()}`;
  const pid = target.workerd;
  const before = statusKb(pid, "VmRSS");
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  let sampledPeak = before;
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, statusKb(pid, "VmRSS"));
  }, 20);
  const t0 = process.hrtime.bigint();
  const res = await fetch(`http://127.0.0.1:${target.port}/v1/conversations/${conversationId}/audio/backfill`, { method: "POST", headers: { Authorization: `Bearer ${API_KEY}` } });
  const text = await res.text();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(sampler);
  const peak = Math.max(statusKb(pid, "VmHWM"), sampledPeak);
  if (res.status !== 201) throw new Error(`backfill: HTTP ${res.status} ${text}`);
  const body = JSON.parse(text);
  if (body.sha256 !== backfillSha || body.bytes !== backfillAudio.length) throw new Error(`backfill stored other bytes: ${text}`);
  return { mbPerSec: backfillAudio.length / MB / seconds, seconds, growthMb: ((peak - before) * 1024) / MB, beforeMb: (before * 1024) / MB, response: text, conversationId };
}

// ---- the run --------------------------------------------------------------------------------------

async function main() {
  const migrate = spawnSync(process.execPath, [...WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", join(state, "main")], { env, encoding: "utf8" });
  if (migrate.status !== 0) throw new Error(`migrations failed: ${migrate.stderr}`);

  const results = { postcall: [], plain: [], buffered: [], backfill: [], warmup: {} };
  // One at a time: each wrangler picks a free devtools port near 9229, and two starting at once race for it.
  const mainProc = startWrangler("postcall", "wrangler.toml", MAIN_PORT, join(state, "main"));
  await waitReady(MAIN_PORT);
  const plainProc = startWrangler("baseline", "bench/baseline/wrangler.toml", BASELINE_PORT, join(state, "plain"));
  await waitReady(BASELINE_PORT);
  const postcall = { name: "postcall", port: MAIN_PORT, path: "/webhooks/elevenlabs", workerd: workerdOf(mainProc.pid) };
  const plain = { name: "plain multipart", port: BASELINE_PORT, path: "/plain", workerd: workerdOf(plainProc.pid) };

  console.log("Warming up both processes with one upload of the same size...");
  for (const target of [postcall, plain]) {
    const e = makeEvent();
    const r = await measure(target, e);
    results.warmup[target.name] = r;
    console.log(`  warm-up ${target.name}: ${r.mbPerSec.toFixed(1)} MB/s, RSS +${r.growthMb.toFixed(1)} MB (cold)`);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? [postcall, plain] : [plain, postcall];
    for (const target of order) {
      const e = makeEvent();
      const r = await measure(target, e);
      if (target === postcall) {
        const body = JSON.parse(r.response);
        if (body.status !== "stored" || body.bytes !== audioBytes) throw new Error(`unexpected answer ${r.response}`);
        await checkStored(e.conversationId);
      }
      results[target === postcall ? "postcall" : "plain"].push(r);
      console.log(`  round ${round} ${target.name}: ${r.mbPerSec.toFixed(1)} MB/s, RSS +${r.growthMb.toFixed(1)} MB (from ${r.beforeMb.toFixed(0)} MB)`);
    }
  }
  stop(plainProc);
  await once(plainProc, "exit").catch(() => {});

  console.log(`Audio backfill of ${BACKFILL_MB} MB from the stand-in API, through postcall's warm process...`);
  results.warmup.backfill = await measureBackfill(postcall);
  for (let round = 1; round <= ROUNDS; round++) {
    const r = await measureBackfill(postcall);
    const res = await fetch(`http://127.0.0.1:${MAIN_PORT}/v1/conversations/${r.conversationId}/audio`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    const hash = createHash("sha256");
    for await (const chunk of res.body) hash.update(chunk);
    if (hash.digest("hex") !== backfillSha) throw new Error("backfilled audio read back differs");
    results.backfill.push(r);
    console.log(`  round ${round} backfill: ${r.mbPerSec.toFixed(1)} MB/s, RSS +${r.growthMb.toFixed(1)} MB (from ${r.beforeMb.toFixed(0)} MB)`);
  }

  const bufferedProc = startWrangler("buffered", "bench/baseline/wrangler.toml", BASELINE_PORT, join(state, "buffered"));
  await waitReady(BASELINE_PORT);
  const buffered = { name: "buffered", port: BASELINE_PORT, path: "/buffered", workerd: workerdOf(bufferedProc.pid) };
  {
    const r = await measure(buffered, makeEvent());
    results.warmup[buffered.name] = r;
    console.log(`  warm-up buffered: ${r.mbPerSec.toFixed(1)} MB/s, RSS +${r.growthMb.toFixed(1)} MB (cold)`);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const r = await measure(buffered, makeEvent());
    results.buffered.push(r);
    console.log(`  round ${round} buffered: ${r.mbPerSec.toFixed(1)} MB/s, RSS +${r.growthMb.toFixed(1)} MB (from ${r.beforeMb.toFixed(0)} MB)`);
  }
  stop(bufferedProc);
  stop(mainProc);
  return results;
}

function report(results) {
  const plainTput = median(results.plain.map((r) => r.mbPerSec));
  const row = (name, rs, note) => {
    const tput = median(rs.map((r) => r.mbPerSec));
    const growth = median(rs.map((r) => r.growthMb));
    return `| ${name} | ${rs.length} | ${tput.toFixed(1)} | ${(tput / plainTput).toFixed(2)} | ${growth.toFixed(1)} | ${Math.max(...rs.map((r) => r.growthMb)).toFixed(1)} | ${note} |`;
  };
  const pc = results.postcall;
  const growth = median(pc.map((r) => r.growthMb));
  const ratio = median(pc.map((r) => r.mbPerSec)) / plainTput;
  const wranglerVersion = JSON.parse(readFileSync("node_modules/wrangler/package.json", "utf8")).version;
  const lines = [
    "# Audio ingest benchmark",
    "",
    `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, wrangler ${wranglerVersion} (\`wrangler dev\`, local R2/D1/Durable Objects).`,
    `Body: one signed post_call_audio event of ${BODY_MB} MB (base64 of ${(audioBytes / MB).toFixed(1)} MB of audio), sent chunked with no Content-Length, \`conversation_id\` after \`full_audio\`. Command: \`npm run bench:audio -- --mb ${BODY_MB} --rounds ${ROUNDS}\`.`,
    "Throughput is body MB per second, from the first byte sent to the last byte of the answer. RSS growth is the workerd process's peak resident memory during the upload (VmHWM, reset before each upload) minus its RSS just before, on a process already warmed up by one upload of the same size. Medians over the rounds; postcall and plain multipart alternate within each round; every postcall upload is read back through `GET /v1/conversations/:id/audio` and its SHA-256 compared with the source.",
    "The buffered baseline runs after those rounds, in its own fresh process (sharing one would leave its hundreds of MB in the plain baseline's process), so its × plain figure compares different minutes of a shared, noisy machine: indicative only. Plain multipart stores the raw body; postcall stores the audio it decodes (three quarters of it).",
    "",
    "| implementation | uploads | median MB/s | × plain multipart | median RSS growth (MB) | max RSS growth (MB) | what it does |",
    "|---|---|---|---|---|---|---|",
    row("postcall (streaming)", pc, "verify HMAC + scan JSON + decode base64 + R2 multipart, one pass"),
    row("plain multipart", results.plain, "raw body piped to R2 multipart, nothing checked"),
    row("buffered (naive)", results.buffered, "whole body read, verified, parsed, fromBase64, one put"),
    "",
    `Audio backfill (issue 14): ${BACKFILL_MB} MB of MP3 streamed from a stand-in for ElevenLabs' API (127.0.0.1) into R2 by \`POST /v1/conversations/:id/audio/backfill\`, same process and measure; MB/s is MP3 MB per second. Median ${median(results.backfill.map((r) => r.mbPerSec)).toFixed(1)} MB/s, RSS growth median ${median(results.backfill.map((r) => r.growthMb)).toFixed(1)} MB, max ${Math.max(...results.backfill.map((r) => r.growthMb)).toFixed(1)} MB: within the webhook's 48 MB bound: **${median(results.backfill.map((r) => r.growthMb)) <= 48 ? "met" : "missed"}**.`,
    "",
    `Targets: RSS growth <= 48 MB: **${growth <= 48 ? "met" : "missed"}** (${growth.toFixed(1)} MB). Throughput >= 0.70 × plain multipart: **${ratio >= 0.7 ? "met" : "missed"}** (${ratio.toFixed(2)}).`,
    "",
    "Per upload (MB/s, RSS growth MB):",
    "",
    ...["postcall", "plain", "buffered", "backfill"].map((k) => `- ${k}: ${results[k].map((r) => `${r.mbPerSec.toFixed(1)} / +${r.growthMb.toFixed(1)}`).join(", ")}`),
    `- warm-up uploads on cold processes: ${Object.entries(results.warmup).map(([k, r]) => `${k} ${r.mbPerSec.toFixed(1)} / +${r.growthMb.toFixed(1)}`).join(", ")}`,
    "",
  ];
  const md = lines.join("\n");
  console.log(`\n${md}`);
  writeFileSync("bench/AUDIO.md", md);
  console.log("Written to bench/AUDIO.md");
}

try {
  report(await main());
} catch (err) {
  console.error(`bench:audio failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  fakeApi.close();
  cleanup();
}
