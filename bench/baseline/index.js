/**
 * Two baselines for the audio benchmark (bench/audio.mjs), same runtime, same R2, same body.
 *
 * POST /plain: the floor. Pipes the raw request body into an R2 multipart upload, parts of the same
 * 5 MiB as postcall, one part in flight while the next fills, as postcall does. No verification, no
 * JSON, no base64: what any streaming upload of these bytes costs.
 *
 * POST /buffered: the naive implementation. Reads the whole body, verifies the HMAC with Web Crypto,
 * JSON.parse, Uint8Array.fromBase64, one put. Correct, simple, and holds the body several times over.
 */
const PART = 5 * 1024 * 1024;
const encoder = new TextEncoder();

async function plain(request, env) {
  const upload = await env.AUDIO.createMultipartUpload(`plain/${crypto.randomUUID()}`);
  const parts = [];
  let inflight = null;
  let partNumber = 0;
  let total = 0;
  const send = async (bytes) => {
    if (inflight) await inflight;
    const n = ++partNumber;
    inflight = upload.uploadPart(n, bytes).then((p) => parts.push(p));
  };
  let buf = new Uint8Array(PART);
  let fill = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    let off = 0;
    while (off < value.byteLength) {
      const n = Math.min(PART - fill, value.byteLength - off);
      buf.set(value.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === PART) {
        await send(buf);
        buf = new Uint8Array(PART);
        fill = 0;
      }
    }
  }
  if (fill > 0) await send(buf.subarray(0, fill));
  await inflight;
  await upload.complete(parts.sort((a, b) => a.partNumber - b.partNumber));
  return Response.json({ status: "stored", bytes: total });
}

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

async function buffered(request, env) {
  const raw = new Uint8Array(await request.arrayBuffer());
  const header = request.headers.get("ElevenLabs-Signature") ?? "";
  const t = /t=(\d+)/.exec(header)?.[1];
  const v0 = /v0=([0-9a-f]{64})/.exec(header)?.[1];
  const prefix = encoder.encode(`${t}.`);
  const message = new Uint8Array(prefix.length + raw.length);
  message.set(prefix);
  message.set(raw, prefix.length);
  const key = await crypto.subtle.importKey("raw", encoder.encode(env.ELEVENLABS_WEBHOOK_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  if (!t || !v0 || !(await crypto.subtle.verify("HMAC", key, hexToBytes(v0), message))) {
    return Response.json({ error: "bad signature" }, { status: 401 });
  }
  const event = JSON.parse(new TextDecoder().decode(raw));
  const audio = Uint8Array.fromBase64(event.data.full_audio);
  await env.AUDIO.put(`buffered/${event.data.conversation_id}.mp3`, audio, { httpMetadata: { contentType: "audio/mpeg" } });
  return Response.json({ status: "stored", bytes: audio.byteLength });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (request.method === "POST" && pathname === "/plain") return plain(request, env);
    if (request.method === "POST" && pathname === "/buffered") return buffered(request, env);
    if (pathname === "/health") return Response.json({ status: "ok" });
    return new Response("not found", { status: 404 });
  },
};
