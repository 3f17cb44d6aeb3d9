/**
 * Verification micro-benchmark, run inside workerd: our `verifySignature` against the official SDK's
 * `webhooks.constructEvent`, on the same signed payload (sent once by the harness to /setup, signed
 * in Node with node:crypto, an implementation independent of both).
 *
 * GET /run?impl=<name>&n=<iterations> runs one implementation n times back to back and answers when
 * done; the harness times the request from outside (workerd's clock does not advance during pure
 * computation, so in-Worker timers cannot time a CPU loop) and subtracts an n=0 request.
 */
import { ElevenLabsClient } from "@elevenlabs/elevenlabs-js";
import { verifySignature, type VerifyOptions } from "../../src/webhooks/signature";
import { parseEnvelope } from "../../src/records/payload";

interface VerifierEnv {
  SECRET: string;
}

const sdk = new ElevenLabsClient({ apiKey: "unused-no-network" });

let body = new Uint8Array(0);
let text = "";
let header = "";

function options(env: VerifierEnv): VerifyOptions {
  return { secrets: [env.SECRET], nowSeconds: Math.floor(Date.now() / 1000), maxAgeSeconds: 1800, maxFutureSeconds: 300 };
}

/** Each implementation does what a receiver needs before it can trust the event. */
const IMPLEMENTATIONS: Record<string, (env: VerifierEnv) => Promise<unknown>> = {
  // Ours, as the webhook handler calls it: raw bytes in, throws unless valid.
  ours: (env) => verifySignature(header, body, options(env)),
  // Ours plus parsing, the same work constructEvent does (it verifies, then JSON.parses the body).
  ours_and_parse: async (env) => {
    await verifySignature(header, body, options(env));
    return parseEnvelope(body);
  },
  // The official SDK: a string body (it cannot take bytes), the header, the secret. It verifies,
  // then returns JSON.parse(body).
  sdk: (env) => sdk.webhooks.constructEvent(text, header, env.SECRET),
  // Reference: the share of constructEvent that is JSON.parse of this payload.
  json_parse: async () => JSON.parse(text),
};

async function rejects(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return false;
  } catch {
    return true;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/setup") {
      body = new Uint8Array(await request.arrayBuffer());
      text = new TextDecoder().decode(body);
      header = request.headers.get("ElevenLabs-Signature") ?? "";
      // Both must accept the payload and refuse a one-byte change, or the comparison means nothing.
      const accepted: Record<string, boolean> = {};
      for (const [name, fn] of Object.entries(IMPLEMENTATIONS)) accepted[name] = !(await rejects(() => fn(env)));
      const good = { body, text };
      body = body.slice();
      // Flip the case of a letter mid-body: still valid JSON, so only the MAC can refuse it.
      let i = body.length >> 1;
      while (!(body[i]! >= 0x61 && body[i]! <= 0x7a)) i++;
      body[i] = body[i]! ^ 0x20;
      text = new TextDecoder().decode(body);
      const tamperedRejected: Record<string, boolean> = {};
      for (const [name, fn] of Object.entries(IMPLEMENTATIONS)) tamperedRejected[name] = await rejects(() => fn(env));
      ({ body, text } = good);
      return Response.json({ bytes: body.byteLength, accepted, tamperedRejected });
    }
    if (url.pathname === "/run") {
      const fn = IMPLEMENTATIONS[url.searchParams.get("impl") ?? ""];
      if (!fn) return new Response("unknown impl", { status: 400 });
      const n = Number(url.searchParams.get("n") ?? "0");
      for (let i = 0; i < n; i++) await fn(env);
      return Response.json({ n });
    }
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<VerifierEnv>;
