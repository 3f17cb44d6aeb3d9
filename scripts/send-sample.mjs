#!/usr/bin/env node
// `npm run send-sample`: sign and POST realistic ElevenLabs post-call events, then read the user's
// context back. Talks to the local service by default (http://localhost:$PORT, the port `npm start`
// uses, 8787 unless PORT is set); --url or POSTCALL_URL for any other.
//
//   npm run send-sample                              # a transcription for user "demo-user", then its context
//   npm run send-sample -- transcription --user alice
//   npm run send-sample -- transcription --user alice --title "Upgrading to the Pro plan"   # each title its own call
//   npm run send-sample -- audio --conversation conv_123   # the sample recording (test/fixtures/sample-call.mp3)
//   npm run send-sample -- audio --conversation conv_123 --audio-mb 20   # a 20 MB MP3 (hours of the sample call, playable)
//   npm run send-sample -- audio --conversation conv_123 --audio-file call.mp3
//   npm run send-sample -- transcription --user bob --started-ago 86400   # a call that happened a day ago
//   npm run send-sample -- transcription --user mallory --token none      # a claim without the token: stored unattributed
//   npm run send-sample -- failure
//   npm run send-sample -- transcription --phone +14155550123            # a phone call from that number (no app user)
//   npm run send-sample -- transcription --user alice --phone +14155550123  # links the number to alice
//   npm run send-sample -- initiation --phone +14155550123               # what ElevenLabs gets while that phone rings
//   npm run send-sample -- recall --user alice --query "cracked screen replacement"   # what the agent's recall tool gets
//   npm run send-sample -- all --url https://postcall.example.workers.dev --secret "$SECRET" --api-key "$KEY"
//   npm run send-sample -- forward-receiver [--port 8799]   # a local receiver for forwarded events (docs/forwarding.md)
import { createHmac, hkdfSync, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { longMp3, size } from "./lib/sample-audio.mjs";
import { applySampleCall, callerName, sampleCall } from "./lib/sample-calls.mjs";
import { noSecretMessage, unreachableMessage } from "./lib/sample-cli.mjs";

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
const base = (opts.url ?? process.env.POSTCALL_URL ?? `http://localhost:${process.env.PORT || 8787}`).replace(/\/+$/, "");
const secret = opts.secret ?? process.env.ELEVENLABS_WEBHOOK_SECRET ?? (vars.ELEVENLABS_WEBHOOK_SECRET ?? "").split(",")[0].trim();
const apiKey = opts.apiKey ?? process.env.API_KEY ?? (vars.API_KEY ?? "").split(",")[0].trim();
// With --phone and no --user, the sample is a phone call identified only by the caller's number.
const userId = opts.user ?? (opts.phone ? null : "demo-user");
const conversationId = opts.conversation ?? `conv_sample_${randomUUID().replace(/-/g, "").slice(0, 20)}`;
const now = Math.floor(Date.now() / 1000);

if (!secret && opts.kind !== "initiation" && opts.kind !== "forward-receiver" && opts.kind !== "recall") {
  console.error(noSecretMessage(opts.secret));
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

/**
 * The session's dynamic variables, the way the README integrates: GET the user's context when the
 * session starts and pass every returned variable into it (postcall_user_token included), so the
 * post-call event carries the token that proves the user id. A phone call needs none (the caller's
 * number comes from ElevenLabs' telephony).
 */
async function sessionVariables(callStart) {
  if (userId === null) return {};
  // --token none: a client that skipped the integration (the claim is then stored unattributed).
  if (opts.token === "none") return {};
  if (!apiKey) {
    console.warn("(no API key: the event carries no postcall_user_token, so it is stored unattributed unless USER_ID_TRUST=claimed)");
    return {};
  }
  const res = await fetch(`${base}/v1/users/${encodeURIComponent(userId)}/context`, { headers: { Authorization: `Bearer ${apiKey}` } });
  if (!res.ok) throw new Error(`GET /v1/users/${userId}/context: HTTP ${res.status} ${await res.text()}`);
  const vars = (await res.json()).dynamic_variables;
  if (vars.postcall_user_token && callStart < now - 60) {
    // An app reads the context when the session starts: a call that started earlier (a long one, or
    // --started-ago) would have carried a token read back then. The token's key is derived from the
    // webhook secret (src/lib/user-token.ts), which this sender holds: make that one.
    vars.postcall_user_token = userToken(userId, callStart);
  }
  return vars;
}

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

/** postcall_user_token as src/lib/user-token.ts makes it: HKDF of the webhook secret, HMAC-SHA256, 16 bytes. */
function userToken(id, issuedAt) {
  const key = Buffer.from(hkdfSync("sha256", secret, "postcall", "postcall user token v1", 32));
  const body = `pu1.${b64url(Buffer.from(id, "utf8"))}.${Math.floor(issuedAt)}`;
  return `${body}.${b64url(createHmac("sha256", key).update(body).digest().subarray(0, 16))}`;
}

const startedAt = now - Number(opts.startedAgo ?? 0) - 30;

async function transcriptionEvent() {
  const e = load("transcription.json");
  e.event_timestamp = now;
  e.data.conversation_id = conversationId;
  // Each title its own call (transcript, summary, facts, length: scripts/lib/sample-calls.mjs); the
  // caller's name follows the user. A caller known only by number asks to change a delivery address.
  const call = sampleCall(opts.title ?? (userId === null ? "Delivery address change" : undefined));
  // The call ended `startedAt` (30 s ago, or --started-ago earlier): it started its length before.
  const callStart = startedAt - call.duration;
  const client = e.data.conversation_initiation_client_data;
  client.dynamic_variables = { ...client.dynamic_variables, ...(await sessionVariables(callStart)) };
  const vars = client.dynamic_variables;
  if (userId !== null) vars.user_id = userId;
  else delete vars.user_id;
  vars.system__conversation_id = conversationId;
  applySampleCall(e, call, callerName(userId));
  if (opts.phone) {
    // What a Twilio inbound call looks like: the caller is the external number.
    e.data.metadata.phone_call = {
      type: "twilio",
      direction: "inbound",
      phone_number_id: "pn_sample",
      agent_number: "+14155550000",
      external_number: opts.phone,
      call_sid: `CA${randomUUID().replace(/-/g, "")}`,
    };
    e.data.metadata.conversation_initiation_source = "twilio";
    vars.system__caller_id = opts.phone;
    vars.system__called_number = "+14155550000";
  }
  e.data.metadata.start_time_unix_secs = callStart;
  return e;
}

function audioEvent() {
  const e = load("audio.json");
  e.event_timestamp = now;
  e.data.conversation_id = conversationId;
  return e;
}

/**
 * A post_call_audio event as ElevenLabs sends it: chunked, no Content-Length. The audio is the sample
 * recording (a 19-second spoken support call, scripts/make-sample-audio.sh), or --audio-file, or with
 * --audio-mb an MP3 of that many MB made of the sample call played again and again (hours of audio
 * that plays and seeks like a real long call), streamed in 64 KiB pieces so that any size can be
 * sent without holding the JSON.
 */
async function postAudio(label) {
  const e = audioEvent();
  let audio = readFileSync(new URL("sample-call.mp3", fixtures));
  if (opts.audioFile) {
    audio = readFileSync(opts.audioFile);
  } else if (opts.audioMb) {
    audio = longMp3(audio, Math.round(Number(opts.audioMb) * 1024 * 1024));
  }
  const b64 = Buffer.from(audio.toString("base64"), "latin1");
  delete e.data.full_audio;
  const json = JSON.stringify(e);
  const prefix = Buffer.from(json.slice(0, -2) + ',"full_audio":"');
  const suffix = Buffer.from('"' + json.slice(-2));
  const t = Math.floor(Date.now() / 1000);
  const mac = createHmac("sha256", secret).update(`${t}.`).update(prefix).update(b64).update(suffix).digest("hex");
  const parts = [prefix, b64, suffix];
  let part = 0;
  let off = 0;
  const body = new ReadableStream({
    pull(controller) {
      while (part < parts.length && off >= parts[part].length) {
        part++;
        off = 0;
      }
      if (part === parts.length) return controller.close();
      controller.enqueue(parts[part].subarray(off, off + 65536));
      off += 65536;
    },
  });
  const started = Date.now();
  const res = await fetch(`${base}/webhooks/elevenlabs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "ElevenLabs-Signature": `t=${t},v0=${mac}` },
    body,
    duplex: "half",
  });
  const sent = prefix.length + b64.length + suffix.length;
  console.log(`${label}: HTTP ${res.status} ${await res.text()} (${size(audio.length)} of audio, sent as ${size(sent)} of base64 JSON, chunked, in ${Date.now() - started} ms)`);
  if (!res.ok) return (process.exitCode = 1);
  if (apiKey) console.log(`  listen: curl -H 'Authorization: Bearer ${apiKey}' ${base}/v1/conversations/${conversationId}/audio -o ${conversationId}.mp3`);
  console.log(`  or in the console: ${base}/console/#/conversations/${encodeURIComponent(conversationId)}`);
}

function failureEvent() {
  const e = load("call-initiation-failure-sip.json");
  e.event_timestamp = now;
  e.data.conversation_id = `${conversationId}_failed`;
  return e;
}

async function showContext() {
  if (!apiKey) return console.log("(no API key: pass --api-key to read the context back)");
  const who = userId ?? opts.phone;
  const res = await fetch(`${base}/v1/users/${encodeURIComponent(who)}/context`, { headers: { Authorization: `Bearer ${apiKey}` } });
  console.log(`\nGET /v1/users/${who}/context: HTTP ${res.status}`);
  console.log(JSON.stringify(await res.json(), null, 2));
}

/** The request ElevenLabs makes while an inbound call rings (agent -> Security -> fetch initiation data). */
async function initiation() {
  if (!apiKey) throw new Error("the initiation webhook needs the API key: pass --api-key or create .dev.vars");
  if (!opts.phone) throw new Error("pass --phone +1... (the caller's number)");
  const res = await fetch(`${base}/webhooks/elevenlabs/initiation`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({
      caller_id: opts.phone,
      agent_id: "agent_01jx3kq2p9fz8b7c6d5e4a3b2c",
      called_number: "+14155550000",
      call_sid: `CA${randomUUID().replace(/-/g, "")}`,
    }),
  });
  console.log(`POST /webhooks/elevenlabs/initiation for ${opts.phone}: HTTP ${res.status}`);
  console.log(JSON.stringify(await res.json(), null, 2));
  if (!res.ok) process.exitCode = 1;
}

/**
 * What ElevenLabs' recall tool (elevenlabs/recall-tool.json) sends mid-call: the user's
 * postcall_user_token, taken from GET /v1/users/:id/context the way an app passes it into the
 * session, the LLM's query, and the current call's id (excluded from the results).
 */
async function recallTool() {
  if (!apiKey) throw new Error("recall reads the user's context first: pass --api-key or create .dev.vars");
  if (!opts.query) throw new Error('pass --query "what to look up" (and --user, default demo-user)');
  const who = userId ?? opts.phone;
  const ctx = await fetch(`${base}/v1/users/${encodeURIComponent(who)}/context`, { headers: { Authorization: `Bearer ${apiKey}` } });
  if (!ctx.ok) throw new Error(`GET /v1/users/${who}/context: HTTP ${ctx.status} ${await ctx.text()}`);
  const token = (await ctx.json()).dynamic_variables?.postcall_user_token ?? "";
  // The tool's header holds an AGENT_API_KEY; any API_KEY is accepted too.
  const agentKey = opts.agentKey ?? process.env.AGENT_API_KEY ?? (vars.AGENT_API_KEY ?? "").split(",")[0].trim();
  const body = { query: opts.query, user_token: token, conversation_id: opts.conversation ?? conversationId, agent_id: "agent_01jx3kq2p9fz8b7c6d5e4a3b2c" };
  if (opts.limit !== undefined) body.limit = Number(opts.limit);
  const res = await fetch(`${base}/tools/recall`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${agentKey || apiKey}` },
    body: JSON.stringify(body),
  });
  console.log(`POST /tools/recall for ${who} (token ${token ? "from the context" : "missing"}), query ${JSON.stringify(opts.query)}: HTTP ${res.status}`);
  const text = await res.text();
  try {
    console.log(JSON.stringify(JSON.parse(text), null, 2));
  } catch {
    console.log(text);
  }
  if (!res.ok) process.exitCode = 1;
}

try {
  const kinds = opts.kind === "all" ? ["transcription", "audio", "failure"] : [opts.kind];
  for (const kind of kinds) {
    if (kind === "transcription") await post(await transcriptionEvent(), `post_call_transcription ${conversationId} for ${userId ?? opts.phone}`);
    else if (kind === "initiation") await initiation();
    else if (kind === "recall") await recallTool();
    else if (kind === "audio") await postAudio(`post_call_audio ${conversationId}`);
    else if (kind === "failure") await post(failureEvent(), `call_initiation_failure ${conversationId}_failed`);
    else if (kind === "forward-receiver") await (await import("./forward-receiver.mjs")).runReceiver(opts);
    else throw new Error(`unknown event kind ${JSON.stringify(kind)}: use transcription, audio, failure, initiation, recall, all or forward-receiver`);
  }
  if (kinds.includes("transcription")) await showContext();
} catch (err) {
  if (err.cause === undefined && !(err instanceof TypeError)) {
    console.error(err.message);
    process.exit(2);
  }
  console.error(unreachableMessage(base, err.cause?.message ?? err.message));
  process.exit(1);
}
