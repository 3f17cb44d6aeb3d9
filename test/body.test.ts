import { describe, expect, it } from "vitest";
import { SELF } from "cloudflare:test";
import { readBody } from "../src/webhooks/body";
import { ApiError } from "../src/lib/errors";
import { checkHeader, sign, verifyParsed } from "../src/webhooks/signature";

const enc = new TextEncoder();
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

/** A body of unknown length (no Content-Length), delivered in the given pieces. */
function chunked(pieces: Uint8Array[]): Request {
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of pieces) controller.enqueue(p);
      controller.close();
    },
  });
  return new Request("https://x.test/", { method: "POST", body: stream, duplex: "half" } as RequestInit);
}

async function statusOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    if (e instanceof ApiError) return `${e.status} ${e.code}`;
    throw e;
  }
}

describe("readBody", () => {
  it("reads a body of declared length byte for byte", async () => {
    const body = bytes(20_000);
    const req = new Request("https://x.test/", { method: "POST", body, headers: { "Content-Length": "20000" } });
    expect(await readBody(req, 20_000)).toEqual(body);
  });

  it("refuses a declared length over the limit before reading", async () => {
    const req = new Request("https://x.test/", { method: "POST", body: bytes(1025), headers: { "Content-Length": "1025" } });
    expect(await statusOf(readBody(req, 1024))).toBe("413 payload_too_large");
  });

  it("refuses a body whose Content-Length header understates it (only code can build such a request)", async () => {
    const req = chunked([bytes(600), bytes(600)]);
    req.headers.set("Content-Length", "10");
    expect(await statusOf(readBody(req, 1024))).toBe("413 payload_too_large");
  });

  it("reassembles a chunked body of unknown length", async () => {
    const all = bytes(10_000);
    const pieces = [all.slice(0, 1), all.slice(1, 4097), all.slice(4097, 9000), all.slice(9000)];
    const req = chunked(pieces);
    expect(req.headers.get("Content-Length")).toBeNull();
    expect(await readBody(req, 10_000)).toEqual(all);
  });

  it("refuses a chunked body as soon as it passes the limit", async () => {
    expect(await statusOf(readBody(chunked([bytes(1000), bytes(1000)]), 1500))).toBe("413 payload_too_large");
  });

  it("reads an empty body as zero bytes", async () => {
    expect((await readBody(new Request("https://x.test/", { method: "POST" }), 10)).byteLength).toBe(0);
  });

  it("answers 413 through the webhook route for a declared length over MAX_BODY_BYTES", async () => {
    const t = Math.floor(Date.now() / 1000);
    const res = await SELF.fetch("https://postcall.test/webhooks/elevenlabs", {
      method: "POST",
      headers: { "ElevenLabs-Signature": `t=${t},v0=${"0".repeat(64)}`, "Content-Length": String(17 * 1024 * 1024) },
      body: bytes(17 * 1024 * 1024),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large" } });
  });
});

describe("verifyParsed (the handler checks the header first, then the bytes)", () => {
  it("accepts the bytes the parsed header signs and refuses any other", async () => {
    const t = 1_700_000_000;
    const body = enc.encode('{"type":"post_call_transcription","data":{}}');
    const opts = { secrets: ["whsec_a"], nowSeconds: t, maxAgeSeconds: 1800, maxFutureSeconds: 300 };
    const parsed = checkHeader(`t=${t},v0=${await sign("whsec_a", t, body)}`, opts);
    await expect(verifyParsed(parsed, body, opts)).resolves.toBeUndefined();
    const tampered = body.slice();
    tampered[5] = tampered[5]! ^ 1;
    expect(await statusOf(verifyParsed(parsed, tampered, opts))).toBe("401 signature_mismatch");
  });
});
