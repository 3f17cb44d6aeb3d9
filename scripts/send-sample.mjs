#!/usr/bin/env node
// `npm run send-sample`: sign and POST realistic ElevenLabs post-call events, then read the user's
// context back. Talks to the local service by default; any URL works.
//
//   npm run send-sample                              # a transcription for user "demo-user", then its context
//   npm run send-sample -- transcription --user alice
//   npm run send-sample -- audio --conversation conv_123 [--audio-mb 20]
//   npm run send-sample -- audio --conversation conv_123 --audio-file call.mp3
//   npm run send-sample -- transcription --user bob --started-ago 86400   # a call that happened a day ago
//   npm run send-sample -- failure
//   npm run send-sample -- all --url https://postcall.example.workers.dev --secret "$SECRET" --api-key "$KEY"
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

const fixtures = new URL("../test/fixtures/", import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, fixtures), "utf8"));

function devVars() {
  const file = existsSync(".dev.vars") ? ".dev.vars" : existsSync(".dev.vars.example") ? ".dev.vars.example" : null;
  if (!file) return {};
  const out = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*"?([^"\n]*)"?\s*$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function parseArgs(argv) {
  const opts = { kind: "transcription" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) opts[a.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase())] = argv[++i];
    else opts.kind = a;
  }
  return opts;
}

const vars = devVars();
const opts = parseArgs(process.argv.slice(2));
const base = (opts.url ?? process.env.POSTCALL_URL ?? "http://localhost:8787").replace(/\/+$/, "");
const secret = opts.secret ?? process.env.ELEVENLABS_WEBHOOK_SECRET ?? (vars.ELEVENLABS_WEBHOOK_SECRET ?? "").split(",")[0].trim();
const apiKey = opts.apiKey ?? process.env.API_KEY ?? (vars.API_KEY ?? "").split(",")[0].trim();
const userId = opts.user ?? "demo-user";
const conversationId = opts.conversation ?? `conv_sample_${randomUUID().replace(/-/g, "").slice(0, 20)}`;
const now = Math.floor(Date.now() / 1000);

if (!secret) {
  console.error("No webhook secret: pass --secret, set ELEVENLABS_WEBHOOK_SECRET, or create .dev.vars (npm start does).");
  process.exit(2);
}

function signature(body) {
  const t = Math.floor(Date.now() / 1000);
  return `t=${t},v0=${createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex")}`;
}

async function post(event, label) {
  const body = Buffer.from(JSON.stringify(event));
  const res = await fetch(`${base}/webhooks/elevenlabs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "ElevenLabs-Signature": signature(body) },
    body,
  });
  console.log(`${label}: HTTP ${res.status} ${await res.text()}`);
  if (!res.ok) process.exitCode = 1;
}

function transcriptionEvent() {
  const e = load("transcription.json");
  e.event_timestamp = now;
  e.data.conversation_id = conversationId;
  e.data.metadata.start_time_unix_secs = now - Number(opts.startedAgo ?? 0) - e.data.metadata.call_duration_secs - 30;
  e.data.conversation_initiation_client_data.dynamic_variables.user_id = userId;
  e.data.conversation_initiation_client_data.dynamic_variables.system__conversation_id = conversationId;
  if (opts.title) e.data.analysis.call_summary_title = opts.title;
  return e;
}

function audioEvent() {
  const e = load("audio.json");
  e.event_timestamp = now;
  e.data.conversation_id = conversationId;
  if (opts.audioFile) {
    e.data.full_audio = readFileSync(opts.audioFile).toString("base64");
  } else if (opts.audioMb) {
    // Random bytes behind an ID3 header: the size of a real call, not a playable one.
    const bytes = randomBytes(Math.round(Number(opts.audioMb) * 1024 * 1024));
    bytes.write("ID3", 0, "latin1");
    e.data.full_audio = bytes.toString("base64");
  }
  return e;
}

function failureEvent() {
  const e = load("call-initiation-failure-sip.json");
  e.event_timestamp = now;
  e.data.conversation_id = `${conversationId}_failed`;
  return e;
}

async function showContext() {
  if (!apiKey) return console.log("(no API key: pass --api-key to read the context back)");
  const res = await fetch(`${base}/v1/users/${encodeURIComponent(userId)}/context`, { headers: { Authorization: `Bearer ${apiKey}` } });
  console.log(`\nGET /v1/users/${userId}/context: HTTP ${res.status}`);
  console.log(JSON.stringify(await res.json(), null, 2));
}

try {
  const kinds = opts.kind === "all" ? ["transcription", "audio", "failure"] : [opts.kind];
  for (const kind of kinds) {
    if (kind === "transcription") await post(transcriptionEvent(), `post_call_transcription ${conversationId} for ${userId}`);
    else if (kind === "audio") await post(audioEvent(), `post_call_audio ${conversationId}`);
    else if (kind === "failure") await post(failureEvent(), `call_initiation_failure ${conversationId}_failed`);
    else throw new Error(`unknown event kind ${JSON.stringify(kind)}: use transcription, audio, failure or all`);
  }
  if (kinds.includes("transcription")) await showContext();
} catch (err) {
  console.error(`Could not reach ${base}: ${err.cause?.message ?? err.message}. Is the service running (npm start)?`);
  process.exit(1);
}
